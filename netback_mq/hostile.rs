// SPDX-License-Identifier: GPL-2.0

//! Test-only fault injection: this build of the backend (module
//! `netback_hostile`, xenbus driver `netback_hostile`) plays a hostile
//! backend, so the rig can check that a frontend survives one. Compiled only
//! into the rig's separate hostile build (`--cfg xennet_hostile`, see Kbuild
//! and `scripts/rig`); normal builds contain none of it.
//!
//! The `hostile` module parameter picks one misbehaviour. Most are injected
//! once, into the 10th packet delivered to the guest (after the link is
//! up); the handshake, static-grant and rewriting modes say when they act.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

use crate::netif::{
    CtrlBack, CtrlResponse, CtrlStatus, CtrlType, GrantOps, GrefStore, RspStatus, RxBack, RxFlags, RxRequest,
    RxResponse, TxBack, TxResponse,
};
use crate::xen_sys::barrier::XenBarriers;

/// An RX response whose id is not the one posted in its slot.
pub(crate) const RX_BAD_ID: u32 = 1;
/// A response producer index 1000 ahead.
pub(crate) const RX_PROD_JUMP: u32 = 2;
/// A 19-slot RX response chain (more than a packet may have).
pub(crate) const RX_LONG_CHAIN: u32 = 3;
/// An RX response whose data would cross the end of its page.
pub(crate) const RX_CROSS_PAGE: u32 = 4;
/// 20000 notifications in a row on the RX channel (XSA-391 class).
pub(crate) const EVENT_STORM: u32 = 5;
/// A TX response with an id never issued.
pub(crate) const TX_BAD_ID: u32 = 6;
/// Grant reuse: `DEL_GREF_MAPPING` requests are never answered.
pub(crate) const DEL_UNANSWERED: u32 = 7;
/// Grant reuse: `DEL_GREF_MAPPING` answered `SUCCESS` with the request's
/// count, but nothing unmapped and no entry's status written.
pub(crate) const DEL_LIES: u32 = 8;
/// An RX response with the error status (XSA-405 class: the frontend's
/// error path must drop the packet and recycle its buffers).
pub(crate) const RX_ERROR: u32 = 9;
/// An RX response with a status below any the protocol defines (-3).
pub(crate) const RX_BAD_STATUS: u32 = 10;

/// A TX response with a status no backend may send (-7).
pub(crate) const TX_BAD_STATUS: u32 = 11;
/// The RX response producer moved back by one, below what the frontend
/// already consumed.
pub(crate) const RX_PROD_BACK: u32 = 12;
/// XSA-155 class (double fetch): for the 10th to the 40th packet, once its
/// responses are published and the frontend notified, the last one is
/// rewritten 50 000 times, alternately crossing its page with more data to
/// follow and the original, then left as the original.
pub(crate) const RX_REWRITE: u32 = 13;
/// Handshake: `multi-queue-max-queues` = 4294967295.
pub(crate) const HUGE_MAX_QUEUES: u32 = 14;
/// Handshake: every `feature-*` key written as `abc`.
pub(crate) const GARBAGE_FEATURES: u32 = 15;
/// Handshake: the backend never leaves InitWait, whatever the frontend does.
pub(crate) const STAY_IN_INIT_WAIT: u32 = 16;

/// XSA-403 class: every page the guest registers as a static grant is
/// scanned for its marker (64 bytes of `STALE_MARKER`) when registered, and
/// again, as a control, once 300 packets were delivered.
pub(crate) const STALE_SCAN: u32 = 17;
/// Grant reuse with a backend that writes late: once the guest has
/// consumed a packet delivered through its static grants, and before any of
/// its buffers can have been taken again, the packet's pages are filled with
/// 'Q'. A frontend that handed those pages up its stack instead of copying
/// out of them would see its received data change.
pub(crate) const LATE_WRITE: u32 = 18;
/// Grant reuse: `ADD_GREF_MAPPING` carried out (everything mapped) but
/// answered with a status no backend may send (99).
pub(crate) const ADD_WRONG_STATUS: u32 = 19;

