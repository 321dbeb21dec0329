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
use netif::RX_RING_SIZE;

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
        // The data path's switches (Documentation/netfront_opt.md,
        // "Tuning"), read at each connection; `make bench` measures each.
        // On by default where its ablation shows it pays (tx_moderation).
        tx_batch: u32 {
            default: 0,
            description: "Transmit: publish the packets the stack hands over in one burst (xmit_more) with one notification (1), or each packet on its own (0)",
        },
        tx_moderation: u32 {
            default: 1,
            description: "Transmit completions: an event once half the requests in flight have completed (1), or at the next completion (0)",
        },
        rx_refill_batch: u32 {
            default: 0,
            description: "Receive: recycled buffers go back to the backend this many at a time, or at once when it holds less than half the ring (0: once per receive pass, up to 64 packets)",
        },
        rx_copybreak: u32 {
            default: 0,
            description: "Receive: frames up to this many bytes are copied whole into the skb's head; longer ones get a 256-byte head and page fragments (0: always the latter)",
        },
        gro: u32 {
            default: 1,
            description: "Receive: hand packets to GRO (1) or straight to the stack (0)",
        },
        tx_zerocopy: u32 {
            default: 0,
            description: "Transmit to a trusted backend without static grants: grant the pages of a packet's fragments as they are (1) or copy them into the queue's own pages (0)",
        },
        profile: u32 {
            default: 0,
            description: "Time each poll's stages (ethtool -S: *_prof_*_ns, with the polls) to find the per-packet costs (1), or not (0)",
        },
    },
}

/// The data path's switches, as the module parameters set them.
pub(crate) fn tuning() -> queue::Tuning {
    queue::Tuning {
        tx_batch: module_parameters::tx_batch.value() != 0,
        tx_moderation: module_parameters::tx_moderation.value() != 0,
        rx_refill_batch: module_parameters::rx_refill_batch.value().min(RX_RING_SIZE / 2),
        rx_copybreak: module_parameters::rx_copybreak.value().min(MAX_COPYBREAK) as usize,
        gro: module_parameters::gro.value() != 0,
        profile: module_parameters::profile.value() != 0,
        // The hostile builds rewrite copied packets' layout: they copy.
        tx_zerocopy: module_parameters::tx_zerocopy.value() != 0 && !cfg!(xennet_hostile),
    }
}

/// Largest `rx_copybreak`: a head this size still comes from the NAPI
/// page-fragment cache (at most an order-0 page with the skb's overhead).
const MAX_COPYBREAK: u32 = 2048;

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
