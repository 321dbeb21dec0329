//! Fuzz harnesses for the netif protocol core.
pub mod harness;
pub mod nic_ring;
