// SPDX-License-Identifier: GPL-2.0

//! One connected queue: its TX and RX rings, the granted buffer pages they
//! carry, and the event channel.
//!
//! Buffers: every ring slot has a page of ours granted to the backend for
//! the life of the connection (read-only for TX, writable for RX). Transmit
//! copies the packet into a TX page; receive copies out of the RX page the
//! backend filled, then reposts it. So no grant operation happens per packet,
//! the backend never sees a page that held anything but its own traffic
//! (XSA-403), and nothing the backend shares is read twice (XSA-155).

use kernel::prelude::*;

use crate::netif::{
    Error as NetifError, HashExtra, McastFilter, Gso, GsoType, RxEvent, RxFlags, RxPacket, RxFront, TxFlags, TxFrag,
    TxFront, NR_SLOTS_MIN, PAGE_SIZE, RX_RING_SIZE, TX_RING_SIZE,
};
use crate::device::QueueCtx;
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant::GrantedPage;
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
}

/// The clock for `Tuning::profile` (0 when off: no clock read).
pub(crate) fn prof_now(on: bool) -> u64 {
    if on { crate::xen_sys::now_ns() } else { 0 }
}

/// A queue's connection to the backend. Field order is drop order: the event
/// channel is unbound first, then the rings and their pages go.
pub(crate) struct Connection {
    /// The event channel (the TX one when split).
    pub(crate) irq: EventIrq<QueueCtx>,
    /// The RX event channel, when the backend offers split channels.
    pub(crate) rx_irq: Option<EventIrq<QueueCtx>>,
    tx: OnRing<TxFront<XenBarriers>, RingPage>,
    rx: OnRing<RxFront<XenBarriers>, RingPage>,
    /// Buffer index of each outstanding TX request id.
    tx_buf_of_id: [u16; TX_SLOTS],
    /// Free TX buffers (a stack of indices into `tx_bufs`).
    tx_free: KVec<u16>,
    /// Buffer index posted in each RX ring slot.
    rx_buf_of_slot: [u16; RX_SLOTS],
    tx_bufs: KVec<GrantedPage>,
    rx_bufs: KVec<GrantedPage>,
    /// Set on a fatal protocol error: the queue carries nothing more.
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

/// `tx_buf_of_id` of a request that carries no buffer (a multicast update).
const NO_BUF: u16 = u16::MAX;
/// `tx_buf_of_id` of a test-only malformed request (hostile build).
#[cfg(xennet_hostile)]
const HOSTILE_BUF: u16 = u16::MAX - 1;

impl Connection {
    /// Builds a connection: ring pages, buffer pages granted to `domid`, all
    /// RX buffers posted, and the event channel(s) bound.
    pub(crate) fn new(
        tx_ring: RingPage,
        rx_ring: RingPage,
        irq: EventIrq<QueueCtx>,
        rx_irq: Option<EventIrq<QueueCtx>>,
        domid: u16,
        tuning: Tuning,
    ) -> Result<KBox<Self>> {
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

        let mut conn = KBox::new(
            Connection {
                irq,
                rx_irq,
                tx,
                rx,
                tx_buf_of_id: [0; TX_SLOTS],
                tx_free,
                rx_buf_of_slot: [0; RX_SLOTS],
                tx_bufs,
                rx_bufs,
                broken: None,
                tuning,
                mcast_control: false,
                mcast_sent: McastFilter::new(),
                mcast_wanted: McastFilter::new(),
                mcast_pending: false,
            },
            GFP_KERNEL,
        )?;
        for buf in 0..RX_SLOTS {
            conn.post_rx(buf as u16)?;
        }
        conn.rx.push();
        Ok(conn)
    }

    /// Grants of the receive buffers, then of the transmit pages, into
    /// `rx` and `tx` (grant reuse registers them); how many of each.
    pub(crate) fn buffer_grefs(&self, rx: &mut [u32], tx: &mut [u32]) -> (usize, usize) {
        for (r, p) in rx.iter_mut().zip(self.rx_bufs.iter()) {
            *r = p.gref();
        }
        for (t, p) in tx.iter_mut().zip(self.tx_bufs.iter()) {
            *t = p.gref();
        }
        (self.rx_bufs.len().min(rx.len()), self.tx_bufs.len().min(tx.len()))
    }

    fn post_rx(&mut self, buf: u16) -> core::result::Result<(), NetifError> {
        let gref = self.rx_bufs[usize::from(buf)].gref();
        #[cfg(xennet_hostile)]
        let gref = crate::hostile::rx_gref(gref);
        let idx = self.rx.post(gref)?;
        self.rx_buf_of_slot[idx as usize % RX_SLOTS] = buf;
        Ok(())
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
        crate::hostile::inject(&mut self.tx, self.irq.channel(), slots, crate::hostile::Phase::BeforePush);
        if !defer && self.tx.push() {
            self.irq.notify();
        }
        #[cfg(xennet_hostile)]
        crate::hostile::inject(&mut self.tx, self.irq.channel(), slots, crate::hostile::Phase::AfterPush);
        stats.tx_packets += 1;
        stats.tx_bytes += len as u64;
        true
    }

    /// Publishes the requests `transmit` deferred, with one notification
    /// if the backend asked for one.
    pub(crate) fn flush_tx(&mut self) {
        if self.broken.is_none() && self.tx.ring.unpublished() > 0 && self.tx.push() {
            self.irq.notify();
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
            self.irq.notify();
        }
    }

    /// Receives up to `max` packets into `batch` (copying each out of its
    /// buffer once) and reposts the buffers. With an XDP program attached
    /// (`xdp`), each frame is copied into a page of its own for the program
    /// instead (up to `XdpInbox::CAP`), run once the queue lock is released.
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
        let limit = max.min(if xdp.is_some() { XdpInbox::CAP } else { SkbBatch::MAX });
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
            self.rx_irq.as_ref().unwrap_or(&self.irq).notify();
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

    /// Re-enables event delivery after a poll; `spurious` when the poll
    /// found no work (throttles an event storm).
    pub(crate) fn lateeoi(&self, spurious: bool) {
        self.irq.lateeoi(spurious);
        if let Some(rx) = &self.rx_irq {
            rx.lateeoi(spurious);
        }
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES` on both rings: true if responses
    /// arrived meanwhile; otherwise the backend will notify on the next one.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        let rx = self.rx.ring.final_check_for_responses()?;
        let tx = self.tx.final_check(self.tuning.tx_moderation)?;
        Ok(rx || tx)
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
/// the queue lock is released (a program's redirect may transmit on this
/// device, which takes the lock). Small: it sits on the softirq stack,
/// under the program's and the stack's own frames.
pub(crate) struct XdpInbox {
    frames: [Option<XdpPending>; XdpInbox::CAP],
    len: usize,
}

impl XdpInbox {
    /// Frames per receive pass with a program.
    pub(crate) const CAP: usize = 16;

    pub(crate) fn new() -> Self {
        Self { frames: [const { None }; XdpInbox::CAP], len: 0 }
    }

    fn push(&mut self, p: XdpPending) {
        // `receive` stops at `CAP` frames.
        if let Some(slot) = self.frames.get_mut(self.len) {
            *slot = Some(p);
            self.len += 1;
        }
    }

    /// The frames, in arrival order; the inbox is empty after.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = XdpPending> + '_ {
        let n = core::mem::replace(&mut self.len, 0);
        self.frames[..n].iter_mut().filter_map(Option::take)
    }
}
