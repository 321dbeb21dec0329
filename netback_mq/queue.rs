// SPDX-License-Identifier: GPL-2.0

//! One connected queue: the frontend's TX and RX rings mapped into dom0, the
//! event channel(s), and the two copy paths.
//!
//! Guest transmit: each request chain is validated by the protocol core,
//! then its fragments are grant-copied from the guest's pages into a fresh
//! skb (headers into the linear area, the rest into page fragments) and
//! handed to the stack. Guest receive: an skb from the stack is grant-copied
//! into the buffers the guest posted, packed 4 KiB per buffer. The guest's
//! pages are never mapped into dom0, so nothing is left to unmap when a
//! packet is done and a frontend cannot make dom0 hold its pages.

use kernel::prelude::*;

use crate::netif::{
    self, split_contiguous, CopyOp, Credit, Error as NetifError, FlowHash, Frame, Gso, GsoType, RspStatus,
    RxBack, RxExtras, RxFlags, RxOut, RxRequest, RxRingKind, Seg, SharedRing, TxBack, TxEvent, TxFlags,
    TxPacket, TxRingKind, NR_SLOTS_MIN, PAGE_SIZE,
};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::bindings as b;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant;
pub(crate) use crate::xen_sys::netdev::{SkbBatch, Stats};
use crate::xen_sys::xenbus::MappedRing;

/// `skb->ip_summed` values.
const CHECKSUM_UNNECESSARY: u8 = 1;
const CHECKSUM_PARTIAL: u8 = 3;
/// Guest-TX bytes copied into the skb's linear area: enough for the
/// Ethernet, IP and TCP headers the stack reads first; the rest goes into
/// page fragments.
const TX_HEAD_LEN: usize = 256;
/// Most data buffers one guest-RX packet fills (a 64 KiB GSO packet).
const MAX_RX_BUFS: usize = NR_SLOTS_MIN;
/// Most page segments on the source side of one copy: a linear area over
/// two pages plus fragments, each possibly over several pages.
const MAX_SEGS: usize = 64;
/// Most grant-copy operations for one packet.
const MAX_OPS: usize = MAX_SEGS + MAX_RX_BUFS;

/// What the frontend accepts on its receive path (its `feature-*` keys).
#[derive(Clone, Copy, Default)]
pub(crate) struct FrontCaps {
    pub(crate) sg: bool,
    pub(crate) gso4: bool,
    pub(crate) gso6: bool,
    pub(crate) csum4: bool,
    pub(crate) csum6: bool,
}

/// Per-packet guest-receive settings from the vif's frontend configuration.
pub(crate) struct RxCfg {
    /// Bytes left free before the data in the first buffer (XDP).
    pub(crate) xdp_headroom: u16,
    /// The frontend's hash of the packet, sent as an extra.
    pub(crate) hash: Option<FlowHash>,
}

/// Outcome of offering an skb to the guest.
pub(crate) enum RxOutcome {
    /// Copied into guest buffers (the skb is ours to free).
    Delivered,
    /// Dropped (the skb is ours to free).
    Dropped,
    /// Not enough buffers posted: keep the skb and stop the queue.
    NoRoom,
}

/// A queue's connection to the frontend. Field order is drop order: the
/// event channels are unbound first, then the rings are unmapped.
pub(crate) struct Connection {
    irq: EventIrq,
    rx_irq: Option<EventIrq>,
    tx: TxBack<XenBarriers>,
    rx: RxBack<XenBarriers>,
    _tx_map: MappedRing,
    _rx_map: MappedRing,
    domid: u16,
    /// Set on a fatal protocol error: the queue carries nothing more.
    pub(crate) broken: Option<NetifError>,
    /// `broken` was logged and acted on.
    broken_reported: bool,
    /// Per-packet working arrays (on the heap: the copy paths run in
    /// softirq context, where stack is scarce).
    scratch: Scratch,
    /// Buffers the packet waiting for guest-RX room needs.
    rx_needed: u32,
    /// Guest-transmit rate limit (`rate` in xenstore).
    credit: Credit,
    /// A guest packet read from the ring but over the rate limit, and the
    /// time (µs) it may go.
    held: Option<(TxPacket, u64)>,
    /// Since when (µs) guest receive found too few buffers, if it does.
    rx_short_since: Option<u64>,
    /// The guest stopped posting buffers for longer than the stall timeout.
    pub(crate) rx_stalled: bool,
}

