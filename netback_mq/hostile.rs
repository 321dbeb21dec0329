// SPDX-License-Identifier: GPL-2.0

//! Test-only fault injection: this build of the backend (module
//! `netback_hostile`, xenbus driver `netback_hostile`) plays a hostile
//! backend, so the rig can check that a frontend survives one. Compiled only
//! into the rig's separate hostile build (`--cfg xennet_hostile`, see Kbuild
//! and `scripts/rig`); normal builds contain none of it.
//!
//! The `hostile` module parameter picks one misbehaviour, injected once into
//! the 10th packet delivered to the guest (after the link is up).

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;

use crate::netif::{
    CtrlBack, CtrlResponse, CtrlStatus, CtrlType, GrantOps, GrefStore, RxBack, RxFlags, RxRequest, RxResponse, TxBack,
    TxResponse,
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

/// True when the hostile backend must not deliver any more.
pub(crate) fn frozen() -> bool {
    FROZEN.load(Ordering::Relaxed) != 0
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
    if mode() != TX_BAD_ID || answered == 0 {
        return;
    }
    if TRANSMITTED.fetch_add(1, Ordering::Relaxed) + 1 != TRIGGER_AT {
        return;
    }
    pr_warn!("hostile: TX response with an id never issued\n");
    let last = tx.ring.rsp_prod_pvt().wrapping_sub(1);
    let rsp = tx.ring.shared().read_rsp(last);
    tx.ring.shared().write_rsp(last, TxResponse::new(0x7ff0, rsp.status()));
}
