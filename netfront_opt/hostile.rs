// SPDX-License-Identifier: GPL-2.0

//! Test-only fault injection: this build of netfront_opt plays a hostile
//! frontend, so the rig can check that a backend survives one. Compiled only
//! into the rig's separate hostile build (`--cfg xennet_hostile`, see Kbuild
//! and `scripts/rig`); normal builds contain none of it.
//!
//! The `hostile` module parameter picks one misbehaviour. Most are injected
//! once, into the 10th packet transmitted (after the link is up and ARP is
//! done); the xenstore, flood and rewriting modes say when they act.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

use crate::netif::{TxFlags, TxFrag, TxFront, TxRequest, NR_SLOTS_MIN, PAGE_SIZE};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::Channel;
use crate::xen_sys::grant::GrantedPage;

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
/// The first 144-byte packet from the 10th on (the suite's `ping -s 102`)
/// as 18 slots of 8 bytes each (XSA-432 class: many tiny slots, all of
/// them shorter than the 256 bytes a backend copies into the linear area).
pub(crate) const TINY_SLOTS: u32 = 15;
/// The first 60-byte packet from the 10th on (`ping -s 18`) as 60 bytes in
/// the first slot followed by two zero-length slots (XSA-448's shape).
pub(crate) const ZERO_TAIL: u32 = 16;
/// The first IPv4 TCP packet with payload and without GSO from the 10th
/// on, its headers split over three slots: Ethernet (14 bytes), IPv4 (20)
/// and TCP (20), the rest after them (XSA-423 class).
pub(crate) const SPLIT_HEADERS: u32 = 17;
/// The same for the first GSO packet from the 10th on (the GSO extra slot
/// follows the 14-byte first slot).
pub(crate) const SPLIT_HEADERS_GSO: u32 = 18;
/// From the 10th packet on, once the backend has answered every request
/// published before the packet: the request producer index is moved back
/// to one below them, after the backend consumed them.
pub(crate) const PROD_BACK: u32 = 19;
/// xenstore garbage: `tx-ring-ref` removed before the backend reads it
/// (see `device.rs`).
pub(crate) const NO_RING_REF: u32 = 20;
/// xenstore garbage: `event-channel` (or `event-channel-tx`) written as
/// `abc` (see `device.rs`).
pub(crate) const ABC_EVTCHN: u32 = 21;
/// From the 10th packet on, a multicast join and a leave after every
/// packet (XSA-527 class: filter updates racing traffic and the vif's
/// teardown; the suite detaches the vif meanwhile).
pub(crate) const MCAST_CHURN: u32 = 22;
/// XSA-155 class (double fetch): for the 10th to the 40th packet, once it
/// is published and the backend notified, its first request is rewritten
/// until the backend answers it (at most `REWRITES` times), alternately an
/// oversized slot crossing its page and the original.
pub(crate) const REWRITE_PUBLISHED: u32 = 23;
/// Most writes per rewritten slot (tens of milliseconds under QEMU's TCG).
const REWRITES: u32 = 2_000_000;
/// Packets whose requests `REWRITE_PUBLISHED` rewrites.
const REWRITE_PACKETS: u32 = 30;

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

/// For every packet from the 10th on in `MCAST_CHURN` mode: the packet's
/// number (the connection picks the groups from it and queues the updates,
/// as it tracks their ids).
pub(crate) fn mcast_churn_now() -> Option<u32> {
    if mode() != MCAST_CHURN {
        return None;
    }
    let n = SENT.fetch_add(1, Ordering::Relaxed) + 1;
    if n == TRIGGER_AT {
        pr_warn!("hostile: multicast joins and leaves after every packet from now on\n");
    }
    (n >= TRIGGER_AT).then_some(n)
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

/// Set once a packet was laid out by [`relayout`].
static RELAID: AtomicU32 = AtomicU32::new(0);

/// Leading slot lengths of the layout the mode gives a packet of `len`
/// bytes (`gso`: with a GSO extra), whose start `first` holds, in `n` page
/// slots; `None` when this packet does not have the mode's shape.
fn layout_for(m: u32, first: &GrantedPage, len: usize, gso: bool, n: usize) -> Option<&'static [usize]> {
    // Ethernet, a 20-byte IPv4 header and 20 bytes of ICMP or TCP header.
    let mut h = [0u8; 54];
    if len < h.len() || first.read(0, &mut h).is_err() {
        return None;
    }
    let ipv4 = |proto: u8| h[12..14] == [0x08, 0x00] && h[14] == 0x45 && h[23] == proto;
    let tot_len = usize::from(u16::from_be_bytes([h[16], h[17]]));
    let tcp_payload = tot_len > 20 + usize::from(h[46] >> 4) * 4;
    match m {
        TINY_SLOTS if len == 8 * NR_SLOTS_MIN && !gso && ipv4(1) => Some(&[8; NR_SLOTS_MIN]),
        ZERO_TAIL if len == 60 && !gso && ipv4(1) => Some(&[60, 0, 0]),
        // Three header slots, then the rest of the first page and the
        // other pages.
        SPLIT_HEADERS | SPLIT_HEADERS_GSO
            if (m == SPLIT_HEADERS_GSO) == gso && n + 3 <= NR_SLOTS_MIN && ipv4(6) && tcp_payload =>
        {
            Some(&[14, 20, 20])
        }
        _ => None,
    }
}

