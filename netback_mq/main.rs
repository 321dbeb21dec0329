// SPDX-License-Identifier: GPL-2.0

//! netback_mq: Xen paravirtual network backend (dom0 or a driver domain).
//!
//! Registers the xenbus `vif` backend and serves each guest's `netfront`
//! over Xen's netif protocol through a `vifD.N` net device, as the C
//! `xen-netback` does: same xenstore keys, same hotplug scripts. Later
//! stages add per-guest NIC queues (VMDq) with zero-copy receive into guest
//! pages and persistent grant mappings; this crate root stays thin and wires
//! the pieces together. Everything that touches the kernel directly lives
//! in `xen_sys`: this driver holds no `unsafe`.

use kernel::prelude::*;

#[forbid(unsafe_code)]
mod backend;
#[forbid(unsafe_code)]
mod ctrl;
#[forbid(unsafe_code)]
mod ethtool;
#[cfg(xennet_hostile)]
#[forbid(unsafe_code)]
mod hostile;
#[forbid(unsafe_code)]
mod nic;
#[forbid(unsafe_code)]
mod nicrx;
#[forbid(unsafe_code)]
mod queue;
#[forbid(unsafe_code)]
mod vif;

// The kernel Xen/net layer (and the netif protocol core inside it), shared
// by both modules: each uses part of it. The driver's own modules above
// forbid `unsafe`: everything that needs it lives in `xen_sys`.
#[path = "../xen_sys/mod.rs"]
#[allow(dead_code)]
mod xen_sys;
use xen_sys::netif;

use backend::Backend;
use xen_sys::bindings as b;
use xen_sys::xenbus::{device_id, Registration, Side};
use xen_sys::DomainKind;

xen_sys::xennet_module! {
    type: NetbackMq,
    name: "netback_mq",
    hostile_name: "netback_hostile",
    description: "Xen paravirtual network backend in Rust (multi-queue NIC, grant reuse)",
    aliases: ["xen-backend:vif"],
    params: {
        max_queues: u32 {
            default: 0,
            description: "Maximum queues per vif (0: one per online CPU; at most 8)",
        },
        rx_stall_timeout_msecs: u32 {
            default: 60000,
            description: "Carrier off when a guest posts no receive buffers for this long (ms)",
        },
        static_grants: u32 {
            default: 512,
            description: "Static grants (persistent mappings, grant reuse) each queue accepts from a frontend, in pages (0: off; at most 512)",
        },
        separate_tx_rx_irq: u32 {
            default: 1,
            description: "Offer split TX/RX event channels to frontends (1: yes, 0: no)",
        },
        nic_irq_rate: u32 {
            default: 1,
            description: "Receive interrupt moderation of the VFs bound from now on (0: off; 1: adaptive; 100-100000: at most that many interrupts per second)",
        },
    },
}

/// Queues per vif: the `max_queues` parameter, or the online CPUs.
pub(crate) fn max_queues() -> usize {
    let p = module_parameters::max_queues.value() as usize;
    let n = if p == 0 { xen_sys::num_online_cpus() } else { p };
    n.clamp(1, vif::MAX_QUEUES)
}

/// The `rx_stall_timeout_msecs` parameter, in µs (at least 100 ms).
pub(crate) fn rx_stall_timeout_us() -> u64 {
    u64::from(module_parameters::rx_stall_timeout_msecs.value().max(100)) * 1000
}

/// The `static_grants` parameter: entries each queue's table holds.
pub(crate) fn static_grants_per_queue() -> usize {
    (module_parameters::static_grants.value() as usize).min(xen_sys::grant_reuse::CAPACITY)
}

/// The `separate_tx_rx_irq` parameter.
pub(crate) fn separate_tx_rx_irq() -> bool {
    module_parameters::separate_tx_rx_irq.value() != 0
}

/// The `nic_irq_rate` parameter.
pub(crate) fn nic_itr_mode() -> xen_sys::nic_queue::ItrMode {
    xen_sys::nic_queue::ItrMode::from_param(module_parameters::nic_irq_rate.value())
}

/// The xenbus device types we serve, zero-terminated.
static IDS: [b::xenbus_device_id; 2] = [device_id(b"vif"), device_id(b"")];

struct NetbackMq {
    domain: DomainKind,
    _driver: Registration<Backend>,
    /// The PCI driver for the igb VFs an administrator hands us.
    _vfs: Pin<KBox<kernel::driver::Registration<kernel::pci::Adapter<nic::igb::IgbVf>>>>,
    /// Dropped last, once no vif or VF is left.
    _nicreg: xen_sys::nicreg::Registry,
}

impl kernel::Module for NetbackMq {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let domain = xen_sys::check_environment()?;
        // Named differently from the C driver ("vif") so both can be loaded;
        // only one can serve a given device.
        let name = if cfg!(xennet_hostile) { c"netback_hostile" } else { c"netback_mq" };
        let driver = Registration::register(Side::Backend, name, &IDS)
            .inspect_err(|e| pr_err!("registering the xenbus backend driver failed: {:?}\n", e))?;
        let nicreg = xen_sys::nicreg::init();
        let vfs = KBox::pin_init(kernel::driver::Registration::new(name, module), GFP_KERNEL)
            .inspect_err(|e| pr_err!("registering the VF driver failed: {:?}\n", e))?;
        Ok(NetbackMq { domain, _driver: driver, _vfs: vfs, _nicreg: nicreg })
    }
}

impl Drop for NetbackMq {
    fn drop(&mut self) {
        // `_driver` is unregistered after this, removing every vif.
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
