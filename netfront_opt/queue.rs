// SPDX-License-Identifier: GPL-2.0

//! One connected queue: its TX and RX rings, the granted buffer pages they
//! carry, and the event channel(s). The two rings are separate halves
//! (`TxConn`, `RxConn`) under separate locks: a transmit (an ACK from
//! another CPU) never waits for a receive pass, which holds its lock while
//! it copies a whole batch out.
//!
//! Buffers: every ring slot has a page of ours granted to the backend for
//! the life of the connection (read-only for TX, writable for RX). Transmit
//! copies the packet into a TX page; receive copies out of the RX page the
//! backend filled, then reposts it. So no grant operation happens per packet,
//! the backend never sees a page that held anything but its own traffic
//! (XSA-403), and nothing the backend shares is read twice (XSA-155).

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::netif::{
    Error as NetifError, HashExtra, McastFilter, Gso, GsoType, RxEvent, RxFlags, RxPacket, RxFront, TxFlags, TxFrag,
    TxFront, NR_SLOTS_MIN, PAGE_SIZE, RX_RING_SIZE, TX_RING_SIZE,
};
use crate::device::QueueCtx;
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::batch::Batch;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant::{GrantedPage, LentSkb};
use crate::xen_sys::netdev::{csum, FragPage, NetDevice, NewSkb, Polling, Skb, ETH_HLEN};
pub(crate) use crate::xen_sys::netdev::{SkbBatch, Stats};
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xdp;
use crate::xen_sys::xenbus::RingPage;
/// Bytes of a received packet copied into the skb's linear area (headers).
const RX_COPY_HDR: usize = 256;
/// Ring slots the largest packet takes: data slots plus a GSO extra.
const MAX_PACKET_SLOTS: usize = NR_SLOTS_MIN + 1;
const TX_SLOTS: usize = TX_RING_SIZE as usize;
const RX_SLOTS: usize = RX_RING_SIZE as usize;

/// The data path's switches (module parameters, `crate::tuning`), fixed
/// for a connection. Each one off gives the plain path: a push and a
/// notification check per packet, an event per completion, a fresh page
/// per received frame, no GRO.
#[derive(Clone, Copy)]
pub(crate) struct Tuning {
    /// Transmit: defer publishing while the stack has more packets
    /// (`xmit_more`), one push and notification per burst.
    pub(crate) tx_batch: bool,
    /// Transmit completions: arm the event half the requests in flight
    /// ahead (`TxFront::final_check`).
    pub(crate) tx_moderation: bool,
    /// Receive: recycled buffers published this many at a time (1: each
    /// packet's), or whenever the backend sees less than half the ring;
    /// 0: once at the end of each receive pass.
    pub(crate) rx_refill_batch: u32,
    /// Receive: frames up to this length are copied whole into the skb's
    /// head; longer ones get `RX_COPY_HDR` there and page fragments.
    pub(crate) rx_copybreak: usize,
    /// Receive: packets go to GRO (`napi_gro_receive`), else straight to
    /// the stack (`netif_receive_skb`).
    pub(crate) gro: bool,
    /// Time the polls' stages (`Stats::prof_*`).
    pub(crate) profile: bool,
    /// Transmit to a trusted backend without static grants: grant the
    /// pages of an skb's fragments as they are instead of copying them
    /// (its headers are still copied into a TX page, the first slot).
    pub(crate) tx_zerocopy: bool,
}

/// The clock for `Tuning::profile` (0 when off: no clock read).
pub(crate) fn prof_now(on: bool) -> u64 {
    if on { crate::xen_sys::now_ns() } else { 0 }
}

/// A queue's event channels: one for both rings, or one each when the
/// backend offers split channels. Both halves of the connection hold them
/// (the last to go unbinds them, in process context: see `connect`).
pub(crate) struct Channels {
    /// The event channel (the TX one when split).
    irq: EventIrq<QueueCtx>,
    /// The RX event channel, when split.
    rx_irq: Option<EventIrq<QueueCtx>>,
}

impl Channels {
    fn tx(&self) -> &EventIrq<QueueCtx> {
        &self.irq
    }

    fn rx(&self) -> &EventIrq<QueueCtx> {
        self.rx_irq.as_ref().unwrap_or(&self.irq)
    }

    /// Re-enables event delivery after a poll; `spurious` when the poll
    /// found no work (throttles an event storm).
    fn lateeoi(&self, spurious: bool) {
        self.irq.lateeoi(spurious);
        if let Some(rx) = &self.rx_irq {
            rx.lateeoi(spurious);
        }
    }
}

