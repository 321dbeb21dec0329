//! Grant reuse, kernel-independent.
//!
//! Compiled both as the `grant_reuse` host crate and, through `#[path]`,
//! inside the kernel modules' Xen layer. Hence: no std, no alloc, no
//! crate-level attributes, and the netif core reached as `super::super::netif`.

pub mod backend;
pub mod front;
pub mod table;

pub use backend::*;
pub use front::*;
pub use table::*;
