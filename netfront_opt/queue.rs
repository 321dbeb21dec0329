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
    Error as NetifError, McastFilter, Gso, GsoType, RxEvent, RxFlags, RxPacket, RxFront, RxRingKind, SharedRing, TxFlags, TxFrag,
    TxFront, TxRingKind, NR_SLOTS_MIN, PAGE_SIZE, RX_RING_SIZE, TX_RING_SIZE,
};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::bindings as b;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant::GrantedPage;
pub(crate) use crate::xen_sys::netdev::{SkbBatch, Stats};
use crate::xen_sys::xenbus::RingPage;

const ETH_HLEN: usize = 14;
/// `skb->ip_summed` values.
pub(crate) const CHECKSUM_UNNECESSARY: u8 = 1;
pub(crate) const CHECKSUM_PARTIAL: u8 = 3;
/// Bytes of a received packet copied into the skb's linear area (headers).
const RX_COPY_HDR: usize = 256;
/// Ring slots the largest packet takes: data slots plus a GSO extra.
const MAX_PACKET_SLOTS: usize = NR_SLOTS_MIN + 1;
const TX_SLOTS: usize = TX_RING_SIZE as usize;
const RX_SLOTS: usize = RX_RING_SIZE as usize;

/// A queue's connection to the backend. Field order is drop order: the event
/// channel is unbound first, then the rings and their pages go.
pub(crate) struct Connection {
    /// The event channel (the TX one when split).
    pub(crate) irq: EventIrq,
    /// The RX event channel, when the backend offers split channels.
    pub(crate) rx_irq: Option<EventIrq>,
    tx: TxFront<XenBarriers>,
    rx: RxFront<XenBarriers>,
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
    /// Multicast groups the backend filters for us (queue 0 only, when it
    /// offered `feature-multicast-control`): the groups it has, the ones
    /// the device wants, and whether an update waits for ring room.
    mcast_control: bool,
    mcast_sent: McastFilter,
    mcast_wanted: McastFilter,
    mcast_pending: bool,
    _tx_ring: RingPage,
    _rx_ring: RingPage,
}

/// `tx_buf_of_id` of a request that carries no buffer (a multicast update).
const NO_BUF: u16 = u16::MAX;

