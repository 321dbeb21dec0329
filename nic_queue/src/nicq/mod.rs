//! The NIC receive queue, kernel-independent.
//!
//! Compiled both as the `nic_queue` host crate and, through `#[path]`,
//! inside the kernel modules' Xen layer. Hence: no std, no alloc, no
//! crate-level attributes, and the netif core reached as `super::super::netif`.
//!
//! - [`desc`]: what a NIC family's receive descriptors look like
//!   ([`DescFormat`]), with the igb (82576) advanced format.
//! - [`ring`]: one receive ring's bookkeeping ([`RxRing`]): buffers posted
//!   in order, whole frames reaped in order, every buffer handed back
//!   exactly once (completed or reclaimed).
//! - [`frame`]: what a completed frame's netif receive responses carry.
//! - [`itr`]: interrupt moderation ([`Moderation`]): off, fixed, or
//!   adaptive to what each interrupt brought.
//! - [`mbx`]: the igb VF mailbox messages (reset, MAC, multicast, LPE).
//! - [`queue`]: the interface a NIC family's receive queue offers
//!   ([`RxQueue`]).

pub mod desc;
pub mod frame;
pub mod itr;
pub mod mbx;
pub mod queue;
pub mod ring;

pub use desc::*;
pub use frame::*;
pub use itr::*;
pub use mbx::*;
pub use queue::*;
pub use ring::*;
