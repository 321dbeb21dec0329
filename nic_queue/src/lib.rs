//! A NIC receive queue whose buffers are a guest's own granted pages: the
//! NIC demultiplexes by MAC into the guest's pool and DMAs frames straight
//! into the pages behind the guest's netif receive requests, and the
//! backend only turns completions into netif responses.
//!
//! Everything lives in [`nicq`], which the kernel modules also compile
//! directly (`#[path = "../nic_queue/src/nicq/mod.rs"]`, beside the netif
//! core, reached as `super::super::netif` from either build).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

/// The netif protocol core, where `nicq` expects it.
mod netif {
    pub use ::netif::*;
}

pub mod nicq;
pub use nicq::*;