/// The clock the rate limit and stall detection use, in µs.
pub(crate) fn now_us() -> u64 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { b::xennet_shim_now_us() }
}

/// The working arrays of one packet's copy.
struct Scratch {
    src: KVec<Seg>,
    dst: KVec<Seg>,
    planned: KVec<CopyOp>,
    /// The planned copies as `GNTTABOP_copy` operations.
    ops: KVec<b::gnttab_copy>,
}

impl Scratch {
    fn new() -> Result<Self> {
        Ok(Self {
            src: KVec::from_elem(Seg::EMPTY, MAX_SEGS, GFP_KERNEL)?,
            dst: KVec::from_elem(Seg::EMPTY, MAX_SEGS, GFP_KERNEL)?,
            planned: KVec::from_elem(CopyOp::EMPTY, MAX_OPS, GFP_KERNEL)?,
            ops: KVec::with_capacity(MAX_OPS, GFP_KERNEL)?,
        })
    }
}

/// A planned copy's operations, converted for the hypervisor.
fn copy_plan(
    src: &[Seg],
    dst: &[Seg],
    planned: &mut [CopyOp],
    ops: &mut KVec<b::gnttab_copy>,
    domid: u16,
) -> Result<usize> {
    let n = netif::plan(src, dst, planned).map_err(|_| EINVAL)?;
    ops.clear();
    for op in &planned[..n] {
        ops.push(grant::copy_op(op, domid), GFP_ATOMIC)?;
    }
    Ok(n)
}

/// The page segments of an skb's data, in order.
fn skb_segments(skb: *mut b::sk_buff, out: &mut [Seg]) -> Option<usize> {
    // SAFETY: `skb` is a live skb handed to us by the stack; these read its
    // layout, which does not change while we hold it.
    let (data, headlen, nr_frags) = unsafe {
        (
            b::xennet_shim_skb_data(skb) as usize,
            b::xennet_shim_skb_headlen(skb) as usize,
            b::xennet_shim_skb_nr_frags(skb) as usize,
        )
    };
    let page_base = data & !(PAGE_SIZE - 1);
    let mut n = split_contiguous(
        data,
        headlen,
        // SAFETY: the linear area is directly mapped kernel memory; each
        // page it covers has a frame number.
        |i| Frame::Local(unsafe { b::xennet_shim_virt_to_gfn((page_base + i * PAGE_SIZE) as *const _) } as u64),
        out,
    )?;
    for i in 0..nr_frags {
        // SAFETY: `i` is below the skb's fragment count.
        let (page, off, size) = unsafe {
            (
                b::xennet_shim_skb_frag_page(skb, i as u32),
                b::xennet_shim_skb_frag_off(skb, i as u32) as usize,
                b::xennet_shim_skb_frag_size(skb, i as u32) as usize,
            )
        };
        let first = off / PAGE_SIZE;
        n += split_contiguous(
            off,
            size,
            // SAFETY: a fragment lies within its (possibly compound) page.
            |j| Frame::Local(unsafe { b::xennet_shim_page_nth_gfn(page, first + j) } as u64),
            out.get_mut(n..)?,
        )?;
    }
    Some(n)
}