/// `RX_REWRITE`: writes per rewritten slot, enough to span the peer's
/// reaction to the notification under QEMU's TCG (a few milliseconds).
const REWRITES: u32 = 50_000;
/// `RX_REWRITE`: packets whose responses are rewritten.
const REWRITE_PACKETS: u32 = 30;
/// `RX_REWRITE`: the last packet whose response was rewritten.
static REWRITTEN: AtomicU32 = AtomicU32::new(0);
/// `STALE_SCAN`: the byte the suite fills the guest's free memory with ('Z').
const STALE_MARKER: u8 = 0x5a;
/// `STALE_SCAN`: packets delivered before the control scan.
const STALE_SCAN_AFTER: u32 = 300;

/// After the features were written (in the same transaction): the
/// handshake faults.
pub(crate) fn advertise(t: &crate::xen_sys::xenbus::Transaction, dir: &CStr) -> Result {
    match mode() {
        HUGE_MAX_QUEUES => {
            pr_warn!("hostile: multi-queue-max-queues = 4294967295\n");
            t.write_u32(dir, c"multi-queue-max-queues", u32::MAX)
        }
        GARBAGE_FEATURES => {
            pr_warn!("hostile: every feature key written as abc\n");
            for key in [
                c"feature-sg",
                c"feature-gso-tcpv4",
                c"feature-gso-tcpv6",
                c"feature-ipv6-csum-offload",
                c"feature-rx-copy",
                c"feature-rx-flip",
                c"feature-split-event-channels",
                c"feature-ctrl-ring",
                c"feature-multicast-control",
                c"feature-xdp-headroom",
            ] {
                t.write(dir, key, c"abc")?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// True when the backend must ignore the frontend's state change (it stays
/// in InitWait): Initialised and Connected are ignored, closing is not.
pub(crate) fn stay_in_init_wait(fe_state: u32) -> bool {
    use crate::xen_sys::xenbus::state;
    if mode() != STAY_IN_INIT_WAIT || !matches!(fe_state, state::INITIALISED | state::CONNECTED) {
        return false;
    }
    pr_warn!("hostile: frontend state {} ignored, staying in InitWait\n", fe_state);
    true
}

/// `STALE_SCAN`: scans `statics` and logs what it found.
pub(crate) fn scan_statics(statics: &crate::xen_sys::reuse::StaticGrants, queue: u32, when: &str) {
    if mode() != STALE_SCAN {
        return;
    }
    let (pages, marked) = statics.pages_holding(STALE_MARKER);
    pr_warn!("hostile: queue {}: {} static grant pages scanned {}, {} hold the marker\n", queue, pages, when, marked);
}

/// After a guest-RX flush: the control scan, once.
pub(crate) fn rx_after_scan(statics: Option<&crate::xen_sys::reuse::StaticGrants>) {
    static DONE: AtomicU32 = AtomicU32::new(0);
    if mode() != STALE_SCAN || DELIVERED.load(Ordering::Relaxed) < STALE_SCAN_AFTER {
        return;
    }
    if let Some(s) = statics {
        if DONE.swap(1, Ordering::Relaxed) == 0 {
            scan_statics(s, 0, "after 300 packets");
        }
    }
}

/// A queue's `LATE_WRITE` state: the last packet delivered through static
/// grants. Lives in the queue's connection (its lock).
#[derive(Default)]
pub(crate) struct LateWrite {
    grefs: [u32; crate::netif::NR_SLOTS_MIN],
    n: usize,
    /// The RX request consumer after the packet's buffers were taken: its
    /// responses end there (one per request, in order).
    req_cons: u32,
}

static LATE_WRITTEN: AtomicU32 = AtomicU32::new(0);

impl LateWrite {
    /// The packet just copied into `dst` through static grants.
    pub(crate) fn remember(&mut self, rx: &RxBack<XenBarriers>, dst: &[crate::netif::Seg]) {
        if mode() != LATE_WRITE {
            return;
        }
        self.n = 0;
        for d in dst.iter().take(self.grefs.len()) {
            if let crate::netif::Frame::Grant(g) = d.frame {
                self.grefs[self.n] = g;
                self.n += 1;
            }
        }
        self.req_cons = rx.ring.req_cons();
    }

    /// Before the next packet takes buffers: fills the remembered packet's
    /// pages if its responses are published and the guest went idle having
    /// consumed them, and no buffer was taken since (so none of its pages
    /// can hold a newer packet).
    pub(crate) fn write_if_consumed(&mut self, rx: &RxBack<XenBarriers>, statics: Option<&mut crate::xen_sys::reuse::StaticGrants>) {
        if self.n == 0 {
            return;
        }
        if rx.ring.req_cons() != self.req_cons {
            self.n = 0;
            return;
        }
        let ring = rx.ring.shared();
        let published = rx.ring.rsp_prod_pvt().wrapping_sub(self.req_cons) as i32 >= 0;
        let consumed = ring.raw_rsp_event().wrapping_sub(self.req_cons.wrapping_add(1)) as i32 >= 0;
        if !(published && consumed) {
            return;
        }
        let Some(st) = statics else { return };
        let mut filled = 0;
        for g in &self.grefs[..self.n] {
            filled += usize::from(st.fill(*g, b'Q'));
        }
        self.n = 0;
        let total = LATE_WRITTEN.fetch_add(1, Ordering::Relaxed) + 1;
        pr_warn!("hostile: consumed packet {} overwritten with 'Q' in its {} page(s)\n", total, filled);
    }
}

/// The control ring's request handling, with the static-grant faults.
pub(crate) fn ctrl_process_one<G: GrantOps + GrefStore>(
    back: &mut CtrlBack<XenBarriers>,
    g: &mut G,
) -> crate::netif::Result<Option<Option<crate::netif::Error>>> {
    let Some(req) = back.ring.next_request()? else {
        return Ok(None);
    };
    let del = req.ty() == CtrlType::DEL_GREF_MAPPING;
    let rsp = match mode() {
        ADD_WRONG_STATUS if req.ty() == CtrlType::ADD_GREF_MAPPING => {
            let (rsp, err) = back.state.handle(&req, g);
            pr_warn!("hostile: ADD_GREF_MAPPING of {} entries answered with status 99 (was {})\n", req.data()[2], rsp.status().0);
            back.ring.push_response(CtrlResponse::new(req.id(), req.ty(), CtrlStatus(99), rsp.data()))?;
            return Ok(Some(err));
        }
        DEL_UNANSWERED if del => {
            pr_warn!("hostile: DEL_GREF_MAPPING of {} entries left unanswered\n", req.data()[2]);
            return Ok(Some(None));
        }
        DEL_LIES if del => {
            pr_warn!("hostile: DEL_GREF_MAPPING of {} entries answered SUCCESS, nothing unmapped\n", req.data()[2]);
            CtrlResponse::new(req.id(), req.ty(), CtrlStatus::SUCCESS, req.data()[2])
        }
        _ => {
            let (rsp, err) = back.state.handle(&req, g);
            back.ring.push_response(rsp)?;
            return Ok(Some(err));
        }
    };
    back.ring.push_response(rsp)?;
    Ok(Some(None))
}

/// Packets delivered normally before the injection.
const TRIGGER_AT: u32 = 10;
static DELIVERED: AtomicU32 = AtomicU32::new(0);
/// Set once a raw producer index was published: delivering more would
/// overwrite it before the frontend looks.
static FROZEN: AtomicU32 = AtomicU32::new(0);

/// True when the hostile backend must not deliver any more. In mode
/// [`RX_PROD_BACK`], once the trigger packet was delivered and the frontend
/// went idle having consumed every response (its `rsp_event` is one past
/// them), this moves `rsp_prod` back by one and notifies, then freezes.
pub(crate) fn rx_hold(rx: &RxBack<XenBarriers>, notify: impl Fn()) -> bool {
    if FROZEN.load(Ordering::Relaxed) != 0 {
        return true;
    }
    if mode() != RX_PROD_BACK || DELIVERED.load(Ordering::Relaxed) < TRIGGER_AT {
        return false;
    }
    let ring = rx.ring.shared();
    let prod = rx.ring.rsp_prod_pvt();
    if ring.raw_rsp_event().wrapping_sub(prod) as i32 <= 0 {
        return false; // responses still unconsumed: deliver, look again later
    }
    pr_warn!("hostile: RX response producer moved back by one, below the frontend's consumer\n");
    ring.fault_inject_rsp_prod(prod.wrapping_sub(1));
    FROZEN.store(1, Ordering::Relaxed);
    notify();
    true
}
static TRANSMITTED: AtomicU32 = AtomicU32::new(0);

/// The misbehaviour chosen at load.
pub(crate) fn mode() -> u32 {
    crate::module_parameters::hostile.value()
}

/// After the responses for a guest-RX packet (`slots` of them) were
/// written, before they are published.
pub(crate) fn rx_before_push(rx: &mut RxBack<XenBarriers>, slots: usize) {
    let n = DELIVERED.fetch_add(1, Ordering::Relaxed) + 1;
    if n != TRIGGER_AT {
        return;
    }
    let ring = rx.ring.shared();
    let first = rx.ring.rsp_prod_pvt().wrapping_sub(slots as u32);
    let rsp = ring.read_rsp(first);
    match mode() {
        RX_BAD_ID => {
            pr_warn!("hostile: RX response with a foreign id\n");
            ring.write_rsp(first, RxResponse::new(rsp.id() ^ 0x4000, rsp.offset(), rsp.flags(), rsp.status()));
        }
        RX_ERROR => {
            pr_warn!("hostile: RX response with the error status\n");
            ring.write_rsp(first, RxResponse::new(rsp.id(), rsp.offset(), rsp.flags(), -1));
        }
        RX_BAD_STATUS => {
            pr_warn!("hostile: RX response with status -3\n");
            ring.write_rsp(first, RxResponse::new(rsp.id(), rsp.offset(), rsp.flags(), -3));
        }
        RX_CROSS_PAGE => {
            pr_warn!("hostile: RX response crossing its page\n");
            ring.write_rsp(first, RxResponse::new(rsp.id(), 4000, rsp.flags(), 1000));
        }
        RX_LONG_CHAIN => {
            let mut bufs = [RxRequest::zeroed(); 19];
            if !matches!(rx.take_buffers(&mut bufs), Ok(true)) {
                return;
            }
            pr_warn!("hostile: 19-slot RX response chain\n");
            for (i, b) in bufs.iter().enumerate() {
                let flags = if i < 18 { RxFlags::MORE_DATA } else { RxFlags(0) };
                let _ = rx.ring.push_response(RxResponse::new(b.id(), 0, flags, 100));
            }
        }
        _ => {}
    }
}

/// After guest-RX responses were published.
pub(crate) fn rx_after_push(rx: &RxBack<XenBarriers>, notify: impl Fn()) {
    if mode() == RX_REWRITE {
        let n = DELIVERED.load(Ordering::Relaxed);
        // Once per delivered packet (a flush may deliver none).
        if (TRIGGER_AT..TRIGGER_AT + REWRITE_PACKETS).contains(&n) && REWRITTEN.swap(n, Ordering::Relaxed) != n {
            if n == TRIGGER_AT {
                pr_warn!("hostile: rewriting published RX responses while the frontend reads them\n");
            }
            let ring = rx.ring.shared();
            let last = rx.ring.rsp_prod_pvt().wrapping_sub(1);
            let rsp = ring.read_rsp(last);
            let bad = RxResponse::new(rsp.id(), 4000, RxFlags::MORE_DATA, 1000);
            notify();
            for i in 0..REWRITES {
                ring.write_rsp(last, if i % 2 == 0 { bad } else { rsp });
            }
            ring.write_rsp(last, rsp);
        }
        return;
    }
    if DELIVERED.load(Ordering::Relaxed) != TRIGGER_AT {
        return;
    }
    match mode() {
        RX_PROD_JUMP => {
            pr_warn!("hostile: RX response producer 1000 ahead\n");
            rx.ring.shared().fault_inject_rsp_prod(rx.ring.rsp_prod_pvt().wrapping_add(1000));
            FROZEN.store(1, Ordering::Relaxed);
            notify();
        }
        EVENT_STORM => {
            pr_warn!("hostile: 20000 notifications\n");
            for _ in 0..20000 {
                notify();
            }
        }
        _ => {}
    }
    // Fire once.
    DELIVERED.fetch_add(1, Ordering::Relaxed);
}

/// Before guest-TX responses are published (`answered` were just written).
pub(crate) fn tx_before_push(tx: &TxBack<XenBarriers>, answered: usize) {
    if !matches!(mode(), TX_BAD_ID | TX_BAD_STATUS) || answered == 0 {
        return;
    }
    if TRANSMITTED.fetch_add(1, Ordering::Relaxed) + 1 != TRIGGER_AT {
        return;
    }
    let last = tx.ring.rsp_prod_pvt().wrapping_sub(1);
    let rsp = tx.ring.shared().read_rsp(last);
    let rsp = if mode() == TX_BAD_ID {
        pr_warn!("hostile: TX response with an id never issued\n");
        TxResponse::new(0x7ff0, rsp.status())
    } else {
        pr_warn!("hostile: TX response with status -7\n");
        TxResponse::new(rsp.id(), RspStatus(-7))
    };
    tx.ring.shared().write_rsp(last, rsp);
}
