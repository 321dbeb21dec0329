//! A simulated Xen hypervisor for host-testing the netif protocol core:
//! shared pages, a grant table (grant, end access, map, unmap, copy), event
//! channels, and a minimal frontend and backend built from `netif::proto`
//! running as two "domains" (threads).

pub mod domains;
pub mod evtchn;
pub mod grant;
pub mod nic;
pub mod page;

pub use domains::*;
pub use evtchn::*;
pub use grant::*;
pub use nic::*;
pub use page::*;
