//! Grant reuse over netif's static grants (`XEN_NETIF_CTRL_TYPE_*_GREF_MAPPING`):
//! the frontend grants a pool of pages once and registers them through the
//! control ring; the backend maps them once and keeps them mapped, so
//! steady-state traffic costs no grant hypercall.
//!
//! Everything lives in [`reuse`], which the kernel modules also compile
//! directly (`#[path = "../grant_reuse/src/reuse/mod.rs"]`, beside the netif
//! core, reached as `super::super::netif` from either build).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

/// The netif protocol core, where `reuse` expects it.
mod netif {
    pub use ::netif::*;
}

pub mod reuse;
pub use reuse::*;
