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
    self, CopyOp, Credit, DoublingCount, Error as NetifError, FlowHash, Frame, Gso, GsoType, RspStatus, RxBack, RxExtras,
    RxFlags, RxOut, RxRequest, RxStallClock, Seg, TxBack, TxEvent, TxFlags, TxPacket,
    NR_SLOTS_MIN, PAGE_SIZE,
};
use crate::vif::{QueueCtx, EOI_RX, EOI_TX};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant;
use crate::xen_sys::netdev::{csum, FragPage, NetDevice, NewSkb, Polling, Skb};
pub(crate) use crate::xen_sys::netdev::{SkbBatch, Stats};
use crate::xen_sys::now_us;
use crate::xen_sys::warn_ratelimited;
use crate::nicrx::{NicEnd, NicRx};
use crate::xen_sys::reuse::StaticGrants;
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xenbus::MappedRing;
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
/// Guest-receive packets batched into one grant-copy hypercall (while the
/// stack says more follow), and the operations that batch may hold (the C
/// netback issues up to 64 per hypercall for small packets).
const RX_BATCH_PKTS: usize = 32;
const RX_BATCH_OPS: usize = 256;

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
    /// Its copy is planned into guest buffers taken for it; done (and the
    /// skb freed) by the next [`Connection::flush_rx`].
    Queued,
    /// Dropped (and freed).
    Dropped,
    /// Not enough buffers posted: the skb comes back.
    NoRoom(Skb),
}

/// What one round of guest transmit did.
#[derive(Default)]
pub(crate) struct TxRound {
    /// Requests consumed (packets built, dropped or refused, multicast
    /// updates): each counts against the NAPI budget.
    pub(crate) consumed: usize,
    /// The ring had nothing more (or the rate limit holds a packet back):
    /// polling again now finds no work.
    pub(crate) drained: bool,
}

/// A queue's connection to the frontend. Field order is drop order: the
/// event channels are unbound first, then the rings are unmapped.
pub(crate) struct Connection {
    irq: EventIrq<QueueCtx, EOI_TX>,
    rx_irq: Option<EventIrq<QueueCtx, EOI_RX>>,
    tx: OnRing<TxBack<XenBarriers>, MappedRing>,
    rx: OnRing<RxBack<XenBarriers>, MappedRing>,
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
    /// Whether (and since when) guest receive finds too few buffers.
    pub(crate) rx_stall: RxStallClock,
    /// The packet for the guest that found too few buffers, waiting for
    /// more (the queue is stopped meanwhile).
    rx_held: Option<Skb>,
    /// Guest-receive packets planned but not yet copied.
    rx_batch: RxBatch,
    /// Guest receive through a NIC queue (an igb VF steered by the guest's
    /// MAC) into the guest's pages, instead of copies.
    pub(crate) nic: Option<NicRx>,
    /// A NIC path that ended: kept until the connection goes, because
    /// freeing its per-buffer mapping pages sleeps (and it ends in NAPI).
    nic_retired: Option<NicRx>,
    /// Grant maps and unmaps of NIC paths retired and freed before.
    nic_ops_freed: (u64, u64),
    /// A source MAC the guest sent from that its NIC queue is not steered
    /// by: the NIC path ends at the next poll.
    nic_foreign_src: Option<[u8; 6]>,
    /// The frontend's static grants on this queue (grant reuse), from its
    /// first `ADD_GREF_MAPPING`: packets whose buffers are all in it are
    /// copied through the mappings, without a hypercall.
    pub(crate) statics: Option<KBox<StaticGrants>>,
    /// Guest-receive packets whose copy into the guest's buffers failed.
    rx_copy_failures: DoublingCount,
    /// Guest-transmit packets whose copy from the guest's pages failed.
    tx_copy_failures: DoublingCount,
    /// The hostile backend's late write (test-only).
    #[cfg(xennet_hostile)]
    late: crate::hostile::LateWrite,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // The NIC stops and gives the guest's pages back before the static
        // grants behind them are unmapped (the fields' drop).
        if let Some(nic) = self.nic.as_mut() {
            nic.end(&mut self.rx, self.statics.as_deref_mut(), &mut Stats::default());
        }
    }
}

