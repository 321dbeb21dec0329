// SPDX-License-Identifier: GPL-2.0

//! netfront_opt: Xen paravirtual network frontend (guest side).
//!
//! Registers a xenbus driver for `vif` devices and serves each with a net
//! device that talks to the backend's `netback` over Xen's netif protocol,
//! negotiated through the standard xenstore keys, so it works against the
//! stock C `xen-netback`. Later stages add batched notification, GRO and
//! multi-queue; this crate root stays thin and wires the pieces together.
//! Everything that touches the kernel directly lives in `xen_sys`.

use kernel::prelude::*;

#[forbid(unsafe_code)]
mod device;
#[forbid(unsafe_code)]
mod ethtool;
#[cfg(xennet_hostile)]
#[forbid(unsafe_code)]
mod hostile;
#[forbid(unsafe_code)]
mod queue;
#[forbid(unsafe_code)]
mod rss;

// The kernel Xen/net layer (and the netif protocol core inside it), shared
// by both modules: each uses part of it. The driver's own modules above
// forbid `unsafe`: everything that needs it lives in `xen_sys`.
#[path = "../xen_sys/mod.rs"]
#[allow(dead_code)]
mod xen_sys;
use xen_sys::netif;

use device::Netfront;
use xen_sys::bindings as b;
use xen_sys::xenbus::{device_id, Registration, Side};
use xen_sys::DomainKind;

xen_sys::xennet_module! {
    type: NetfrontOpt,
    name: "netfront_opt",
    hostile_name: "netfront_opt",
    description: "Xen paravirtual network frontend in Rust (batched, multi-queue)",
    aliases: ["xen:vif"],
    params: {
        max_queues: u32 {
            default: 8,
            description: "Maximum queues per device (also capped by the vCPUs and the backend)",
        },
        multicast_control: u32 {
            default: 1,
            description: "Ask the backend to deliver only the multicast groups the device joined (1) or all (0)",
        },
        static_grants: u32 {
            default: 1,
            description: "Register each queue's buffer pages with the backend as static grants when it offers them (grant reuse: 1) or not (0)",
        },
    },
}

/// The `max_queues` module parameter.
pub(crate) fn max_queues() -> u32 {
    module_parameters::max_queues.value()
}

/// The `multicast_control` module parameter.
pub(crate) fn multicast_control() -> bool {
    module_parameters::multicast_control.value() != 0
}

/// The `static_grants` module parameter.
pub(crate) fn static_grants() -> bool {
    module_parameters::static_grants.value() != 0
}

/// The xenbus device types we drive, zero-terminated.
static IDS: [b::xenbus_device_id; 2] = [device_id(b"vif"), device_id(b"")];

struct NetfrontOpt {
    domain: DomainKind,
    _driver: Registration<Netfront>,
}

impl kernel::Module for NetfrontOpt {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let domain = xen_sys::check_environment()?;
        // Named differently from the C driver ("vif") so both can be loaded.
        let driver = Registration::register(Side::Frontend, c"netfront_opt", &IDS)
            .inspect_err(|e| pr_err!("registering the xenbus driver failed: {:?}\n", e))?;
        Ok(NetfrontOpt { domain, _driver: driver })
    }
}

impl Drop for NetfrontOpt {
    fn drop(&mut self) {
        // `_driver` is unregistered after this, removing every device.
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