/// Builds a queue's connection: ring pages, buffer pages granted to
/// `domid`, all RX buffers posted, and the event channel(s) bound. Its two
/// halves go under their own locks, so transmit never waits for a receive
/// pass (as the C netfront's `tx_lock` and `rx_lock`). Both are dropped in
/// process context only (unbinding the channels sleeps).
pub(crate) fn connect(
    tx_ring: RingPage,
    rx_ring: RingPage,
    irq: EventIrq<QueueCtx>,
    rx_irq: Option<EventIrq<QueueCtx>>,
    domid: u16,
    tuning: Tuning,
    trusted: bool,
) -> Result<(KBox<TxConn>, KBox<RxConn>)> {
    let chans = Arc::new(Channels { irq, rx_irq }, GFP_KERNEL)?;
    let tx = OnRing::new(tx_ring, ())?;
    // Chains of up to NR_SLOTS_MIN data slots (SG and GSO receive).
    let rx = OnRing::new(rx_ring, NR_SLOTS_MIN)?;

    let mut tx_bufs = KVec::with_capacity(TX_SLOTS, GFP_KERNEL)?;
    let mut tx_free = KVec::with_capacity(TX_SLOTS, GFP_KERNEL)?;
    for i in 0..TX_SLOTS {
        tx_bufs.push(GrantedPage::new(domid, true)?, GFP_KERNEL)?;
        tx_free.push(i as u16, GFP_KERNEL)?;
    }
    let mut rx_bufs = KVec::with_capacity(RX_SLOTS, GFP_KERNEL)?;
    for _ in 0..RX_SLOTS {
        rx_bufs.push(GrantedPage::new(domid, false)?, GFP_KERNEL)?;
    }
    // Lending (zero-copy transmit): each packet takes at least two slots
    // (its headers, a fragment), so half the ring's worth at most.
    let lend = tuning.tx_zerocopy && trusted;
    let nlent = if lend { TX_SLOTS / 2 } else { 0 };
    let mut lent = KVVec::with_capacity(nlent, GFP_KERNEL)?;
    let mut lent_free = KVec::with_capacity(nlent, GFP_KERNEL)?;
    for i in 0..nlent {
        lent.push(None, GFP_KERNEL)?;
        lent_free.push(i as u16, GFP_KERNEL)?;
    }

    let txc = KBox::new(
        TxConn {
            chans: chans.clone(),
            tx,
            tx_buf_of_id: [0; TX_SLOTS],
            tx_free,
            tx_bufs,
            domid,
            lend,
            lent,
            lent_free,
            lent_of_id: [0; TX_SLOTS],
            broken: None,
            tuning,
            mcast_control: false,
            mcast_sent: McastFilter::new(),
            mcast_wanted: McastFilter::new(),
            mcast_pending: false,
        },
        GFP_KERNEL,
    )?;
    let mut rxc = KBox::new(
        RxConn { chans, rx, rx_buf_of_slot: [0; RX_SLOTS], rx_bufs, broken: None, tuning },
        GFP_KERNEL,
    )?;
    for buf in 0..RX_SLOTS {
        rxc.post_rx(buf as u16)?;
    }
    rxc.rx.push();
    Ok((txc, rxc))
}

/// A queue's transmit half: the TX ring and its granted pages. Field order
/// is drop order: the channels' reference first, then the ring and pages.
pub(crate) struct TxConn {
    chans: Arc<Channels>,
    tx: OnRing<TxFront<XenBarriers>, RingPage>,
    /// Buffer index of each outstanding TX request id.
    tx_buf_of_id: [u16; TX_SLOTS],
    /// Free TX buffers (a stack of indices into `tx_bufs`).
    tx_free: KVec<u16>,
    tx_bufs: KVec<GrantedPage>,
    /// The backend's domain (lent pages are granted to it).
    domid: u16,
    /// Zero-copy transmit is on: `tx_zerocopy`, a trusted backend, and no
    /// static grants registered (the backend maps our TX pages then, so
    /// copying into them saves it a grant copy per slot).
    lend: bool,
    /// Packets whose fragments are lent, in flight, and the free entries.
    lent: KVVec<Option<InFlight>>,
    lent_free: KVec<u16>,
    /// The `lent` entry of each outstanding request id marked `LENT_BUF`.
    lent_of_id: [u16; TX_SLOTS],
    /// Set on a fatal protocol error: the half carries nothing more.
    pub(crate) broken: Option<NetifError>,
    /// The switches this connection runs with.
    pub(crate) tuning: Tuning,
    /// Multicast groups the backend filters for us (queue 0 only, when it
    /// offered `feature-multicast-control`): the groups it has, the ones
    /// the device wants, and whether an update waits for ring room.
    mcast_control: bool,
    mcast_sent: McastFilter,
    mcast_wanted: McastFilter,
    mcast_pending: bool,
}

/// A queue's receive half: the RX ring and its granted pages.
pub(crate) struct RxConn {
    chans: Arc<Channels>,
    rx: OnRing<RxFront<XenBarriers>, RingPage>,
    /// Buffer index posted in each RX ring slot.
    rx_buf_of_slot: [u16; RX_SLOTS],
    rx_bufs: KVec<GrantedPage>,
    /// Set on a fatal protocol error: the half carries nothing more.
    pub(crate) broken: Option<NetifError>,
    pub(crate) tuning: Tuning,
}

