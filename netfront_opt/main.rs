// SPDX-License-Identifier: GPL-2.0

//! netfront_opt: Xen paravirtual network frontend (guest side).
//!
//! Registers a xenbus driver for `vif` devices and serves each with a net
//! device that talks to the backend's `netback` over Xen's netif protocol,
//! negotiated through the standard xenstore keys, so it works against the
//! stock C `xen-netback`. Later stages add batched notification, GRO and
//! multi-queue; this crate root stays thin and wires the pieces together.

use kernel::prelude::*;

mod device;
mod ethtool;
#[cfg(xennet_hostile)]
mod hostile;
mod queue;
mod rss;

// The netif protocol core, shared with the host tests (see netif/).
#[path = "../netif/src/proto/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
mod netif;
// The kernel Xen/net layer, shared by both modules: each uses part of it.
#[path = "../xen_sys/mod.rs"]
#[allow(dead_code)]
mod xen_sys;

use device::Frontend;
use xen_sys::bindings as b;
use xen_sys::xenbus::{device_id, Device, Side, XenbusDriver};
use xen_sys::DomainKind;

#[cfg(not(xennet_hostile))]
module! {
    type: NetfrontOpt,
    name: "netfront_opt",
    authors: ["xen-rust-net developers"],
    description: "Xen paravirtual network frontend in Rust (batched, multi-queue)",
    license: "GPL",
    params: {
        max_queues: u32 {
            default: 8,
            description: "Maximum queues per device (also capped by the vCPUs and the backend)",
        },
        multicast_control: u32 {
            default: 1,
            description: "Ask the backend to deliver only the multicast groups the device joined (1) or all (0)",
        },
    },
}

// The rig's test-only hostile build (see hostile.rs).
#[cfg(xennet_hostile)]
module! {
    type: NetfrontOpt,
    name: "netfront_opt",
    authors: ["xen-rust-net developers"],
    description: "Xen paravirtual network frontend in Rust (batched, multi-queue)",
    license: "GPL",
    params: {
        max_queues: u32 {
            default: 8,
            description: "Maximum queues per device (also capped by the vCPUs and the backend)",
        },
        multicast_control: u32 {
            default: 1,
            description: "Ask the backend to deliver only the multicast groups the device joined (1) or all (0)",
        },
        hostile: u32 {
            default: 0,
            description: "Test-only: the misbehaviour to inject (see hostile.rs)",
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

/// The xenbus device types we drive, zero-terminated.
static IDS: [b::xenbus_device_id; 2] = [device_id(b"vif"), device_id(b"")];

/// xenbus `probe`.
///
/// # Safety
///
/// Called by xenbus with a live device.
unsafe extern "C" fn probe(dev: *mut b::xenbus_device, _id: *const b::xenbus_device_id) -> i32 {
    // SAFETY: xenbus calls probe with a live device, bound to us from now on.
    let dev = unsafe { Device::from_raw(dev) };
    match Frontend::probe(dev) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// xenbus `otherend_changed`.
///
/// # Safety
///
/// Called by xenbus for a device probed successfully and not yet removed.
unsafe extern "C" fn otherend_changed(dev: *mut b::xenbus_device, backend_state: b::xenbus_state) {
    // SAFETY: called only for devices we probed successfully, before remove.
    let fe = unsafe { Frontend::from_xenbus(Device::from_raw(dev)) };
    fe.backend_changed(backend_state);
}

/// xenbus `remove`.
///
/// # Safety
///
/// Called by xenbus once, for a device probed successfully.
unsafe extern "C" fn remove(dev: *mut b::xenbus_device) {
    // SAFETY: called once, for a device we probed successfully.
    unsafe { Frontend::remove(Device::from_raw(dev)) };
}

/// xenbus `resume`: the domain was restored (xl restore, migration).
///
/// # Safety
///
/// Called by xenbus for a device probed successfully and not yet removed.
unsafe extern "C" fn resume(dev: *mut b::xenbus_device) -> i32 {
    // SAFETY: called only for devices we probed successfully, before remove.
    let fe = unsafe { Frontend::from_xenbus(Device::from_raw(dev)) };
    fe.resume();
    0
}

struct NetfrontOpt {
    domain: DomainKind,
    _driver: XenbusDriver,
}

impl kernel::Module for NetfrontOpt {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let domain = xen_sys::check_environment()?;
        // Named differently from the C driver ("vif") so both can be loaded.
        let driver = XenbusDriver::register(Side::Frontend, c"netfront_opt", &IDS, probe, otherend_changed, remove, Some(resume))
            .inspect_err(|e| pr_err!("registering the xenbus driver failed: {:?}\n", e))?;
        Ok(NetfrontOpt {
            domain,
            _driver: driver,
        })
    }
}

impl Drop for NetfrontOpt {
    fn drop(&mut self) {
        // `_driver` is unregistered after this, removing every device.
        pr_info!("unloaded from {}\n", self.domain.name());
    }
}
