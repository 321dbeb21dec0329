//! Fuzz harnesses for the netif protocol core.
pub mod harness;