/// `tx_buf_of_id` of a request that carries no buffer (a multicast update).
const NO_BUF: u16 = u16::MAX;
/// `tx_buf_of_id` of a request over a lent page (see `lent_of_id`).
const LENT_BUF: u16 = u16::MAX - 2;
/// `tx_buf_of_id` of a test-only malformed request (hostile build).
#[cfg(xennet_hostile)]
const HOSTILE_BUF: u16 = u16::MAX - 1;

/// What `transmit_lent` made of a packet.
pub(crate) enum Lend {
    Sent,
    /// No room on the ring: stop the queue.
    Busy(Skb),
    /// Not a packet to lend: copy it.
    Copy(Skb),
}

/// A packet whose fragments' pages are lent: held until the backend has
/// completed each of its lent slots.
struct InFlight {
    lent: LentSkb,
    left: u16,
}

impl TxConn {
    /// Grants of the transmit pages, into `out` (grant reuse registers
    /// them); how many.
    pub(crate) fn buffer_grefs(&self, out: &mut [u32]) -> usize {
        for (t, p) in out.iter_mut().zip(self.tx_bufs.iter()) {
            *t = p.gref();
        }
        self.tx_bufs.len().min(out.len())
    }

    /// Copies `skb` (`len` bytes, at most `NR_SLOTS_MIN` pages) into free
    /// TX buffers, one page per slot, and queues it with `flags` and `gso`;
    /// publishes it unless `defer` (more packets follow: `flush_tx` then).
    /// False: no room (the caller stops the queue and returns the skb).
    pub(crate) fn transmit(
        &mut self,
        skb: &Skb,
        len: usize,
        flags: TxFlags,
        gso: Option<Gso>,
        stats: &mut Stats,
        defer: bool,
    ) -> bool {
        // The hostile cases rewrite what was just published: never deferred.
        #[cfg(xennet_hostile)]
        let defer = {
            let _ = defer;
            false
        };
        let nslots = len.div_ceil(PAGE_SIZE);
        #[cfg(xennet_hostile)]
        if crate::hostile::frozen() {
            stats.tx_dropped += 1;
            return true;
        }
        if nslots > NR_SLOTS_MIN {
            stats.tx_dropped += 1;
            return true;
        }
        if self.tx_free.len() < nslots
            || (self.tx.ring.free_requests() as usize) < nslots + usize::from(gso.is_some())
        {
            return false;
        }
        let mut frags = [TxFrag {
            gref: 0,
            offset: 0,
            len: 0,
        }; NR_SLOTS_MIN];
        let mut bufs = [0u16; NR_SLOTS_MIN];
        let mut copied = 0;
        for (frag, buf) in frags.iter_mut().zip(bufs.iter_mut()).take(nslots) {
            // Cannot fail: `nslots` buffers were checked to be free.
            *buf = self.tx_free.pop().unwrap_or(0);
            let page = &self.tx_bufs[usize::from(*buf)];
            let chunk = (len - copied).min(PAGE_SIZE);
            // The backend only reads the page (read-only grant).
            if page.copy_from_skb(skb, copied, chunk).is_err() {
                // Unreachable for a well-formed skb: drop it rather than send garbage.
                self.return_tx_bufs(&bufs[..nslots]);
                stats.tx_dropped += 1;
                return true;
            }
            *frag = TxFrag {
                gref: page.gref(),
                offset: 0,
                len: chunk as u16,
            };
            copied += chunk;
        }
        // The requests (a slot per page) and the buffer each one's
        // completion gives back.
        #[cfg(not(xennet_hostile))]
        let (nreqs, owner) = (nslots, bufs);
        #[cfg(xennet_hostile)]
        let mut owner = bufs;
        #[cfg(xennet_hostile)]
        let nreqs = crate::hostile::relayout(&self.tx_bufs[usize::from(bufs[0])], len, gso.is_some(), &mut frags, &mut owner, nslots, HOSTILE_BUF);
        let mut ids = [0u16; NR_SLOTS_MIN];
        if self.tx.queue_packet(&frags[..nreqs], flags, gso, &mut ids).is_err() {
            self.return_tx_bufs(&bufs[..nslots]);
            return false;
        }
        for (id, buf) in ids.iter().zip(owner.iter()).take(nreqs) {
            self.tx_buf_of_id[usize::from(*id)] = *buf;
        }
        #[cfg(xennet_hostile)]
        if crate::hostile::mcast_flood_now() {
            self.hostile_mcast_flood();
        }
        #[cfg(xennet_hostile)]
        if let Some(n) = crate::hostile::mcast_churn_now() {
            self.hostile_mcast_churn(n);
        }
        #[cfg(xennet_hostile)]
        if crate::hostile::malformed_flood_now() {
            self.hostile_malformed_flood();
        }
        #[cfg(xennet_hostile)]
        let slots = nreqs + usize::from(gso.is_some());
        #[cfg(xennet_hostile)]
        crate::hostile::inject(&mut self.tx, &self.chans.tx().channel(), slots, crate::hostile::Phase::BeforePush);
        if !defer && self.tx.push() {
            self.chans.tx().notify();
        }
        #[cfg(xennet_hostile)]
        crate::hostile::inject(&mut self.tx, &self.chans.tx().channel(), slots, crate::hostile::Phase::AfterPush);
        stats.tx_packets += 1;
        stats.tx_bytes += len as u64;
        true
    }