impl Connection {
    /// Attaches to the frontend's rings (already mapped) with the event
    /// channel(s) bound.
    pub(crate) fn new(
        tx_map: MappedRing,
        rx_map: MappedRing,
        irq: EventIrq,
        rx_irq: Option<EventIrq>,
        domid: u16,
        credit: Credit,
    ) -> Result<KBox<Self>> {
        // SAFETY: each mapping is one page of the frontend's, mapped for as
        // long as this connection (a field, dropped after the rings) and
        // only accessed through the ring.
        let tx_sring = unsafe { SharedRing::<TxRingKind>::from_raw(tx_map.as_ptr(), PAGE_SIZE) }
            .map_err(|_| EINVAL)?;
        // SAFETY: as above.
        let rx_sring = unsafe { SharedRing::<RxRingKind>::from_raw(rx_map.as_ptr(), PAGE_SIZE) }
            .map_err(|_| EINVAL)?;
        let tx = TxBack::attach(tx_sring).map_err(|_| EINVAL)?;
        let rx = RxBack::attach(rx_sring).map_err(|_| EINVAL)?;
        let scratch = Scratch::new()?;
        Ok(KBox::new(
            Self {
                irq,
                rx_irq,
                tx,
                rx,
                _tx_map: tx_map,
                _rx_map: rx_map,
                domid,
                broken: None,
                broken_reported: false,
                scratch,
                rx_needed: 1,
                credit,
                held: None,
                rx_short_since: None,
                rx_stalled: false,
            },
            GFP_KERNEL,
        )?)
    }

    fn notify(&self, stats: &mut Stats) {
        stats.notifies += 1;
        // Responses to guest TX go on the TX channel, to guest RX on the
        // RX channel; a shared channel carries both.
        self.irq.notify();
    }

    fn notify_rx(&self, stats: &mut Stats) {
        stats.notifies += 1;
        self.rx_irq.as_ref().unwrap_or(&self.irq).notify();
    }

    /// Re-enables event delivery on the channel(s) flagged in `pending`
    /// (bit 0: TX or shared, bit 1: RX). `spurious`: the events brought no
    /// work (Xen then throttles a storming frontend).
    pub(crate) fn lateeoi(&self, pending: u32, spurious: bool) {
        if pending & 1 != 0 {
            self.irq.lateeoi(spurious);
        }
        if let (true, Some(rx)) = (pending & 2 != 0, self.rx_irq.as_ref()) {
            rx.lateeoi(spurious);
        }
    }

    /// Processes up to `budget` guest-TX packets into `batch`. Returns true
    /// if there was work; `Err` is a fatal protocol error (queue broken).
    pub(crate) fn guest_tx(
        &mut self,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        budget: usize,
        batch: &mut SkbBatch,
        stats: &mut Stats,
        ctrl: &crate::ctrl::VifCtrl,
    ) -> core::result::Result<bool, NetifError> {
        let mut work = false;
        let now = now_us();
        while batch.len() < budget && !batch.is_full() {
            let ev = match self.held.take() {
                Some((pkt, _)) => TxEvent::Packet(pkt),
                None => match self.tx.poll()? {
                    Some(ev) => ev,
                    None => break,
                },
            };
            work = true;
            match ev {
                TxEvent::Packet(pkt) => {
                    if let Err(at) = self.credit.consume(pkt.len() as u64, now) {
                        // Over the rate: keep it until the credit timer.
                        self.held = Some((pkt, at));
                        break;
                    }
                    let status = match self.build_skb(napi, netdev, &pkt, stats) {
                        Ok(skb) => {
                            batch.push(skb);
                            stats.rx_packets += 1;
                            stats.rx_bytes += pkt.len() as u64;
                            RspStatus::OKAY
                        }
                        Err(_) => {
                            stats.rx_errors += 1;
                            RspStatus::ERROR
                        }
                    };
                    self.tx.respond(&pkt, status)?;
                }
                TxEvent::Dropped(pkt, e) => {
                    warn_ratelimited!("domain {}: dropped a packet: {}\n", self.domid, e.as_str());
                    stats.rx_dropped += 1;
                    self.tx.respond(&pkt, RspStatus::ERROR)?;
                }
                TxEvent::Mcast(pkt) => {
                    // Honoured whether or not the frontend asked for
                    // filtering yet (netif.h): the list is kept either way.
                    let ok = ctrl.mcast_update(pkt.mcast_add, pkt.mcast_del);
                    self.tx.respond(&pkt, if ok { RspStatus::OKAY } else { RspStatus::ERROR })?;
                }
            }
        }
        #[cfg(xennet_hostile)]
        crate::hostile::tx_before_push(&self.tx, usize::from(work));
        if work && self.tx.push() {
            self.notify(stats);
        }
        Ok(work)
    }

    /// The fatal error, the first time it is asked for after it happened
    /// (so it is logged and acted on once, wherever it was found).
    pub(crate) fn take_new_error(&mut self) -> Option<NetifError> {
        if self.broken_reported {
            return None;
        }
        self.broken_reported = self.broken.is_some();
        self.broken
    }

