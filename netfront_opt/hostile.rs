// SPDX-License-Identifier: GPL-2.0

//! Test-only fault injection: this build of netfront_opt plays a hostile
//! frontend, so the rig can check that a backend survives one. Compiled only
//! into the rig's separate hostile build (`--cfg xennet_hostile`, see Kbuild
//! and `scripts/rig`); normal builds contain none of it.
//!
//! The `hostile` module parameter picks one misbehaviour, injected once into
//! the 10th packet transmitted (after the link is up and ARP is done).

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

use crate::netif::{TxFlags, TxFront, TxRequest, PAGE_SIZE};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::Channel;

/// A TX request whose grant reference was never issued.
pub(crate) const BAD_GREF: u32 = 1;
/// A single-slot packet of length 0 (XSA-448 class).
pub(crate) const ZERO_LEN: u32 = 2;
/// A first slot whose data crosses the end of its page.
pub(crate) const CROSS_PAGE: u32 = 3;
/// A chain of 19 slots (more than `XEN_NETIF_NR_SLOTS_MIN`).
pub(crate) const TOO_MANY_SLOTS: u32 = 4;
/// A request producer index 1000 ahead (XSA-39 class).
pub(crate) const PROD_JUMP: u32 = 5;
/// 20000 notifications in a row (XSA-391 class, seen from the other side).
pub(crate) const EVENT_STORM: u32 = 6;
/// `multi-queue-num-queues` = 99 in xenstore (see `device.rs`).
pub(crate) const BAD_QUEUES: u32 = 7;
/// Bad control-ring requests after a valid RSS setup, then a control-ring
/// producer index 1000 ahead (see `rss.rs`).
pub(crate) const BAD_CTRL: u32 = 8;
/// 100 multicast joins in a burst, over the backend's 64-group list
/// (XSA-527 class: filter updates racing the data path and teardown).
pub(crate) const MCAST_FLOOD: u32 = 9;
/// From the 10th packet on, 16 malformed requests (bad grant reference,
/// zero length) after every packet: a continuous flood, not one bad request.
pub(crate) const MALFORMED_FLOOD: u32 = 10;
/// Grant reuse: after registering normally, static-grant requests a
/// backend must refuse (bogus grant, duplicates, counts past the room and
/// past a page, an ungranted list page, a writable entry for a read-only
/// page), a `DEL` of an unknown grant, then 100 `DEL`/`ADD` cycles under
/// traffic (see `rss.rs`).
pub(crate) const BAD_STATIC: u32 = 11;
/// Once its pages are registered as static grants: the 300th receive
/// buffer posted names grant 0xdead, which it never granted (a backend
/// posting receive pages to a NIC must not take it).
pub(crate) const BAD_RX_GREF: u32 = 12;
/// `multi-queue-num-queues` = 0 in xenstore (see `device.rs`).
pub(crate) const ZERO_QUEUES: u32 = 13;
/// `tx-ring-ref` names grant 0xdead, never granted (XSA-362 class: the
/// backend's ring map fails; see `device.rs`).
pub(crate) const BAD_RING_REF: u32 = 14;

/// Packets sent normally before the injection.
const TRIGGER_AT: u32 = 10;
static SENT: AtomicU32 = AtomicU32::new(0);
/// Set once a raw producer index was published: transmitting more would
/// overwrite it before the backend looks.
static FROZEN: AtomicU32 = AtomicU32::new(0);

/// True when the hostile frontend must not transmit any more.
pub(crate) fn frozen() -> bool {
    FROZEN.load(Ordering::Relaxed) != 0
}

/// The misbehaviour chosen at load.
pub(crate) fn mode() -> u32 {
    crate::module_parameters::hostile.value()
}

/// True once, for the packet at which a burst of multicast joins goes out
/// (`MCAST_FLOOD`; the connection sends them, as it tracks their ids).
pub(crate) fn mcast_flood_now() -> bool {
    mode() == MCAST_FLOOD && SENT.fetch_add(1, Ordering::Relaxed) + 1 == TRIGGER_AT
}

/// True for every packet from the 10th on in `MALFORMED_FLOOD` mode (the
/// connection queues the requests, as it tracks their ids).
pub(crate) fn malformed_flood_now() -> bool {
    if mode() != MALFORMED_FLOOD {
        return false;
    }
    let n = SENT.fetch_add(1, Ordering::Relaxed) + 1;
    if n == TRIGGER_AT {
        pr_warn!("hostile: flooding malformed TX requests from now on\n");
    }
    n >= TRIGGER_AT
}