    /// Zero-copy transmit (`lend`): the skb's headers (its linear area) are
    /// copied into a TX page for the first slot; its fragments' pages are
    /// granted to the backend as they are, the skb held until it has
    /// completed them. The skb comes back when it cannot go this way
    /// (`Lend::Copy`: no fragments, more pieces than slots, headers over a
    /// page) or the ring is full (`Lend::Busy`).
    pub(crate) fn transmit_lent(&mut self, skb: Skb, flags: TxFlags, gso: Option<Gso>, stats: &mut Stats, defer: bool) -> Lend {
        let (len, headlen) = (skb.len(), skb.headlen());
        if !self.lend || headlen == len || !(ETH_HLEN..=PAGE_SIZE).contains(&headlen) || self.lent_free.is_empty() {
            return Lend::Copy(skb);
        }
        let gso_slot = usize::from(gso.is_some());
        let room = self.tx.ring.free_requests() as usize;
        if self.tx_free.is_empty() || room < 2 + gso_slot {
            return Lend::Busy(skb);
        }
        let lent = match LentSkb::lend(skb, self.domid, (room - 1 - gso_slot).min(NR_SLOTS_MIN - 1)) {
            Ok(lent) => lent,
            Err(skb) => return Lend::Copy(skb),
        };
        // Cannot fail: both checked above.
        let (buf, entry) = (self.tx_free.pop().unwrap_or(0), self.lent_free.pop().unwrap_or(0));
        let page = &self.tx_bufs[usize::from(buf)];
        let mut frags = [TxFrag { gref: 0, offset: 0, len: 0 }; NR_SLOTS_MIN];
        frags[0] = TxFrag { gref: page.gref(), offset: 0, len: headlen as u16 };
        for (f, (gref, offset, len)) in frags[1..].iter_mut().zip(lent.pieces()) {
            *f = TxFrag { gref, offset, len };
        }
        let n = lent.len();
        let mut ids = [0u16; NR_SLOTS_MIN];
        // The backend only reads the page (read-only grant).
        if page.copy_from_skb(lent.skb(), 0, headlen).is_err()
            || self.tx.queue_packet(&frags[..=n], flags, gso, &mut ids).is_err()
        {
            self.return_tx_bufs(&[buf]);
            let _ = self.lent_free.push(entry, GFP_ATOMIC);
            return Lend::Busy(lent.into_skb());
        }
        self.tx_buf_of_id[usize::from(ids[0])] = buf;
        for &id in &ids[1..=n] {
            self.tx_buf_of_id[usize::from(id)] = LENT_BUF;
            self.lent_of_id[usize::from(id)] = entry;
        }
        self.lent[usize::from(entry)] = Some(InFlight { lent, left: n as u16 });
        if !defer && self.tx.push() {
            self.chans.tx().notify();
        }
        stats.tx_packets += 1;
        stats.tx_bytes += len as u64;
        stats.tx_lent += 1;
        stats.tx_lent_pieces += n as u64;
        Lend::Sent
    }

    /// Whether packets may go by `transmit_lent`.
    pub(crate) fn lends(&self) -> bool {
        self.lend
    }

    /// Our TX pages are registered as static grants (the backend maps
    /// them): copying into them is cheaper for it than a grant copy from a
    /// lent page, so lending stops. True if it was lending.
    pub(crate) fn set_static_grants(&mut self) -> bool {
        core::mem::replace(&mut self.lend, false)
    }

    /// A lent slot completed: the packet is released once all have.
    fn complete_lent(&mut self, id: u16, stats: &mut Stats) {
        let entry = usize::from(self.lent_of_id[usize::from(id)]);
        let Some(Some(f)) = self.lent.get_mut(entry) else { return };
        f.left = f.left.saturating_sub(1);
        if f.left > 0 {
            return;
        }
        if let Some(f) = self.lent[entry].take() {
            if !f.lent.end() {
                stats.tx_errors += 1;
                crate::xen_sys::warn_ratelimited!(
                    "the backend completed a packet whose pages it still maps: they stay allocated until it lets go\n"
                );
            }
            // Cannot fail: capacity for every entry was reserved.
            let _ = self.lent_free.push(entry as u16, GFP_ATOMIC);
        }
    }

    /// Publishes the requests `transmit` deferred, with one notification
    /// if the backend asked for one.
    pub(crate) fn flush_tx(&mut self) {
        if self.broken.is_none() && self.tx.ring.unpublished() > 0 && self.tx.push() {
            self.chans.tx().notify();
        }
    }

