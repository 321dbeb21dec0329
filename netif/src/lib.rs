//! Xen netif protocol core: wire types, shared rings and TX/RX/control-ring
//! parsing, kernel-independent. Everything lives in [`proto`], which the kernel
//! modules also compile directly (`#[path = "../netif/src/proto/mod.rs"]`).
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]

#[cfg(test)]
extern crate std;

pub mod proto;
pub use proto::*;
