// SPDX-License-Identifier: GPL-2.0

//! netback_mq: Xen paravirtual network backend (dom0 or a driver domain).
//!
//! Serves guests' `netfront` over Xen's netif protocol. Later stages add
//! per-guest NIC queues (VMDq) with zero-copy receive into guest pages and
//! persistent grant mappings; this crate root stays thin and wires the
//! pieces together.

use kernel::prelude::*;

// The netif protocol core, shared with the host tests (see netif/).
#[path = "../netif/src/proto/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod netif;
// The kernel Xen/net layer, shared by both modules: each uses part of it.
#[path = "../xen_sys/mod.rs"]
#[allow(dead_code)]
mod xen_sys;

use xen_sys::DomainKind;

module! {
    type: NetbackMq,
    name: "netback_mq",
    authors: ["xen-rust-net developers"],
    description: "Xen paravirtual network backend in Rust (multi-queue NIC, grant reuse)",
    license: "GPL",
}

struct NetbackMq {
    domain: DomainKind,
}

impl kernel::Module for NetbackMq {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let domain = xen_sys::check_environment()?;
        Ok(NetbackMq { domain })
    }
}

impl Drop for NetbackMq {
    fn drop(&mut self) {
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