    fn return_tx_bufs(&mut self, bufs: &[u16]) {
        for &buf in bufs {
            // Cannot fail: capacity for every buffer was reserved at connect.
            let _ = self.tx_free.push(buf, GFP_ATOMIC);
        }
    }

    /// True while the largest packet still fits.
    pub(crate) fn tx_has_room(&self) -> bool {
        self.tx_free.len() >= NR_SLOTS_MIN
            && self.tx.ring.free_requests() as usize >= MAX_PACKET_SLOTS
    }

    /// Collects TX completions; returns whether any were found.
    pub(crate) fn reap_tx(&mut self, stats: &mut Stats) -> core::result::Result<bool, NetifError> {
        let mut any = false;
        while let Some(c) = self.tx.next_completion()? {
            any = true;
            let buf = self.tx_buf_of_id[usize::from(c.id)];
            #[cfg(xennet_hostile)]
            if buf == HOSTILE_BUF {
                continue;
            }
            if buf == LENT_BUF {
                self.complete_lent(c.id, stats);
                if c.status != crate::netif::RspStatus::OKAY {
                    stats.tx_errors += 1;
                }
                continue;
            }
            if buf == NO_BUF {
                if c.status != crate::netif::RspStatus::OKAY {
                    pr_warn!("backend refused a multicast filter update\n");
                }
                continue;
            }
            // Cannot fail: one buffer per outstanding id, capacity for all.
            let _ = self.tx_free.push(buf, GFP_ATOMIC);
            if c.status != crate::netif::RspStatus::OKAY {
                stats.tx_errors += 1;
            }
        }
        if self.mcast_pending {
            self.sync_mcast();
        }
        Ok(any)
    }

    /// This queue carries the multicast filter updates (queue 0 with a
    /// backend that filters).
    pub(crate) fn enable_mcast_control(&mut self) {
        self.mcast_control = true;
    }

    /// Test-only: 100 joins at once (as many as the ring takes).
    #[cfg(xennet_hostile)]
    fn hostile_mcast_flood(&mut self) {
        let mut sent = 0;
        for i in 0..100u8 {
            match self.tx.queue_mcast(true, [0x01, 0x00, 0x5e, 0x7f, 0x00, i]) {
                Ok(id) => {
                    self.tx_buf_of_id[usize::from(id)] = NO_BUF;
                    sent += 1;
                }
                Err(_) => break,
            }
        }
        pr_warn!("hostile: {} multicast joins in a burst\n", sent);
    }

    /// Test-only: after packet `n`, a join of one of 64 groups and a leave
    /// of the group half the cycle away, while the ring has room.
    #[cfg(xennet_hostile)]
    fn hostile_mcast_churn(&mut self, n: u32) {
        for (add, group) in [(true, n % 64), (false, (n + 32) % 64)] {
            if self.tx.ring.free_requests() as usize <= MAX_PACKET_SLOTS {
                return;
            }
            match self.tx.queue_mcast(add, [0x01, 0x00, 0x5e, 0x7e, 0x00, group as u8]) {
                Ok(id) => self.tx_buf_of_id[usize::from(id)] = NO_BUF,
                Err(_) => return,
            }
        }
    }

    /// Test-only: up to 16 malformed single-slot packets (alternately a
    /// grant reference never issued and zero length) after every packet.
    #[cfg(xennet_hostile)]
    fn hostile_malformed_flood(&mut self) {
        let mut ids = [0u16; 1];
        for i in 0..16u16 {
            let frag = if i % 2 == 0 {
                TxFrag { gref: 0x7fff_fff0, offset: 0, len: 100 }
            } else {
                TxFrag { gref: self.tx_bufs[0].gref(), offset: 0, len: 0 }
            };
            if self.tx.ring.free_requests() as usize <= MAX_PACKET_SLOTS
                || self.tx.queue_packet(&[frag], TxFlags(0), None, &mut ids).is_err()
            {
                break;
            }
            self.tx_buf_of_id[usize::from(ids[0])] = HOSTILE_BUF;
        }
    }

    /// The device's multicast list changed: keep the backend's filter in
    /// step.
    pub(crate) fn set_mcast_wanted(&mut self, wanted: McastFilter) {
        if !self.mcast_control {
            return;
        }
        self.mcast_wanted = wanted;
        self.sync_mcast();
    }