    /// If a packet waits for rate-limit credit: µs from now until it may go.
    pub(crate) fn rate_wait_us(&self) -> Option<u64> {
        self.held.map(|(_, at)| at.saturating_sub(now_us()))
    }

    /// Answers every request the frontend left on the TX ring (dropped)
    /// before the rings go, so it can release its buffers cleanly.
    pub(crate) fn drain_tx(&mut self) {
        if let Some((pkt, _)) = self.held.take() {
            let _ = self.tx.respond(&pkt, RspStatus::DROPPED);
        }
        while let Ok(Some(ev)) = self.tx.poll() {
            let (TxEvent::Packet(pkt) | TxEvent::Dropped(pkt, _) | TxEvent::Mcast(pkt)) = ev;
            if self.tx.respond(&pkt, RspStatus::DROPPED).is_err() {
                break;
            }
        }
        if self.tx.push() {
            self.irq.notify();
        }
    }

    /// Guest-receive stall tracking, called when guest receive found too
    /// few buffers (`short`) or after it found enough. Returns a change:
    /// `Some(true)` the guest just stalled (no buffers for `timeout_us`),
    /// `Some(false)` a stalled guest posted buffers again.
    pub(crate) fn rx_stall_check(&mut self, short: bool, timeout_us: u64) -> Option<bool> {
        if !short {
            self.rx_short_since = None;
            return core::mem::replace(&mut self.rx_stalled, false).then_some(false);
        }
        let now = now_us();
        let since = *self.rx_short_since.get_or_insert(now);
        if !self.rx_stalled && now.saturating_sub(since) >= timeout_us {
            self.rx_stalled = true;
            return Some(true);
        }
        None
    }

