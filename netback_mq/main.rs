// SPDX-License-Identifier: GPL-2.0

//! netback_mq: Xen paravirtual network backend (dom0 or a driver domain).
//!
//! Registers the xenbus `vif` backend and serves each guest's `netfront`
//! over Xen's netif protocol through a `vifD.N` net device, as the C
//! `xen-netback` does: same xenstore keys, same hotplug scripts. Later
//! stages add per-guest NIC queues (VMDq) with zero-copy receive into guest
//! pages and persistent grant mappings; this crate root stays thin and wires
//! the pieces together.

use kernel::prelude::*;

/// `pr_warn!` under the networking rate limit (`net_ratelimit`): for events
/// a guest can trigger at will.
macro_rules! warn_ratelimited {
    ($($arg:tt)*) => {
        // SAFETY: `net_ratelimit` only updates a global rate-limit state.
        if unsafe { crate::xen_sys::bindings::net_ratelimit() } != 0 {
            kernel::pr_warn!($($arg)*);
        }
    };
}

mod backend;
mod ctrl;
mod ethtool;
#[cfg(xennet_hostile)]
mod hostile;
mod queue;
mod vif;

// The netif protocol core, shared with the host tests (see netif/).
#[path = "../netif/src/proto/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod netif;
// The kernel Xen/net layer, shared by both modules: each uses part of it.
#[path = "../xen_sys/mod.rs"]
#[allow(dead_code)]
mod xen_sys;

use backend::Backend;
use xen_sys::bindings as b;
use xen_sys::xenbus::{device_id, Device, Side, XenbusDriver};
use xen_sys::DomainKind;

#[cfg(not(xennet_hostile))]
module! {
    type: NetbackMq,
    name: "netback_mq",
    authors: ["xen-rust-net developers"],
    description: "Xen paravirtual network backend in Rust (multi-queue NIC, grant reuse)",
    license: "GPL",
    params: {
        max_queues: u32 {
            default: 0,
            description: "Maximum queues per vif (0: one per online CPU; at most 8)",
        },
        rx_stall_timeout_msecs: u32 {
            default: 60000,
            description: "Carrier off when a guest posts no receive buffers for this long (ms)",
        },
        separate_tx_rx_irq: u32 {
            default: 1,
            description: "Offer split TX/RX event channels to frontends (1: yes, 0: no)",
        },
    },
}

// The rig's test-only hostile build (see hostile.rs).
#[cfg(xennet_hostile)]
module! {
    type: NetbackMq,
    name: "netback_hostile",
    authors: ["xen-rust-net developers"],
    description: "Xen paravirtual network backend in Rust (multi-queue NIC, grant reuse)",
    license: "GPL",
    params: {
        max_queues: u32 {
            default: 0,
            description: "Maximum queues per vif (0: one per online CPU; at most 8)",
        },
        rx_stall_timeout_msecs: u32 {
            default: 60000,
            description: "Carrier off when a guest posts no receive buffers for this long (ms)",
        },
        separate_tx_rx_irq: u32 {
            default: 1,
            description: "Offer split TX/RX event channels to frontends (1: yes, 0: no)",
        },
        hostile: u32 {
            default: 0,
            description: "Test-only: the misbehaviour to inject (see hostile.rs)",
        },
    },
}

/// Queues per vif: the `max_queues` parameter, or the online CPUs.
pub(crate) fn max_queues() -> usize {
    let p = module_parameters::max_queues.value() as usize;
    // SAFETY: returns a plain count.
    let cpus = unsafe { b::xennet_shim_num_online_cpus() } as usize;
    let n = if p == 0 { cpus } else { p };
    n.clamp(1, vif::MAX_QUEUES)
}

/// The `rx_stall_timeout_msecs` parameter, in µs (at least 100 ms).
pub(crate) fn rx_stall_timeout_us() -> u64 {
    u64::from(module_parameters::rx_stall_timeout_msecs.value().max(100)) * 1000
}

/// The `separate_tx_rx_irq` parameter.
pub(crate) fn separate_tx_rx_irq() -> bool {
    module_parameters::separate_tx_rx_irq.value() != 0
}

/// The xenbus device types we serve, zero-terminated.
static IDS: [b::xenbus_device_id; 2] = [device_id(b"vif"), device_id(b"")];

/// xenbus `probe`.
///
/// # Safety
///
/// Called by xenbus with a live device.
unsafe extern "C" fn probe(dev: *mut b::xenbus_device, _id: *const b::xenbus_device_id) -> i32 {
    // SAFETY: xenbus calls probe with a live device, bound to us from now on.
    let dev = unsafe { Device::from_raw(dev) };
    match Backend::probe(dev) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// xenbus `otherend_changed`: the frontend's state changed.
///
/// # Safety
///
/// Called by xenbus for a device probed successfully and not yet removed.
unsafe extern "C" fn otherend_changed(dev: *mut b::xenbus_device, frontend_state: b::xenbus_state) {
    // SAFETY: called only for devices we probed successfully, before remove.
    let be = unsafe { Backend::from_xenbus(Device::from_raw(dev)) };
    be.frontend_changed(frontend_state);
}

/// xenbus `remove`.
///
/// # Safety
///
/// Called by xenbus once, for a device probed successfully.
unsafe extern "C" fn remove(dev: *mut b::xenbus_device) {
    // SAFETY: called once, for a device we probed successfully.
    unsafe { Backend::remove(Device::from_raw(dev)) };
}

struct NetbackMq {
    domain: DomainKind,
    _driver: XenbusDriver,
}

impl kernel::Module for NetbackMq {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let domain = xen_sys::check_environment()?;
        // Named differently from the C driver ("vif") so both can be loaded;
        // only one can serve a given device.
        #[cfg(not(xennet_hostile))]
        let name = c"netback_mq";
        #[cfg(xennet_hostile)]
        let name = c"netback_hostile";
        let driver = XenbusDriver::register(Side::Backend, name, &IDS, probe, otherend_changed, remove, None)
            .inspect_err(|e| pr_err!("registering the xenbus backend driver failed: {:?}\n", e))?;
        Ok(NetbackMq {
            domain,
            _driver: driver,
        })
    }
}

impl Drop for NetbackMq {
    fn drop(&mut self) {
        // `_driver` is unregistered after this, removing every vif.
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