/// One guest-receive packet whose copy is planned.
struct PendingRx {
    skb: Skb,
    /// The guest buffers taken for it (`slots` of them).
    bufs: [RxRequest; MAX_RX_BUFS + 3],
    slots: usize,
    nbufs: usize,
    headroom: u16,
    extras: RxExtras,
    flags: RxFlags,
    /// Its operations end here in the batch (they start where the previous
    /// packet's end).
    ops_end: usize,
    /// Planning failed: answer its buffers with errors.
    failed: bool,
    /// Copied already through static grants: each buffer's length.
    direct: Option<[u16; MAX_RX_BUFS]>,
}

/// Guest-receive copies batched into one hypercall, answered in the order
/// the buffers were taken (the frontend matches responses by position).
struct RxBatch {
    pkts: KVec<PendingRx>,
    ops: KVec<grant::GntCopy>,
    planned: KVec<CopyOp>,
}

impl RxBatch {
    fn new() -> Result<Self> {
        Ok(Self {
            pkts: KVec::with_capacity(RX_BATCH_PKTS, GFP_KERNEL)?,
            ops: KVec::with_capacity(RX_BATCH_OPS, GFP_KERNEL)?,
            planned: KVec::with_capacity(RX_BATCH_OPS, GFP_KERNEL)?,
        })
    }

    /// No room for another packet of up to `MAX_OPS` operations.
    fn full(&self) -> bool {
        self.pkts.len() >= RX_BATCH_PKTS || self.ops.len() + MAX_OPS > RX_BATCH_OPS
    }
}