    /// Sends the updates that bring the backend's list to the wanted one,
    /// deletions first so it never overflows; what does not fit on the ring
    /// now is sent after the next completions.
    fn sync_mcast(&mut self) {
        self.mcast_pending = false;
        let mut sent_any = false;
        loop {
            let stale = self.mcast_sent.iter().find(|a| !self.mcast_wanted.contains(a)).copied();
            let next = match stale {
                Some(a) => (false, a),
                None => match self.mcast_wanted.iter().find(|a| !self.mcast_sent.contains(a)) {
                    Some(a) => (true, *a),
                    None => break,
                },
            };
            let Ok(id) = self.tx.queue_mcast(next.0, next.1) else {
                self.mcast_pending = true;
                break;
            };
            self.tx_buf_of_id[usize::from(id)] = NO_BUF;
            if next.0 {
                let _ = self.mcast_sent.add(next.1);
            } else {
                self.mcast_sent.del(&next.1);
            }
            sent_any = true;
        }
        if sent_any && self.tx.push() {
            self.chans.tx().notify();
        }
    }

    /// Queues a frame an XDP program sent (`XDP_TX`, or another device's
    /// redirect): copied into a free TX buffer; published by `flush_tx`.
    /// `flags`: its checksum state (a frame received with its checksum
    /// left to fill goes back the same way). False: no room.
    pub(crate) fn transmit_frame(&mut self, data: &[u8], flags: TxFlags, stats: &mut Stats) -> bool {
        if !(ETH_HLEN..=PAGE_SIZE).contains(&data.len()) {
            stats.tx_dropped += 1;
            return true;
        }
        if self.tx_free.is_empty() || self.tx.ring.free_requests() == 0 {
            return false;
        }
        // Cannot fail: checked above.
        let buf = self.tx_free.pop().unwrap_or(0);
        let page = &self.tx_bufs[usize::from(buf)];
        let frag = TxFrag { gref: page.gref(), offset: 0, len: data.len() as u16 };
        let mut ids = [0u16; 1];
        if page.write(0, data).is_err() || self.tx.queue_packet(&[frag], flags, None, &mut ids).is_err() {
            self.return_tx_bufs(&[buf]);
            return false;
        }
        self.tx_buf_of_id[usize::from(ids[0])] = buf;
        stats.tx_packets += 1;
        stats.tx_bytes += data.len() as u64;
        true
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES` on the TX ring (the event armed
    /// ahead with `tx_moderation`): true if completions arrived meanwhile.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        self.tx.final_check(self.tuning.tx_moderation)
    }
}

impl RxConn {
    /// Grants of the receive buffers, into `out`; how many.
    pub(crate) fn buffer_grefs(&self, out: &mut [u32]) -> usize {
        for (r, p) in out.iter_mut().zip(self.rx_bufs.iter()) {
            *r = p.gref();
        }
        self.rx_bufs.len().min(out.len())
    }

    fn post_rx(&mut self, buf: u16) -> core::result::Result<(), NetifError> {
        let gref = self.rx_bufs[usize::from(buf)].gref();
        #[cfg(xennet_hostile)]
        let gref = crate::hostile::rx_gref(gref);
        let idx = self.rx.post(gref)?;
        self.rx_buf_of_slot[idx as usize % RX_SLOTS] = buf;
        Ok(())
    }

    /// Receives up to `max` packets into `batch` (copying each out of its
    /// buffer once) and reposts the buffers. With an XDP program attached
    /// (`xdp`), each frame is copied into a page of its own for the program
    /// instead (up to `XdpInbox::CAP`), run once the RX lock is released.
    /// Every packet the backend produced counts, dropped ones too (a
    /// backend sending only bad ones cannot keep the poll going): returns
    /// how many were taken, and whether the limit stopped it (more may wait).
    pub(crate) fn receive(
        &mut self,
        napi: &Polling<'_>,
        dev: &NetDevice,
        max: usize,
        (batch, mut xdp): (&mut SkbBatch, Option<&mut XdpInbox>),
        stats: &mut Stats,
        rss: (&crate::rss::RssLayout, u32),
    ) -> core::result::Result<(usize, bool), NetifError> {
        let limit = max.min(if xdp.is_some() { XdpInbox::CAP } else { SkbBatch::CAP });
        let mut taken = 0;
        while taken < limit {
            let Some(event) = self.rx.poll()? else {
                break;
            };
            taken += 1;
            let pkt = match event {
                RxEvent::Packet(pkt) => {
                    match xdp.as_deref_mut() {
                        Some(inbox) => self.copy_for_xdp(&pkt, inbox, stats),
                        None => self.deliver(&pkt, napi, dev, batch, stats, rss),
                    }
                    pkt
                }
                RxEvent::Dropped(pkt, err) => {
                    stats.rx_errors += 1;
                    // Log the 1st, 2nd, 4th, 8th... occurrence: a hostile
                    // backend cannot flood the log.
                    if stats.rx_errors.is_power_of_two() {
                        pr_warn!(
                            "dropped a received packet: {} ({} so far)\n",
                            err.as_str(),
                            stats.rx_errors
                        );
                    }
                    pkt
                }
            };
            for k in 0..pkt.ring_slots {
                let slot = pkt.first_idx.wrapping_add(k) as usize % RX_SLOTS;
                self.post_rx(self.rx_buf_of_slot[slot])?;
            }
            let batch = self.tuning.rx_refill_batch;
            if batch > 0 && self.rx.unpublished() >= batch {
                self.publish_rx();
            }
        }
        // Batched: fewer than a batch left over wait for the next pass,
        // unless the backend is running short.
        if self.rx.unpublished() > 0
            && (self.tuning.rx_refill_batch == 0 || self.rx.published_posted() < RX_RING_SIZE / 2)
        {
            self.publish_rx();
        }
        Ok((taken, taken == limit))
    }

    /// Publishes the receive buffers posted since the last call, with a
    /// notification if the backend waits for them.
    fn publish_rx(&mut self) {
        if self.rx.push() {
            self.chans.rx().notify();
        }
    }

    /// Builds an skb from a validated packet: all of it in the linear area
    /// up to the copybreak, else `RX_COPY_HDR` bytes there and the rest
    /// packed densely into fresh pages; each byte is copied out of the
    /// shared buffers exactly once.
    fn deliver(
        &self,
        pkt: &RxPacket,
        napi: &Polling<'_>,
        dev: &NetDevice,
        batch: &mut SkbBatch,
        stats: &mut Stats,
        (rss, queue): (&crate::rss::RssLayout, u32),
    ) {
        let total = pkt.len();
        if total < ETH_HLEN {
            stats.rx_errors += 1;
            return;
        }
        // A frame up to the copybreak goes whole into the head (one
        // allocation from the NAPI cache, which GRO can take as a page
        // fragment); a longer one gets its headers there.
        let hdr = if total <= self.tuning.rx_copybreak { total } else { total.min(RX_COPY_HDR) };
        let prof = self.tuning.profile;
        let t0 = prof_now(prof);
        let Some(mut skb) = napi.alloc_skb(hdr) else {
            stats.rx_dropped += 1;
            return;
        };
        let t1 = prof_now(prof);
        if self.copy_into(&mut skb, pkt, hdr).is_err() {
            stats.rx_dropped += 1;
            return;
        }
        let t2 = prof_now(prof);
        let meta = RxMeta { flags: pkt.flags, gso: pkt.gso, hash: pkt.hash };
        if finish_rx(skb, meta, dev, batch, stats, (rss, queue)) {
            stats.rx_packets += 1;
            stats.rx_bytes += total as u64;
        }
        if prof {
            let t3 = prof_now(prof);
            stats.prof_alloc_ns += t1 - t0;
            stats.prof_copy_ns += t2 - t1;
            stats.prof_finish_ns += t3 - t2;
        }
    }

    /// With an XDP program: copies a one-buffer frame into a fresh page at
    /// the program's headroom (the program then runs on our copy, never on
    /// the shared buffer). A frame over several buffers (GSO or jumbo) or
    /// too long for the page is dropped unseen and counted, as the C
    /// netfront does.
    fn copy_for_xdp(&self, pkt: &RxPacket, inbox: &mut XdpInbox, stats: &mut Stats) {
        let total = pkt.len();
        let &[frag] = pkt.frags() else {
            self.count_xdp_oversize(total, stats);
            return;
        };
        if pkt.gso.is_some() || total > xdp::max_frame() {
            self.count_xdp_oversize(total, stats);
            return;
        }
        if total < ETH_HLEN {
            stats.rx_errors += 1;
            return;
        }
        let buf = &self.rx_bufs[usize::from(self.rx_buf_of_slot[frag.idx as usize % RX_SLOTS])];
        let Ok(mut page) = FragPage::alloc_atomic() else {
            stats.rx_dropped += 1;
            return;
        };
        // `offset + len <= PAGE_SIZE` was validated by `RxFront`.
        if page.fill_from_granted(xdp::HEADROOM, buf, usize::from(frag.offset), total).is_err() {
            stats.rx_dropped += 1;
            return;
        }
        // A checksum the sender left to fill is filled in our copy, so the
        // program sees a valid one and a frame it redirects carries it.
        let mut flags = pkt.flags;
        if flags.contains(RxFlags::CSUM_BLANK)
            && page.bytes_mut(xdp::HEADROOM, total).is_some_and(crate::netif::finish_partial_checksum)
        {
            flags = RxFlags(flags.0 & !RxFlags::CSUM_BLANK.0).with(RxFlags::DATA_VALIDATED);
        }
        inbox.push(XdpPending { page, len: total, meta: RxMeta { flags, gso: None, hash: pkt.hash } });
        // Received, whatever the program makes of it (its own counters).
        stats.rx_packets += 1;
        stats.rx_bytes += total as u64;
    }

    /// A frame the XDP program cannot take: logged at the 1st, 2nd, 4th...
    fn count_xdp_oversize(&self, len: usize, stats: &mut Stats) {
        stats.xdp_oversize += 1;
        stats.rx_dropped += 1;
        if stats.xdp_oversize.is_power_of_two() {
            pr_warn!(
                "XDP: dropped a {}-byte frame over several buffers or past {} bytes, which the program cannot see ({} so far); turn off TSO/GSO on the backend's vif (ethtool -K) for TCP with XDP\n",
                len,
                xdp::max_frame(),
                stats.xdp_oversize
            );
        }
    }

    /// Copies the packet's fragments into `skb`: `hdr` bytes into the linear
    /// area, the rest into freshly allocated pages attached as fragments.
    fn copy_into(&self, skb: &mut NewSkb, pkt: &RxPacket, hdr: usize) -> Result {
        let mut linear_left = hdr;
        let mut page: Option<FragPage> = None;
        let mut page_used = 0;
        for frag in pkt.frags() {
            let buf = &self.rx_bufs[usize::from(self.rx_buf_of_slot[frag.idx as usize % RX_SLOTS])];
            // `offset + len <= PAGE_SIZE` was validated by `RxFront`.
            let mut src = usize::from(frag.offset);
            let mut left = usize::from(frag.len);
            while left > 0 {
                let n;
                if linear_left > 0 {
                    n = left.min(linear_left);
                    skb.put_from_granted(buf, src, n)?;
                    linear_left -= n;
                } else {
                    if page_used == PAGE_SIZE {
                        if let Some(full) = page.take() {
                            skb.add_frag(full, PAGE_SIZE)?;
                        }
                    }
                    let p = match &mut page {
                        Some(p) => p,
                        None => {
                            page_used = 0;
                            page.insert(FragPage::alloc_atomic()?)
                        }
                    };
                    n = left.min(PAGE_SIZE - page_used);
                    p.fill_from_granted(page_used, buf, src, n)?;
                    page_used += n;
                }
                src += n;
                left -= n;
            }
        }
        if let Some(last) = page {
            skb.add_frag(last, page_used)?;
        }
        Ok(())
    }

    /// Re-enables event delivery after a poll (see `Channels::lateeoi`).
    pub(crate) fn lateeoi(&self, spurious: bool) {
        self.chans.lateeoi(spurious);
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES` on the RX ring: true if responses
    /// arrived meanwhile; otherwise the backend will notify on the next one.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        self.rx.ring.final_check_for_responses()
    }
}