/// Called for each packet before its requests are written: `frags` holds
/// its `n` page slots (each from offset 0) and `owner` the buffer each one
/// gives back when answered. In the layout modes, the packet chosen is cut
/// into the mode's leading slots (all in the first page), the rest of the
/// first page and the other pages. A page named by more than one slot is
/// given back by the one at offset 0 (every lead is non-empty from offset
/// 0); the others' completions carry `no_buf`.
/// Returns the number of slots.
pub(crate) fn relayout(
    first: &GrantedPage,
    len: usize,
    gso: bool,
    frags: &mut [TxFrag; NR_SLOTS_MIN],
    owner: &mut [u16; NR_SLOTS_MIN],
    n: usize,
    no_buf: u16,
) -> usize {
    let m = mode();
    if !matches!(m, TINY_SLOTS | ZERO_TAIL | SPLIT_HEADERS | SPLIT_HEADERS_GSO)
        || SENT.fetch_add(1, Ordering::Relaxed) + 1 < TRIGGER_AT
        || RELAID.load(Ordering::Relaxed) != 0
    {
        return n;
    }
    let Some(lead) = layout_for(m, first, len, gso, n) else {
        return n;
    };
    let (pages, bufs) = (*frags, *owner);
    let mut out = 0;
    let mut pos = 0;
    let mut add = |page: usize, offset: usize, size: usize| {
        frags[out] = TxFrag { gref: pages[page].gref, offset: offset as u16, len: size as u16 };
        owner[out] = if offset == 0 { bufs[page] } else { no_buf };
        out += 1;
    };
    // The leading slots lie in the first page (at most 144 bytes).
    for &size in lead {
        add(0, pos, size);
        pos += size;
    }
    if pos < usize::from(pages[0].len) {
        add(0, pos, usize::from(pages[0].len) - pos);
    }
    for (page, f) in pages.iter().enumerate().take(n).skip(1) {
        add(page, 0, usize::from(f.len));
    }
    RELAID.store(1, Ordering::Relaxed);
    pr_warn!("hostile: {}-byte TX packet{} laid out as {} slots, leading slots {:?}\n", len, if gso { " (GSO)" } else { "" }, out, lead);
    out
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
pub(crate) fn inject(tx: &mut TxFront<XenBarriers>, irq: &Channel<'_>, slots: usize, phase: Phase) {
    let m = mode();
    if !matches!(
        m,
        BAD_GREF | ZERO_LEN | CROSS_PAGE | TOO_MANY_SLOTS | PROD_JUMP | EVENT_STORM | PROD_BACK | REWRITE_PUBLISHED
    ) {
        return;
    }
    let n = if phase == Phase::BeforePush {
        SENT.fetch_add(1, Ordering::Relaxed) + 1
    } else {
        SENT.load(Ordering::Relaxed)
    };
    let ring = tx.ring.shared();
    let pvt = tx.ring.req_prod_pvt();
    let first = pvt.wrapping_sub(slots as u32);
    if m == PROD_BACK {
        // Every request before this packet answered: the backend has
        // consumed past `first - 1`, whether or not it saw this packet.
        if phase == Phase::AfterPush && n >= TRIGGER_AT && ring.raw_rsp_prod().wrapping_sub(first) as i32 >= 0 {
            pr_warn!("hostile: TX request producer moved back from {} to {}, below what the backend consumed\n", pvt, first.wrapping_sub(1));
            ring.fault_inject_req_prod(first.wrapping_sub(1));
            FROZEN.store(1, Ordering::Relaxed);
            irq.notify();
        }
        return;
    }
    if m == REWRITE_PUBLISHED {
        if phase == Phase::AfterPush && (TRIGGER_AT..TRIGGER_AT + REWRITE_PACKETS).contains(&n) {
            if n == TRIGGER_AT {
                pr_warn!("hostile: rewriting published TX requests while the backend reads them\n");
            }
            let req = ring.read_req(first);
            let bad = TxRequest::new(req.gref(), (PAGE_SIZE - 8) as u16, TxFlags::MORE_DATA, req.id(), u16::MAX);
            irq.notify();
            // Until the backend answered the request (it has read it by
            // then), or REWRITES writes; the original is written back only
            // if unanswered (the answer goes in the same slot).
            let answered = || ring.raw_rsp_prod().wrapping_sub(first.wrapping_add(1)) as i32 >= 0;
            let mut i = 0;
            while i < REWRITES && !answered() {
                ring.write_req(first, if i % 2 == 0 { bad } else { req });
                i += 1;
            }
            if !answered() {
                ring.write_req(first, req);
            }
        }
        return;
    }
    if n != TRIGGER_AT {
        return;
    }
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