/// The working arrays of one packet's copy.
struct Scratch {
    src: KVec<Seg>,
    dst: KVec<Seg>,
    planned: KVec<CopyOp>,
    /// The planned copies as `GNTTABOP_copy` operations.
    ops: KVec<grant::GntCopy>,
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

/// Guest transmit through static grants: copies every fragment of `pkt`
/// from its mapping into `skb` (sized for the packet already). `None` if
/// any fragment's grant is not mapped: the packet then goes through grant
/// copy (the frontend may mix). Returns the bytes copied.
fn tx_through_statics(st: &mut StaticGrants, skb: &Skb, pkt: &TxPacket) -> Result<Option<usize>> {
    let mut hits = [None; NR_SLOTS_MIN];
    for (h, f) in hits.iter_mut().zip(pkt.frags()) {
        match st.lookup(f.gref) {
            Some(hit) => *h = Some(hit),
            None => return Ok(None),
        }
    }
    let mut pos = 0;
    for (h, f) in hits.iter().zip(pkt.frags()) {
        let Some(hit) = h else { break };
        let len = usize::from(f.len);
        st.read_into_skb(*hit, f.offset.into(), skb, pos, len)?;
        pos += len;
    }
    Ok(Some(pos))
}

/// Guest receive through static grants: if every buffer in `dst` is mapped
/// writable, copies `skb` into them in order and returns each buffer's
/// length; `None` otherwise (grant copy then, which rewrites whatever was
/// written).
fn rx_through_statics(st: &mut StaticGrants, skb: &Skb, dst: &[Seg]) -> Option<[u16; MAX_RX_BUFS]> {
    let mut hits = [None; MAX_RX_BUFS];
    for (h, d) in hits.iter_mut().zip(dst) {
        let Frame::Grant(gref) = d.frame else { return None };
        match st.lookup(gref) {
            Some(hit) if !hit.readonly => *h = Some(hit),
            _ => return None,
        }
    }
    let mut lens = [0u16; MAX_RX_BUFS];
    let (mut pos, len) = (0, skb.len());
    for ((h, d), l) in hits.iter().zip(dst).zip(lens.iter_mut()) {
        let Some(hit) = h else { break };
        let n = (len - pos).min(usize::from(d.len));
        if n == 0 {
            break;
        }
        st.write_from_skb(*hit, d.offset.into(), skb, pos, n).ok()?;
        *l = n as u16;
        pos += n;
    }
    (pos == len).then_some(lens)
}

/// A planned copy's operations, converted for the hypervisor.
fn copy_plan(
    src: &[Seg],
    dst: &[Seg],
    planned: &mut [CopyOp],
    ops: &mut KVec<grant::GntCopy>,
    domid: u16,
) -> Result<usize> {
    let n = netif::plan(src, dst, planned)?;
    ops.clear();
    for op in &planned[..n] {
        ops.push(grant::copy_op(op, domid), GFP_ATOMIC)?;
    }
    Ok(n)
}

impl Connection {
    /// Attaches to the frontend's rings (already mapped) with the event
    /// channel(s) bound.
    pub(crate) fn new(
        tx_map: MappedRing,
        rx_map: MappedRing,
        irq: EventIrq<QueueCtx, EOI_TX>,
        rx_irq: Option<EventIrq<QueueCtx, EOI_RX>>,
        domid: u16,
        credit: Credit,
    ) -> Result<KBox<Self>> {
        let tx = OnRing::new(tx_map, ())?;
        let rx = OnRing::new(rx_map, ())?;
        let scratch = Scratch::new()?;
        Ok(KBox::new(
            Self {
                irq,
                rx_irq,
                tx,
                rx,
                domid,
                broken: None,
                broken_reported: false,
                scratch,
                rx_needed: 1,
                credit,
                held: None,
                rx_stall: RxStallClock::new(),
                rx_held: None,
                rx_batch: RxBatch::new()?,
                nic: None,
                nic_retired: None,
                nic_ops_freed: (0, 0),
                nic_foreign_src: None,
                statics: None,
                rx_copy_failures: DoublingCount::default(),
                tx_copy_failures: DoublingCount::default(),
                #[cfg(xennet_hostile)]
                late: crate::hostile::LateWrite::default(),
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
        self.rx_irq.as_ref().map_or(self.irq.channel(), |r| r.channel()).notify();
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

    /// Consumes up to `budget` guest-TX requests, building packets into
    /// `batch`. `Err` is a fatal protocol error (queue broken).
    pub(crate) fn guest_tx(
        &mut self,
        napi: &Polling<'_>,
        dev: &NetDevice,
        budget: usize,
        batch: &mut SkbBatch,
        stats: &mut Stats,
        ctrl: &crate::ctrl::VifCtrl,
    ) -> core::result::Result<TxRound, NetifError> {
        let mut round = TxRound::default();
        let now = now_us();
        loop {
            if round.consumed >= budget || batch.is_full() {
                break;
            }
            let ev = match self.held.take() {
                Some((pkt, _)) => TxEvent::Packet(pkt),
                None => match self.tx.poll()? {
                    Some(ev) => ev,
                    None => {
                        round.drained = true;
                        break;
                    }
                },
            };
            match ev {
                TxEvent::Packet(pkt) => {
                    if let Err(at) = self.credit.consume(pkt.len() as u64, now) {
                        // Over the rate: keep it until the credit timer.
                        self.held = Some((pkt, at));
                        round.drained = true;
                        break;
                    }
                    round.consumed += 1;
                    let status = match self.build_skb(napi, dev, &pkt, stats) {
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
                    round.consumed += 1;
                    warn_ratelimited!("domain {}: dropped a packet: {}\n", self.domid, e.as_str());
                    stats.rx_dropped += 1;
                    self.tx.respond(&pkt, RspStatus::ERROR)?;
                }
                TxEvent::Mcast(pkt) => {
                    round.consumed += 1;
                    // Honoured whether or not the frontend asked for
                    // filtering yet (netif.h): the list is kept either way.
                    let ok = ctrl.mcast_update(pkt.mcast_add, pkt.mcast_del);
                    self.tx.respond(&pkt, if ok { RspStatus::OKAY } else { RspStatus::ERROR })?;
                }
            }
        }
        #[cfg(xennet_hostile)]
        crate::hostile::tx_before_push(&self.tx, round.consumed);
        if round.consumed > 0 && self.tx.push() {
            self.notify(stats);
        }
        Ok(round)
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

    /// True if the frontend posted more TX requests (and arms the event
    /// otherwise): call before re-enabling events.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        self.tx.ring.final_check_for_requests()
    }

    /// Copies one guest packet into a new skb.
    fn build_skb(&mut self, napi: &Polling<'_>, dev: &NetDevice, pkt: &TxPacket, stats: &mut Stats) -> Result<NewSkb> {
        let len = pkt.len();
        let head = len.min(TX_HEAD_LEN);
        let mut skb = napi.alloc_skb(head).ok_or(ENOMEM)?;
        // Freed on error (dropped with `skb`).
        self.fill_skb(&mut skb, dev, pkt, head, stats)?;
        Ok(skb)
    }

    fn fill_skb(&mut self, skb: &mut NewSkb, dev: &NetDevice, pkt: &TxPacket, head: usize, stats: &mut Stats) -> Result {
        let len = pkt.len();
        let Scratch { src, dst, planned, ops } = &mut self.scratch;
        let mut nd = skb.put_segments(head, dst).ok_or(EINVAL)?;
        let mut rest = len - head;
        while rest > 0 {
            // At most 16 fragments: a packet is under 64 KiB.
            let size = rest.min(PAGE_SIZE);
            let page = FragPage::alloc_atomic()?;
            *dst.get_mut(nd).ok_or(EINVAL)? = page.segment(size).ok_or(EINVAL)?;
            skb.add_frag(page, size)?;
            nd += 1;
            rest -= size;
        }
        if let Some(st) = self.statics.as_deref_mut().filter(|s| s.active()) {
            if let Some(bytes) = tx_through_statics(st, skb, pkt)? {
                stats.static_bytes += bytes as u64;
                return self.finish_skb(skb, dev, pkt);
            }
        }
        let mut ns = 0;
        for f in pkt.frags() {
            *src.get_mut(ns).ok_or(EINVAL)? = Seg::new(Frame::Grant(f.gref), f.offset.into(), f.len.into()).ok_or(EINVAL)?;
            ns += 1;
        }
        copy_plan(&src[..ns], &dst[..nd], planned, ops, self.domid)?;
        grant::batch_copy(ops);
        stats.count_copy_batch(ops);
        if let Some(bad) = ops.iter().find(|op| !grant::copy_ok(op)) {
            if let Some(total) = self.tx_copy_failures.add(1) {
                pr_warn!(
                    "domain {}: grant copy from the guest failed (status {}): bad grant reference? ({} packet(s) dropped so far on this queue)\n",
                    self.domid,
                    bad.status,
                    total
                );
            }
            return Err(EFAULT);
        }
        self.finish_skb(skb, dev, pkt)
    }

    /// Protocol, GSO and checksum state of a guest packet copied into `skb`.
    fn finish_skb(&mut self, skb: &mut NewSkb, dev: &NetDevice, pkt: &TxPacket) -> Result {
        if let (Some(nic), Some(src)) = (self.nic.as_ref(), skb.src_mac()) {
            // The NIC steers only the MAC the guest had at connection: a
            // guest sending from another (a changed MAC, a bridge inside)
            // must get its frames by grant copy.
            if src != nic.vf().mac() && src[0] & 1 == 0 {
                self.nic_foreign_src = Some(src);
            }
        }
        skb.eth_type_trans(dev)?;
        let flags = pkt.flags();
        let mut recalc = false;
        if let Some(g) = pkt.gso {
            // The protocol core checked type and size.
            skb.set_gso(g.size, g.ty == GsoType::TCPV6);
        }
        let summed = if flags.contains(TxFlags::CSUM_BLANK) {
            csum::PARTIAL
        } else if pkt.gso.is_some() {
            // A GSO packet needs a partial checksum: set one up from the
            // headers (as the C netback's checksum fix-up).
            recalc = true;
            csum::PARTIAL
        } else if flags.contains(TxFlags::DATA_VALIDATED) {
            csum::UNNECESSARY
        } else {
            csum::NONE
        };
        skb.set_ip_summed(summed);
        if summed == csum::PARTIAL {
            if let Err(e) = skb.checksum_setup(recalc) {
                warn_ratelimited!("domain {}: cannot set up a partial checksum ({:?}); dropped\n", self.domid, e);
                return Err(EINVAL);
            }
        }
        Ok(())
    }

    /// Takes guest buffers for `skb` and plans its copy into them, to be
    /// done by the next [`Connection::flush_rx`] (the caller flushes when no
    /// more packets follow). The skb comes back if the guest posted too few
    /// buffers; a dropped one is freed.
    pub(crate) fn guest_rx(&mut self, skb: Skb, caps: FrontCaps, cfg: &RxCfg, stats: &mut Stats) -> RxOutcome {
        #[cfg(xennet_hostile)]
        self.late.write_if_consumed(&self.rx, self.statics.as_deref_mut());
        #[cfg(xennet_hostile)]
        if crate::hostile::rx_hold(&self.rx, || self.rx_irq.as_ref().map_or(self.irq.channel(), |r| r.channel()).notify()) {
            stats.tx_dropped += 1;
            return RxOutcome::Dropped;
        }
        let (len, summed) = (skb.len(), skb.ip_summed());
        let gso = match skb.gso() {
            Some((size, v6)) => {
                if !(if v6 { caps.gso6 } else { caps.gso4 }) {
                    // The device's features keep this from happening.
                    stats.tx_dropped += 1;
                    return RxOutcome::Dropped;
                }
                Some(Gso { size, ty: if v6 { GsoType::TCPV6 } else { GsoType::TCPV4 }, features: 0 })
            }
            None => None,
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
        if self.rx_batch.full() {
            self.flush_rx(stats);
        }
        let Scratch { src, dst, planned, .. } = &mut self.scratch;
        let mut bufs = [RxRequest::zeroed(); MAX_RX_BUFS + 3];
        match self.rx.take_buffers(&mut bufs[..slots]) {
            Ok(true) => {}
            Ok(false) => {
                self.rx_needed = slots as u32;
                return RxOutcome::NoRoom(skb);
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
            *d = Seg { frame: Frame::Grant(req.gref()), offset: offset as u16, len: (PAGE_SIZE - offset) as u16 };
        }
        let direct = match self.statics.as_deref_mut().filter(|s| s.active()) {
            Some(st) => rx_through_statics(st, &skb, &dst[..nbufs]),
            None => None,
        };
        if direct.is_some() {
            stats.static_bytes += len as u64;
            #[cfg(xennet_hostile)]
            self.late.remember(&self.rx, &dst[..nbufs]);
        }
        let batch = &mut self.rx_batch;
        let mut failed = true;
        // The skb's segments are only needed for grant copy (an skb whose
        // pages cannot be described fails here: its buffers are answered
        // with an error).
        let mut plan = || skb.segments(src).and_then(|ns| netif::plan(&src[..ns], &dst[..nbufs], planned).ok());
        if direct.is_some() {
            failed = false;
        } else if let Some(n) = plan() {
            // Room was made above: `full()` leaves `MAX_OPS` free.
            failed = false;
            for op in &planned[..n] {
                if batch.planned.push_within_capacity(*op).is_err()
                    || batch.ops.push_within_capacity(grant::copy_op(op, self.domid)).is_err()
                {
                    failed = true;
                    break;
                }
            }
            if failed {
                // Keep the arrays in step: drop this packet's partial plan.
                let keep = batch.pkts.last().map_or(0, |p| p.ops_end);
                batch.planned.truncate(keep);
                batch.ops.truncate(keep);
            }
        }
        let flags = match summed {
            csum::PARTIAL => RxFlags::CSUM_BLANK.with(RxFlags::DATA_VALIDATED),
            csum::UNNECESSARY => RxFlags::DATA_VALIDATED,
            _ => RxFlags(0),
        };
        let pending = PendingRx {
            skb,
            bufs,
            slots,
            nbufs,
            headroom: headroom as u16,
            extras,
            flags,
            ops_end: batch.ops.len(),
            failed,
            direct,
        };
        if let Err(e) = batch.pkts.push_within_capacity(pending) {
            // Unreachable: `full()` keeps room for one more packet. Answer
            // its buffers now, in order, after the packets before it.
            let p = e.0;
            self.flush_rx(stats);
            for r in &p.bufs[..p.slots] {
                if let Err(e) = self.rx.respond_error(r, RspStatus::ERROR) {
                    self.broken = Some(e);
                }
            }
            stats.tx_errors += 1;
            if self.rx.push() {
                self.notify_rx(stats);
            }
            return RxOutcome::Dropped;
        }
        RxOutcome::Queued
    }

    /// Copies every planned guest-receive packet in one hypercall, answers
    /// their buffers in order, publishes the responses and notifies the
    /// guest once. The skbs are freed.
    pub(crate) fn flush_rx(&mut self, stats: &mut Stats) {
        let batch = &mut self.rx_batch;
        if batch.pkts.is_empty() {
            return;
        }
        grant::batch_copy(&mut batch.ops);
        stats.count_copy_batch(&batch.ops);
        let mut start = 0;
        let mut bad_copies = 0u64;
        for p in batch.pkts.drain_all() {
            let (ops, planned) = (&batch.ops[start..p.ops_end], &batch.planned[start..p.ops_end]);
            start = p.ops_end;
            let ok = !p.failed && ops.iter().all(grant::copy_ok);
            let result = if ok {
                let mut out = [RxOut { offset: 0, len: 0 }; MAX_RX_BUFS];
                out[0].offset = p.headroom;
                if let Some(lens) = p.direct {
                    for (o, l) in out.iter_mut().zip(lens) {
                        o.len = l;
                    }
                }
                for op in planned {
                    if let Some(o) = out.get_mut(usize::from(op.dst_seg)) {
                        o.len += op.len;
                    }
                }
                self.rx.respond(&p.bufs[..p.slots], &out[..p.nbufs], p.flags, &p.extras)
            } else {
                bad_copies += 1;
                p.bufs[..p.slots].iter().try_for_each(|r| self.rx.respond_error(r, RspStatus::ERROR))
            };
            if let Err(e) = result {
                self.broken = Some(e);
            }
            #[cfg(xennet_hostile)]
            if ok {
                crate::hostile::rx_before_push(&mut self.rx, p.slots);
            }
            if ok {
                stats.tx_packets += 1;
                stats.tx_bytes += p.skb.len() as u64;
            } else {
                stats.tx_errors += 1;
            }
        }
        batch.ops.clear();
        batch.planned.clear();
        if let Some(total) = self.rx_copy_failures.add(bad_copies) {
            pr_warn!(
                "domain {}: grant copy into the guest's buffers failed: bad grant reference? ({} packet(s) dropped so far on this queue)\n",
                self.domid,
                total
            );
        }
        if self.rx.push() {
            self.notify_rx(stats);
        }
        #[cfg(xennet_hostile)]
        crate::hostile::rx_after_scan(self.statics.as_deref());
        #[cfg(xennet_hostile)]
        crate::hostile::rx_after_push(&self.rx, || self.rx_irq.as_ref().map_or(self.irq.channel(), |r| r.channel()).notify());
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

    /// Keeps the packet that found too few buffers until the guest posts
    /// more (one at most: the queue is stopped while it waits).
    pub(crate) fn hold(&mut self, skb: Skb) {
        if let Some(_older) = self.rx_held.replace(skb) {
            warn_ratelimited!("domain {}: a second packet for a stopped queue; the first dropped\n", self.domid);
        }
    }

    pub(crate) fn has_held(&self) -> bool {
        self.rx_held.is_some()
    }

    /// Drops the held packet (the guest stalled).
    pub(crate) fn drop_held(&mut self, stats: &mut Stats) {
        if self.rx_held.take().is_some() {
            stats.tx_dropped += 1;
        }
    }

    /// Offers the held packet to the guest again (it posted buffers).
    pub(crate) fn deliver_held(&mut self, caps: FrontCaps, ctrl: &crate::ctrl::VifCtrl, stats: &mut Stats) {
        let Some(skb) = self.rx_held.take() else { return };
        let cfg = RxCfg { xdp_headroom: ctrl.xdp_headroom(), hash: ctrl.hash_for_guest(&skb) };
        match self.guest_rx(skb, caps, &cfg, stats) {
            RxOutcome::NoRoom(skb) => self.rx_held = Some(skb),
            // Gone: the queue may run again as soon as any buffer is posted
            // (the next packet that finds too few sets its own need).
            _ => self.rx_needed = 1,
        }
        self.flush_rx(stats);
    }

    /// Grant maps and unmaps the NIC path made for buffers that are not
    /// static grants (per-buffer mode), this connection's.
    pub(crate) fn nic_map_ops(&self) -> (u64, u64) {
        [self.nic.as_ref(), self.nic_retired.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|n| n.own_stats())
            .fold(self.nic_ops_freed, |(m, u), s| (m + s.map_ops, u + s.unmap_ops))
    }

    /// The NIC path that ended, for the caller to free outside the queue's
    /// lock (freeing it sleeps) before a new one starts; its counters stay.
    pub(crate) fn take_retired(&mut self) -> Option<NicRx> {
        let old = self.nic_retired.take();
        if let Some(s) = old.as_ref().and_then(|n| n.own_stats()) {
            self.nic_ops_freed.0 += s.map_ops;
            self.nic_ops_freed.1 += s.unmap_ops;
        }
        old
    }

    /// Whether guest receive can move onto a NIC queue now: connected, not
    /// broken, not there already, and (unless each buffer is mapped when
    /// posted) the frontend's static grants registered.
    pub(crate) fn nic_can_start(&self, per_buffer: bool) -> bool {
        let statics = self.statics.as_deref().is_some_and(|s| s.active());
        self.nic.is_none() && self.broken.is_none() && (per_buffer || statics)
    }

    /// Guest receive through the NIC from now on (`nic` wraps a VF already
    /// handed this guest's queue): what the copy path has planned or holds
    /// goes first, so responses stay in ring order.
    pub(crate) fn nic_start(&mut self, mut nic: NicRx, stats: &mut Stats) {
        self.flush_rx(stats);
        self.drop_held(stats);
        nic.attached();
        self.nic = Some(nic);
    }

    /// The NIC path's share of a poll: completed frames answered, new
    /// requests posted, the guest notified once. Returns the frames
    /// delivered, whether to poll again at once, and why the path ended
    /// (grant copy from then on), if it did.
    /// `policy`: a reason to end the path now (the vif's bridge changed).
    pub(crate) fn nic_poll(&mut self, stats: &mut Stats, policy: Option<NicEnd>) -> (usize, bool, Option<NicEnd>) {
        let Some(nic) = self.nic.as_mut() else { return (0, false, None) };
        let foreign = self.nic_foreign_src.take().map(NicEnd::ForeignMac).or(policy);
        if matches!(foreign, Some(NicEnd::Bridge(_))) {
            nic.wait_after_end();
        }
        let (frames, room, end) = match foreign.map_or_else(|| nic.poll(&mut self.rx, self.statics.as_deref_mut(), stats), Err) {
            Ok((n, room)) => (n, room, None),
            Err(why) => {
                nic.end(&mut self.rx, self.statics.as_deref_mut(), stats);
                (0, false, Some(why))
            }
        };
        if let Some(NicEnd::Ring(e)) = end {
            self.broken = Some(e);
        }
        if end.is_some() {
            self.nic_retired = self.nic.take();
        }
        if self.rx.push() {
            self.notify_rx(stats);
        }
        // The guest signals when it posts more buffers (only needed while
        // the NIC has room for them; completions wake us otherwise).
        let mut again = frames >= crate::nicrx::BUDGET;
        if self.nic.is_some() && room {
            match self.rx.ring.wait_for_requests(1) {
                Ok(more) => again |= more,
                Err(e) => self.broken = Some(e),
            }
        }
        (frames, again, end)
    }

    /// The PF the NIC path sends the guest's frames out of, while live.
    pub(crate) fn nic_pf(&self) -> Option<i32> {
        self.nic.as_ref().and_then(|n| n.vf().pf_ifindex())
    }

    /// The poll is done: the NIC's receive interrupt may fire again.
    pub(crate) fn nic_rearm(&self) {
        if let Some(n) = self.nic.as_ref() {
            n.vf().rearm();
        }
    }

    /// The guest sent from a MAC its NIC queue is not steered by: the
    /// NIC path is to end at once (see `nic_poll`).
    pub(crate) fn nic_must_end(&self) -> bool {
        self.nic.is_some() && self.nic_foreign_src.is_some()
    }

    /// Frees the planned guest-receive packets without answering them (the
    /// connection is broken: nothing more goes on its rings).
    pub(crate) fn discard_rx(&mut self) {
        let batch = &mut self.rx_batch;
        batch.pkts.clear();
        batch.ops.clear();
        batch.planned.clear();
    }
}