impl Connection {
    /// Builds a connection: ring pages, buffer pages granted to `domid`, all
    /// RX buffers posted, and the event channel(s) bound.
    pub(crate) fn new(
        tx_ring: RingPage,
        rx_ring: RingPage,
        irq: EventIrq,
        rx_irq: Option<EventIrq>,
        domid: u16,
    ) -> Result<KBox<Self>> {
        // SAFETY: each ring page is a whole page of ours, granted to the
        // backend, that lives as long as this connection (it is a field,
        // dropped after the rings) and is only accessed through the ring.
        let tx_sring = unsafe { SharedRing::<TxRingKind>::from_raw(tx_ring.as_ptr(), PAGE_SIZE) }
            .map_err(|_| EINVAL)?;
        // SAFETY: as above.
        let rx_sring = unsafe { SharedRing::<RxRingKind>::from_raw(rx_ring.as_ptr(), PAGE_SIZE) }
            .map_err(|_| EINVAL)?;

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
                tx: TxFront::new(tx_sring),
                // Chains of up to NR_SLOTS_MIN data slots (SG and GSO receive).
                rx: RxFront::new(rx_sring, NR_SLOTS_MIN),
                tx_buf_of_id: [0; TX_SLOTS],
                tx_free,
                rx_buf_of_slot: [0; RX_SLOTS],
                tx_bufs,
                rx_bufs,
                broken: None,
                mcast_control: false,
                mcast_sent: McastFilter::new(),
                mcast_wanted: McastFilter::new(),
                mcast_pending: false,
                _tx_ring: tx_ring,
                _rx_ring: rx_ring,
            },
            GFP_KERNEL,
        )?;
        for buf in 0..RX_SLOTS {
            conn.post_rx(buf as u16).map_err(|_| EINVAL)?;
        }
        conn.rx.push();
        Ok(conn)
    }

    fn post_rx(&mut self, buf: u16) -> core::result::Result<(), NetifError> {
        let idx = self.rx.post(self.rx_bufs[usize::from(buf)].gref())?;
        self.rx_buf_of_slot[idx as usize % RX_SLOTS] = buf;
        Ok(())
    }

    /// Copies `skb` (`len` bytes, at most `NR_SLOTS_MIN` pages) into free
    /// TX buffers, one page per slot, and queues it with `flags` and `gso`.
    /// `Err(())`: no room (the caller stops the queue and returns the skb).
    pub(crate) fn transmit(
        &mut self,
        skb: *mut b::sk_buff,
        len: usize,
        flags: TxFlags,
        gso: Option<Gso>,
        stats: &mut Stats,
    ) -> core::result::Result<(), ()> {
        let nslots = len.div_ceil(PAGE_SIZE);
        #[cfg(xennet_hostile)]
        if crate::hostile::frozen() {
            stats.tx_dropped += 1;
            return Ok(());
        }
        if nslots > NR_SLOTS_MIN {
            stats.tx_dropped += 1;
            return Ok(());
        }
        if self.tx_free.len() < nslots
            || (self.tx.ring.free_requests() as usize) < nslots + usize::from(gso.is_some())
        {
            return Err(());
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
            // SAFETY: `skb` is a live skb of `len` bytes; `copied + chunk <=
            // len`; the page is ours and `PAGE_SIZE >= chunk` long; the backend
            // only reads it (read-only grant).
            let rc = unsafe {
                b::skb_copy_bits(skb, copied as i32, page.as_ptr().cast(), chunk as i32)
            };
            if rc < 0 {
                // Unreachable for a well-formed skb: drop it rather than send garbage.
                self.return_tx_bufs(&bufs[..nslots]);
                stats.tx_dropped += 1;
                return Ok(());
            }
            *frag = TxFrag {
                gref: page.gref(),
                offset: 0,
                len: chunk as u16,
            };
            copied += chunk;
        }
        let mut ids = [0u16; NR_SLOTS_MIN];
        if self.tx.queue_packet(&frags[..nslots], flags, gso, &mut ids).is_err() {
            self.return_tx_bufs(&bufs[..nslots]);
            return Err(());
        }
        for (id, buf) in ids.iter().zip(bufs.iter()).take(nslots) {
            self.tx_buf_of_id[usize::from(*id)] = *buf;
        }
        #[cfg(xennet_hostile)]
        if crate::hostile::mcast_flood_now() {
            self.hostile_mcast_flood();
        }
        #[cfg(xennet_hostile)]
        let slots = nslots + usize::from(gso.is_some());
        #[cfg(xennet_hostile)]
        crate::hostile::inject(&mut self.tx, &self.irq, slots, crate::hostile::Phase::BeforePush);
        if self.tx.push() {
            self.irq.notify();
        }
        #[cfg(xennet_hostile)]
        crate::hostile::inject(&mut self.tx, &self.irq, slots, crate::hostile::Phase::AfterPush);
        stats.tx_packets += 1;
        stats.tx_bytes += len as u64;
        Ok(())
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
    /// buffer once) and reposts the buffers.
    pub(crate) fn receive(
        &mut self,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        max: usize,
        batch: &mut SkbBatch,
        stats: &mut Stats,
        rss: (&crate::rss::RssLayout, u32),
    ) -> core::result::Result<bool, NetifError> {
        let mut any = false;
        while batch.len() < max.min(SkbBatch::MAX) {
            let Some(event) = self.rx.poll()? else {
                break;
            };
            any = true;
            let pkt = match event {
                RxEvent::Packet(pkt) => {
                    self.deliver(&pkt, napi, netdev, batch, stats, rss);
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
        }
        if self.rx.push() {
            self.rx_irq.as_ref().unwrap_or(&self.irq).notify();
        }
        Ok(any)
    }

    /// Builds an skb from a validated packet: up to `RX_COPY_HDR` bytes in
    /// the linear area, the rest packed densely into fresh pages; each byte
    /// is copied out of the shared buffers exactly once.
    fn deliver(
        &self,
        pkt: &RxPacket,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        batch: &mut SkbBatch,
        stats: &mut Stats,
        (rss, queue): (&crate::rss::RssLayout, u32),
    ) {
        let total = pkt.len();
        if total < ETH_HLEN {
            stats.rx_errors += 1;
            return;
        }
        let hdr = total.min(RX_COPY_HDR);
        // SAFETY: `napi` is this device's live NAPI context (we run in its poll).
        let skb = unsafe { b::napi_alloc_skb(napi, hdr as u32) };
        if skb.is_null() {
            stats.rx_dropped += 1;
            return;
        }
        if self.copy_into(skb, pkt, hdr).is_err() {
            // SAFETY: the skb is ours and not handed on.
            unsafe { b::xennet_shim_kfree_skb_any(skb) };
            stats.rx_dropped += 1;
            return;
        }
        // SAFETY: `skb` is ours and holds at least an Ethernet header.
        unsafe {
            b::xennet_shim_skb_set_protocol(skb, b::eth_type_trans(skb, netdev));
            b::xennet_shim_skb_reset_network_header(skb);
        }
        // A GSO packet, or a partial checksum (the sender offloaded it):
        // locate the checksum field from the headers, as the C driver does;
        // a packet whose headers do not parse is dropped.
        let partial = pkt.flags.contains(RxFlags::CSUM_BLANK);
        if let Some(gso) = pkt.gso {
            // SAFETY: `skb` is ours; `RxFront` validated size and type.
            unsafe { b::xennet_shim_skb_set_gso(skb, gso.size, gso.ty == GsoType::TCPV6) };
        }
        if partial || pkt.gso.is_some() {
            // SAFETY: `skb` is ours, its headers are in the linear area.
            let rc = unsafe {
                b::xennet_shim_skb_set_ip_summed(skb, CHECKSUM_PARTIAL);
                b::skb_checksum_setup(skb, !partial)
            };
            if rc < 0 {
                // SAFETY: the skb is ours and not handed on.
                unsafe { b::xennet_shim_kfree_skb_any(skb) };
                stats.rx_errors += 1;
                return;
            }
        } else if pkt.flags.contains(RxFlags::DATA_VALIDATED) {
            // SAFETY: `skb` is ours.
            unsafe { b::xennet_shim_skb_set_ip_summed(skb, CHECKSUM_UNNECESSARY) };
        }
        if let Some(h) = pkt.hash {
            // The backend's Toeplitz hash, as we configured it: the stack
            // uses it instead of hashing again.
            // SAFETY: `skb` is ours.
            unsafe { b::xennet_shim_skb_set_rx_hash(skb, h.value, h.ty & 1 == 1) };
            stats.rx_hashed += 1;
            if rss.expected_queue(h.value).is_some_and(|q| q != queue) {
                stats.rx_misrouted += 1;
            }
        }
        batch.push(skb);
        stats.rx_packets += 1;
        stats.rx_bytes += total as u64;
    }

    /// Copies the packet's fragments into `skb`: `hdr` bytes into the linear
    /// area, the rest into freshly allocated pages attached as fragments.
    fn copy_into(&self, skb: *mut b::sk_buff, pkt: &RxPacket, hdr: usize) -> Result {
        let mut linear_left = hdr;
        let mut page: *mut b::page = core::ptr::null_mut();
        let mut page_used = 0;
        let mut nr_frags = 0;
        // Attaches the page being filled to the skb.
        let flush = |page: &mut *mut b::page, used: usize, nr: &mut i32| {
            if !page.is_null() {
                // SAFETY: `page` is a fresh page of ours holding `used` bytes;
                // the skb takes it over.
                unsafe { b::xennet_shim_skb_add_rx_frag(skb, *nr, *page, 0, used as i32) };
                *nr += 1;
                *page = core::ptr::null_mut();
            }
        };
        for frag in pkt.frags() {
            let buf = &self.rx_bufs[usize::from(self.rx_buf_of_slot[frag.idx as usize % RX_SLOTS])];
            // SAFETY: `offset + len <= PAGE_SIZE` was validated by `RxFront`.
            let mut src = unsafe { buf.as_ptr().add(usize::from(frag.offset)) };
            let mut left = usize::from(frag.len);
            while left > 0 {
                let n;
                if linear_left > 0 {
                    n = left.min(linear_left);
                    // SAFETY: `src..src+n` is inside our buffer page; the skb
                    // has `linear_left >= n` bytes of room.
                    unsafe { b::xennet_shim_skb_put_data(skb, src.cast(), n as u32) };
                    linear_left -= n;
                } else {
                    if page.is_null() || page_used == PAGE_SIZE {
                        flush(&mut page, page_used, &mut nr_frags);
                        // SAFETY: atomic page allocation, no preconditions.
                        page = unsafe { b::xennet_shim_alloc_page_atomic() };
                        if page.is_null() {
                            return Err(ENOMEM);
                        }
                        page_used = 0;
                    }
                    n = left.min(PAGE_SIZE - page_used);
                    // SAFETY: `page` is ours with `PAGE_SIZE - page_used >= n`
                    // bytes free; `src..src+n` is inside our buffer page.
                    unsafe {
                        let dst = b::xennet_shim_page_address(page).cast::<u8>().add(page_used);
                        b::xennet_shim_copy_from_shared(dst.cast(), src.cast(), n);
                    }
                    page_used += n;
                }
                // SAFETY: stays within the fragment (`n <= left`).
                src = unsafe { src.add(n) };
                left -= n;
            }
        }
        flush(&mut page, page_used, &mut nr_frags);
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
        let tx = self.tx.ring.final_check_for_responses()?;
        Ok(rx || tx)
    }
}