/// Receive buffers posted since the static grants were registered
/// (`BAD_RX_GREF`; 0: not registered yet).
static RX_POSTED: AtomicU32 = AtomicU32::new(0);

/// The pages are registered as static grants: count posts from now on.
pub(crate) fn statics_registered() {
    RX_POSTED.store(1, Ordering::Relaxed);
}

/// The grant to post for a receive buffer whose own is `gref`: 0xdead once
/// in `BAD_RX_GREF` mode, after the static grants were registered.
pub(crate) fn rx_gref(gref: u32) -> u32 {
    if mode() != BAD_RX_GREF || RX_POSTED.load(Ordering::Relaxed) == 0 || RX_POSTED.fetch_add(1, Ordering::Relaxed) != 300 {
        return gref;
    }
    pr_warn!("hostile: receive buffer posted with grant 0xdead\n");
    0xdead
}

/// When to inject: before the packet's requests are published (rewriting
/// them) or after (raw ring writes).
#[derive(PartialEq, Eq)]
pub(crate) enum Phase {
    BeforePush,
    AfterPush,
}

/// Called for each transmitted packet whose `slots` requests were just
/// written (`BeforePush`) and then published (`AfterPush`).
pub(crate) fn inject(tx: &mut TxFront<XenBarriers>, irq: Channel, slots: usize, phase: Phase) {
    let m = mode();
    if !matches!(m, BAD_GREF | ZERO_LEN | CROSS_PAGE | TOO_MANY_SLOTS | PROD_JUMP | EVENT_STORM) {
        return;
    }
    let n = if phase == Phase::BeforePush {
        SENT.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        SENT.load(Ordering::Relaxed)
    };
    if n != TRIGGER_AT {
        return;
    }
    let ring = tx.ring.shared();
    let pvt = tx.ring.req_prod_pvt();
    let first = pvt.wrapping_sub(slots as u32);
    let req = ring.read_req(first);
    let rewrite = |gref, offset, flags, size| ring.write_req(first, TxRequest::new(gref, offset, flags, req.id(), size));
    match (m, phase) {
        (BAD_GREF, Phase::BeforePush) => {
            pr_warn!("hostile: TX request with grant reference 0x7ffffff0\n");
            rewrite(0x7fff_fff0, req.offset(), req.flags(), req.size());
        }
        (ZERO_LEN, Phase::BeforePush) => {
            pr_warn!("hostile: zero-length TX packet\n");
            // A lone slot: no chain follows it.
            let flags = TxFlags(req.flags().0 & !(TxFlags::MORE_DATA.0 | TxFlags::EXTRA_INFO.0));
            rewrite(req.gref(), 0, flags, 0);
        }
        (CROSS_PAGE, Phase::BeforePush) => {
            pr_warn!("hostile: TX slot crossing its page\n");
            rewrite(req.gref(), (PAGE_SIZE - 8) as u16, req.flags(), req.size().max(64));
        }
        (TOO_MANY_SLOTS, Phase::AfterPush) => {
            pr_warn!("hostile: TX chain of 19 slots\n");
            for i in 0..19u32 {
                let flags = if i < 18 { TxFlags::MORE_DATA } else { TxFlags(0) };
                let size = if i == 0 { 19 * 100 } else { 100 };
                ring.write_req(pvt.wrapping_add(i), TxRequest::new(req.gref(), 0, flags, i as u16, size));
            }
            ring.fault_inject_req_prod(pvt.wrapping_add(19));
            FROZEN.store(1, Ordering::Relaxed);
            irq.notify();
        }
        (PROD_JUMP, Phase::AfterPush) => {
            pr_warn!("hostile: TX request producer 1000 ahead\n");
            ring.fault_inject_req_prod(pvt.wrapping_add(1000));
            FROZEN.store(1, Ordering::Relaxed);
            irq.notify();
        }
        (EVENT_STORM, Phase::AfterPush) => {
            pr_warn!("hostile: 20000 notifications\n");
            for _ in 0..20000 {
                irq.notify();
            }
        }
        _ => {}
    }
}