/// What the backend said of a received frame besides its bytes.
#[derive(Clone, Copy)]
pub(crate) struct RxMeta {
    flags: RxFlags,
    gso: Option<Gso>,
    hash: Option<HashExtra>,
}

impl RxMeta {
    /// The checksum state an XDP_TX frame goes back with.
    pub(crate) fn tx_flags(&self) -> TxFlags {
        if self.flags.contains(RxFlags::CSUM_BLANK) {
            TxFlags::CSUM_BLANK.with(TxFlags::DATA_VALIDATED)
        } else {
            TxFlags(0)
        }
    }
}

/// Applies the backend's offload flags and hash to a received skb and adds
/// it to `batch`: a GSO packet, or a partial checksum (the sender offloaded
/// it), gets its checksum field located from the headers, as the C driver
/// does; a packet whose headers do not parse is dropped (false).
pub(crate) fn finish_rx(
    mut skb: NewSkb,
    meta: RxMeta,
    dev: &NetDevice,
    batch: &mut SkbBatch,
    stats: &mut Stats,
    (rss, queue): (&crate::rss::RssLayout, u32),
) -> bool {
    if skb.eth_type_trans(dev).is_err() {
        stats.rx_dropped += 1;
        return false;
    }
    let partial = meta.flags.contains(RxFlags::CSUM_BLANK);
    if let Some(gso) = meta.gso {
        // `RxFront` validated size and type.
        skb.set_gso(gso.size, gso.ty == GsoType::TCPV6);
    }
    if partial || meta.gso.is_some() {
        skb.set_ip_summed(csum::PARTIAL);
        if skb.checksum_setup(!partial).is_err() {
            stats.rx_errors += 1;
            return false;
        }
    } else if meta.flags.contains(RxFlags::DATA_VALIDATED) {
        skb.set_ip_summed(csum::UNNECESSARY);
    }
    if let Some(h) = meta.hash {
        // The backend's Toeplitz hash, as we configured it: the stack
        // uses it instead of hashing again.
        skb.set_rx_hash(h.value, h.ty & 1 == 1);
        stats.rx_hashed += 1;
        if rss.expected_queue(h.value).is_some_and(|q| q != queue) {
            stats.rx_misrouted += 1;
        }
    }
    batch.push(skb);
    true
}

/// A frame copied out for the XDP program.
pub(crate) struct XdpPending {
    pub(crate) page: FragPage,
    pub(crate) len: usize,
    pub(crate) meta: RxMeta,
}

/// The frames one receive pass copied out for the XDP program, run after
/// the RX lock is released (a program's `XDP_TX` or redirect may transmit
/// on this device, which takes the TX lock). Small: it sits on the softirq
/// stack, under the program's and the stack's own frames.
pub(crate) type XdpInbox = Batch<XdpPending, 16>;