    /// True if the frontend posted more TX requests (and arms the event
    /// otherwise): call before re-enabling events.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        self.tx.ring.final_check_for_requests()
    }

    /// Copies one guest packet into a new skb.
    fn build_skb(
        &mut self,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        pkt: &TxPacket,
        stats: &mut Stats,
    ) -> Result<*mut b::sk_buff> {
        let len = pkt.len();
        let head = len.min(TX_HEAD_LEN);
        // SAFETY: allocation in NAPI context (our poll).
        let skb = unsafe { b::napi_alloc_skb(napi, head as u32) };
        if skb.is_null() {
            return Err(ENOMEM);
        }
        let r = self.fill_skb(skb, netdev, pkt, head, stats);
        if r.is_err() {
            // SAFETY: the skb is ours and never handed on.
            unsafe { b::xennet_shim_kfree_skb_any(skb) };
        }
        r.map(|()| skb)
    }

    fn fill_skb(
        &mut self,
        skb: *mut b::sk_buff,
        netdev: *mut b::net_device,
        pkt: &TxPacket,
        head: usize,
        stats: &mut Stats,
    ) -> Result {
        let len = pkt.len();
        // SAFETY: `skb` is ours, with `head` bytes of tailroom.
        let data = unsafe { b::xennet_shim_skb_put(skb, head as u32) } as usize;
        let Scratch { src, dst, planned, ops } = &mut self.scratch;
        let page_base = data & !(PAGE_SIZE - 1);
        let mut nd = split_contiguous(
            data,
            head,
            // SAFETY: the skb's linear area is directly mapped kernel memory.
            |i| Frame::Local(unsafe { b::xennet_shim_virt_to_gfn((page_base + i * PAGE_SIZE) as *const _) } as u64),
            dst,
        )
        .ok_or(EINVAL)?;
        let mut rest = len - head;
        let mut frag = 0;
        while rest > 0 {
            let size = rest.min(PAGE_SIZE);
            // SAFETY: plain atomic page allocation.
            let page = unsafe { b::xennet_shim_alloc_page_atomic() };
            if page.is_null() {
                return Err(ENOMEM);
            }
            // SAFETY: the page is ours; the skb takes it (freed with the skb).
            // At most 16 fragments: a packet is under 64 KiB.
            unsafe { b::xennet_shim_skb_add_rx_frag(skb, frag, page, 0, size as i32) };
            // SAFETY: `page` is a valid page.
            let gfn = unsafe { b::xennet_shim_page_to_gfn(page) };
            *dst.get_mut(nd).ok_or(EINVAL)? = Seg::new(Frame::Local(gfn as u64), 0, size).ok_or(EINVAL)?;
            nd += 1;
            frag += 1;
            rest -= size;
        }
        let mut ns = 0;
        for f in pkt.frags() {
            *src.get_mut(ns).ok_or(EINVAL)? = Seg::new(Frame::Grant(f.gref), f.offset.into(), f.len.into()).ok_or(EINVAL)?;
            ns += 1;
        }
        copy_plan(&src[..ns], &dst[..nd], planned, ops, self.domid)?;
        grant::batch_copy(ops);
        stats.copy_ops += ops.len() as u64;
        if let Some(bad) = ops.iter().find(|op| !grant::copy_ok(op)) {
            warn_ratelimited!(
                "domain {}: grant copy from the guest failed (status {}): bad grant reference?\n",
                self.domid,
                bad.status
            );
            return Err(EFAULT);
        }
        // SAFETY: the skb holds the packet; `netdev` is our live device.
        unsafe {
            let proto = b::eth_type_trans(skb, netdev);
            b::xennet_shim_skb_set_protocol(skb, proto);
            b::xennet_shim_skb_reset_network_header(skb);
        }
        let flags = pkt.flags();
        let mut recalc = false;
        if let Some(g) = pkt.gso {
            // SAFETY: the skb is ours; the protocol core checked type and size.
            unsafe { b::xennet_shim_skb_set_gso(skb, g.size, g.ty == GsoType::TCPV6) };
        }
        let summed = if flags.contains(TxFlags::CSUM_BLANK) {
            CHECKSUM_PARTIAL
        } else if pkt.gso.is_some() {
            // A GSO packet needs a partial checksum: set one up from the
            // headers (as the C netback's checksum fix-up).
            recalc = true;
            CHECKSUM_PARTIAL
        } else if flags.contains(TxFlags::DATA_VALIDATED) {
            CHECKSUM_UNNECESSARY
        } else {
            0
        };
        // SAFETY: the skb is ours.
        unsafe { b::xennet_shim_skb_set_ip_summed(skb, summed) };
        if summed == CHECKSUM_PARTIAL {
            // SAFETY: the skb is ours, its network header set above.
            let rc = unsafe { b::skb_checksum_setup(skb, recalc) };
            if rc < 0 {
                warn_ratelimited!(
                    "domain {}: cannot set up a partial checksum ({}); dropped\n",
                    self.domid,
                    rc
                );
                return Err(EINVAL);
            }
        }
        Ok(())
    }

    /// Copies `skb` into buffers the guest posted (`ndo_start_xmit`).
    pub(crate) fn guest_rx(&mut self, skb: *mut b::sk_buff, caps: FrontCaps, cfg: &RxCfg, stats: &mut Stats) -> RxOutcome {
        #[cfg(xennet_hostile)]
        if crate::hostile::frozen() {
            stats.tx_dropped += 1;
            return RxOutcome::Dropped;
        }
        // SAFETY: `skb` is a live skb handed to us by the stack.
        let (len, summed, gso_size, v6) = unsafe {
            (
                b::xennet_shim_skb_len(skb) as usize,
                b::xennet_shim_skb_ip_summed(skb),
                b::xennet_shim_skb_gso_size(skb),
                b::xennet_shim_skb_gso_is_tcpv6(skb),
            )
        };
        let gso = if gso_size > 0 {
            if !(if v6 { caps.gso6 } else { caps.gso4 }) {
                // The device's features keep this from happening.
                stats.tx_dropped += 1;
                return RxOutcome::Dropped;
            }
            Some(Gso {
                size: gso_size as u16,
                ty: if v6 { GsoType::TCPV6 } else { GsoType::TCPV4 },
                features: 0,
            })
        } else {
            None
        };
        // The first buffer starts after the XDP headroom (at most half a page).
        let headroom = usize::from(cfg.xdp_headroom);
        let first_room = PAGE_SIZE - headroom;
        let nbufs = 1 + len.saturating_sub(first_room).div_ceil(PAGE_SIZE);
        if nbufs > MAX_RX_BUFS || (nbufs > 1 && !caps.sg) {
            stats.tx_dropped += 1;
            return RxOutcome::Dropped;
        }
        let extras = RxExtras { gso, xdp_headroom: cfg.xdp_headroom, hash: cfg.hash.map(|h| h.extra()) };
        let slots = RxBack::<XenBarriers>::slots_needed(nbufs, &extras);
        let Scratch { src, dst, planned, ops } = &mut self.scratch;
        let Some(ns) = skb_segments(skb, src) else {
            stats.tx_dropped += 1;
            return RxOutcome::Dropped;
        };
        let mut bufs = [RxRequest::zeroed(); MAX_RX_BUFS + 3];
        match self.rx.take_buffers(&mut bufs[..slots]) {
            Ok(true) => {}
            Ok(false) => {
                self.rx_needed = slots as u32;
                return RxOutcome::NoRoom;
            }
            Err(e) => {
                self.broken = Some(e);
                stats.tx_dropped += 1;
                return RxOutcome::Dropped;
            }
        }
        // The data buffers: the first, then (after the extras' slots) the rest.
        let skip = extras.count();
        for (i, d) in dst[..nbufs].iter_mut().enumerate() {
            let req = &bufs[if i == 0 { 0 } else { i + skip }];
            let offset = if i == 0 { headroom } else { 0 };
            *d = Seg {
                frame: Frame::Grant(req.gref()),
                offset: offset as u16,
                len: (PAGE_SIZE - offset) as u16,
            };
        }
        let ok = match copy_plan(&src[..ns], &dst[..nbufs], planned, ops, self.domid) {
            Ok(n) => {
                grant::batch_copy(ops);
                stats.copy_ops += n as u64;
                ops.iter().all(grant::copy_ok)
            }
            Err(_) => false,
        };
        let result = if ok {
            let mut out = [RxOut { offset: 0, len: 0 }; MAX_RX_BUFS];
            out[0].offset = headroom as u16;
            for op in &planned[..ops.len()] {
                out[usize::from(op.dst_seg)].len += op.len;
            }
            let flags = match summed {
                CHECKSUM_PARTIAL => RxFlags::CSUM_BLANK.with(RxFlags::DATA_VALIDATED),
                CHECKSUM_UNNECESSARY => RxFlags::DATA_VALIDATED,
                _ => RxFlags(0),
            };
            self.rx.respond(&bufs[..slots], &out[..nbufs], flags, &extras)
        } else {
            warn_ratelimited!(
                "domain {}: grant copy into the guest's buffers failed: bad grant reference?\n",
                self.domid
            );
            bufs[..slots]
                .iter()
                .try_for_each(|r| self.rx.respond_error(r, RspStatus::ERROR))
        };
        if let Err(e) = result {
            self.broken = Some(e);
        }
        #[cfg(xennet_hostile)]
        if ok {
            crate::hostile::rx_before_push(&mut self.rx, slots);
        }
        if self.rx.push() {
            self.notify_rx(stats);
        }
        #[cfg(xennet_hostile)]
        crate::hostile::rx_after_push(&self.rx, || self.rx_irq.as_ref().unwrap_or(&self.irq).notify());
        if ok {
            stats.tx_packets += 1;
            stats.tx_bytes += len as u64;
            RxOutcome::Delivered
        } else {
            stats.tx_errors += 1;
            RxOutcome::Dropped
        }
    }

    /// After `NoRoom`: arms the RX-ring event so the frontend signals when
    /// it posts buffers; true if buffers arrived meanwhile (retry now).
    pub(crate) fn rx_wait_for_buffers(&mut self) -> bool {
        match self.rx.ring.wait_for_requests(self.rx_needed) {
            Ok(more) => more,
            Err(e) => {
                self.broken = Some(e);
                false
            }
        }
    }

    /// True if the guest posted enough buffers for the packet that last
    /// found too few.
    pub(crate) fn rx_ready(&mut self) -> bool {
        self.rx.available().unwrap_or(0) >= self.rx_needed
    }
}
