// SPDX-License-Identifier: GPL-2.0

//! netback_mq: Xen paravirtual network backend (dom0 or a driver domain).
//!
//! Serves guests' `netfront` over Xen's netif protocol. Later stages add
//! per-guest NIC queues (VMDq) with zero-copy receive into guest pages and
//! persistent grant mappings; this crate root stays thin and wires the
//! pieces together.

use kernel::prelude::*;

#[path = "../xen_sys/mod.rs"]
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
        let domain = DomainKind::current();
        if domain == DomainKind::NotXen {
            pr_err!("not running on Xen, refusing to load\n");
            return Err(ENODEV);
        }
        let (tx, rx) = xen_sys::netif_ring_sizes();
        pr_info!(
            "loaded in {} ({}), netif rings: tx {} slots, rx {} slots\n",
            domain.name(),
            if xen_sys::is_pv_domain() { "PV" } else { "HVM/PVH" },
            tx,
            rx
        );
        Ok(NetbackMq { domain })
    }
}

impl Drop for NetbackMq {
    fn drop(&mut self) {
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
