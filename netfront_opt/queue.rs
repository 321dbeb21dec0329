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
    Error as NetifError, RxEvent, RxFront, RxRingKind, SharedRing, TxFlags, TxFrag, TxFront,
    TxRingKind, PAGE_SIZE, RX_RING_SIZE, TX_RING_SIZE,
};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::bindings as b;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant::GrantedPage;
use crate::xen_sys::xenbus::RingPage;

const ETH_HLEN: usize = 14;
const TX_SLOTS: usize = TX_RING_SIZE as usize;
const RX_SLOTS: usize = RX_RING_SIZE as usize;

/// Counters of one queue (read by `ndo_get_stats64`).
#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) rx_errors: u64,
    pub(crate) rx_dropped: u64,
    pub(crate) tx_packets: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) tx_errors: u64,
    pub(crate) tx_dropped: u64,
}

/// Skbs received under the queue lock, handed to the stack after it is
/// released (the stack may transmit in reply, which takes the lock).
pub(crate) struct RxBatch {
    skbs: [*mut b::sk_buff; RxBatch::MAX],
    len: usize,
}

impl RxBatch {
    pub(crate) const MAX: usize = 64;

    pub(crate) fn new() -> Self {
        Self {
            skbs: [core::ptr::null_mut(); Self::MAX],
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn skbs(&self) -> &[*mut b::sk_buff] {
        &self.skbs[..self.len]
    }
}

/// A queue's connection to the backend. Field order is drop order: the event
/// channel is unbound first, then the rings and their pages go.
pub(crate) struct Connection {
    pub(crate) irq: EventIrq,
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
    _tx_ring: RingPage,
    _rx_ring: RingPage,
}

impl Connection {
    /// Builds a connection: ring pages, buffer pages granted to `domid`, all
    /// RX buffers posted, and the event channel bound to `irq`.
    pub(crate) fn new(
        tx_ring: RingPage,
        rx_ring: RingPage,
        irq: EventIrq,
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
                tx: TxFront::new(tx_sring),
                // One data slot per packet: we offer no scatter-gather.
                rx: RxFront::new(rx_sring, 1),
                tx_buf_of_id: [0; TX_SLOTS],
                tx_free,
                rx_buf_of_slot: [0; RX_SLOTS],
                tx_bufs,
                rx_bufs,
                broken: None,
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

    /// Copies `skb` into a free TX buffer and queues it. `Err(())`: no room
    /// (the caller stops the queue and returns the skb to the stack).
    pub(crate) fn transmit(
        &mut self,
        skb: *mut b::sk_buff,
        len: usize,
        stats: &mut Stats,
    ) -> core::result::Result<(), ()> {
        let Some(buf) = self.tx_free.pop() else {
            return Err(());
        };
        let page = &self.tx_bufs[usize::from(buf)];
        // SAFETY: `skb` is a live skb of `len` bytes (`len` <= PAGE_SIZE was
        // checked by the caller); the page is ours and `PAGE_SIZE` long; the
        // backend only reads it (read-only grant).
        let rc = unsafe { b::skb_copy_bits(skb, 0, page.as_ptr().cast(), len as i32) };
        if rc < 0 {
            // Unreachable for a well-formed skb; drop it rather than send garbage.
            let _ = self.tx_free.push(buf, GFP_ATOMIC);
            stats.tx_dropped += 1;
            return Ok(());
        }
        let frag = TxFrag {
            gref: page.gref(),
            offset: 0,
            len: len as u16,
        };
        let mut ids = [0u16; 1];
        if self.tx.queue_packet(&[frag], TxFlags(0), None, &mut ids).is_err() {
            let _ = self.tx_free.push(buf, GFP_ATOMIC);
            return Err(());
        }
        self.tx_buf_of_id[usize::from(ids[0])] = buf;
        if self.tx.push() {
            self.irq.notify();
        }
        stats.tx_packets += 1;
        stats.tx_bytes += len as u64;
        Ok(())
    }

    /// True while another single-slot packet fits.
    pub(crate) fn tx_has_room(&self) -> bool {
        !self.tx_free.is_empty() && self.tx.ring.free_requests() > 0
    }

    /// Collects TX completions; returns whether any were found.
    pub(crate) fn reap_tx(&mut self, stats: &mut Stats) -> core::result::Result<bool, NetifError> {
        let mut any = false;
        while let Some(c) = self.tx.next_completion()? {
            any = true;
            let buf = self.tx_buf_of_id[usize::from(c.id)];
            // Cannot fail: one buffer per outstanding id, capacity for all.
            let _ = self.tx_free.push(buf, GFP_ATOMIC);
            if c.status != crate::netif::RspStatus::OKAY {
                stats.tx_errors += 1;
            }
        }
        Ok(any)
    }

    /// Receives up to `max` packets into `batch` (copying each out of its
    /// buffer once) and reposts the buffers.
    pub(crate) fn receive(
        &mut self,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        max: usize,
        batch: &mut RxBatch,
        stats: &mut Stats,
    ) -> core::result::Result<bool, NetifError> {
        let mut any = false;
        while batch.len < max.min(RxBatch::MAX) {
            let Some(event) = self.rx.poll()? else {
                break;
            };
            any = true;
            let pkt = match event {
                RxEvent::Packet(pkt) => {
                    self.deliver(&pkt, napi, netdev, batch, stats);
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
            self.irq.notify();
        }
        Ok(any)
    }

    fn deliver(
        &self,
        pkt: &crate::netif::RxPacket,
        napi: *mut b::napi_struct,
        netdev: *mut b::net_device,
        batch: &mut RxBatch,
        stats: &mut Stats,
    ) {
        let [frag] = pkt.frags() else {
            stats.rx_errors += 1;
            return;
        };
        let len = usize::from(frag.len);
        if len < ETH_HLEN {
            stats.rx_errors += 1;
            return;
        }
        let page = &self.rx_bufs[usize::from(self.rx_buf_of_slot[frag.idx as usize % RX_SLOTS])];
        // SAFETY: `napi` is this device's live NAPI context (we run in its poll).
        let skb = unsafe { b::napi_alloc_skb(napi, len as u32) };
        if skb.is_null() {
            stats.rx_dropped += 1;
            return;
        }
        // SAFETY: `offset + len <= PAGE_SIZE` was validated by `RxFront`; the
        // page is ours; `skb` has room for `len` bytes. The backend may still
        // write the page: this single copy is all we read of it.
        unsafe {
            let src = page.as_ptr().add(usize::from(frag.offset));
            b::xennet_shim_skb_put_data(skb, src.cast(), len as u32);
            b::xennet_shim_skb_set_protocol(skb, b::eth_type_trans(skb, netdev));
        }
        batch.skbs[batch.len] = skb;
        batch.len += 1;
        stats.rx_packets += 1;
        stats.rx_bytes += len as u64;
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES` on both rings: true if responses
    /// arrived meanwhile; otherwise the backend will notify on the next one.
    pub(crate) fn final_check(&mut self) -> core::result::Result<bool, NetifError> {
        let rx = self.rx.ring.final_check_for_responses()?;
        let tx = self.tx.ring.final_check_for_responses()?;
        Ok(rx || tx)
    }
}
