// SPDX-License-Identifier: GPL-2.0

//! Per-vif state the frontend configures beyond the data rings: the control
//! ring (`feature-ctrl-ring`: Toeplitz hash key, hash types and the
//! hash-to-queue mapping, as the Windows PV drivers set them), the
//! multicast filter (`request-multicast-control`) and the XDP headroom
//! (`xdp-headroom`).
//!
//! The protocol logic (request validation, the hash, the filter) is the
//! protocol core's (`netif::ctrl`, `netif::mcast`); this file binds it to a
//! mapped ring page, a threaded event channel and grant copies.
//!
//! Locking: the control ring runs in its event channel's thread under a
//! mutex (its grant copies may sleep). The data path never takes that
//! mutex: after each request that changed the hash configuration the
//! thread publishes a fresh [`HashSnapshot`] (table-driven Toeplitz, the
//! mapping), and the data path takes a reference to the current one under
//! a short bottom-half lock and hashes outside it. Each data-path use is
//! guarded by an atomic flag, so a frontend that uses none of it costs
//! nothing per packet.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex, SpinLock};

use crate::netif::{
    self, CtrlBack, CtrlStatus, FlowHash, GrantOps, GrantRef, GrefStore, HashAlgorithm, HashSnapshot, McastFilter,
    PAGE_SIZE,
};
use crate::vif::{QueueCtx, VifShared};
use crate::xen_sys::reuse::StaticGrants;
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::{Channel, EventIrq};
use crate::xen_sys::grant::{self, BouncePage};
use crate::xen_sys::netdev::Skb;
use crate::xen_sys::sync::LockBh;
use crate::xen_sys::warn_ratelimited;
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xenbus::{Device, MappedRing};

/// Largest XDP headroom honoured: the rest of the first buffer must still
/// hold a full-size frame's headers. Larger requests are clamped (logged).
pub(crate) const XDP_HEADROOM_LIMIT: u32 = 2048;

/// Grant copies between the frontend's control pages and ours, and the
/// queues' static grants (grant reuse).
struct CtrlGrants<'a> {
    bounce: &'a BouncePage,
    domid: u16,
    queues: &'a [Arc<QueueCtx>],
    name: &'a str,
}

impl CtrlGrants<'_> {
    fn copy(&mut self, gref: GrantRef, offset: usize, len: usize, to_guest: bool) -> netif::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(netif::Error::GrantOutOfPage);
        }
        let guest = netif::Frame::Grant(gref);
        let local = self.bounce.frame();
        let (src, src_offset, dst, dst_offset) = if to_guest {
            (local, 0, guest, offset as u16)
        } else {
            (guest, offset as u16, local, 0)
        };
        let op = netif::CopyOp { src, src_offset, dst, dst_offset, len: len as u16, dst_seg: 0 };
        let mut ops = [grant::copy_op(&op, self.domid)];
        grant::batch_copy(&mut ops);
        if grant::copy_ok(&ops[0]) {
            Ok(())
        } else {
            Err(netif::Error::GrantBad)
        }
    }
}

impl GrantOps for CtrlGrants<'_> {
    fn copy_from_grant(&mut self, gref: GrantRef, offset: usize, buf: &mut [u8]) -> netif::Result<()> {
        self.copy(gref, offset, buf.len(), false)?;
        self.bounce.read(buf).map_err(|_| netif::Error::GrantOutOfPage)
    }

    fn copy_to_grant(&mut self, gref: GrantRef, offset: usize, buf: &[u8]) -> netif::Result<()> {
        self.bounce.write(buf).map_err(|_| netif::Error::GrantOutOfPage)?;
        self.copy(gref, offset, buf.len(), true)
    }
}

impl CtrlGrants<'_> {
    /// Runs `f` on queue `q`'s static grants under the queue lock; `None`
    /// if the queue is not connected or holds none yet.
    fn with_statics<R>(&self, q: u32, f: impl FnOnce(&mut StaticGrants) -> R) -> Option<R> {
        let queue = self.queues.get(q as usize)?;
        let mut s = queue.state.lock_bh();
        s.conn.as_mut()?.statics.as_deref_mut().map(f)
    }

    /// Allocates queue `q`'s static grants at its first `ADD` (pages and
    /// table: process context, outside the queue lock).
    fn ensure_statics(&self, q: u32) -> netif::Result<()> {
        let queue = self.queues.get(q as usize).ok_or(netif::Error::CtrlBadQueue)?;
        if self.with_statics(q, |_| ()).is_some() {
            return Ok(());
        }
        let new = StaticGrants::new(self.domid, crate::static_grants_per_queue()).map_err(|e| {
            pr_err!("{}: queue {}: no memory for static grants ({:?})\n", self.name, q, e);
            netif::Error::CtrlGrefListBadSize
        })?;
        let unused = {
            let mut s = queue.state.lock_bh();
            match s.conn.as_mut() {
                Some(c) if c.statics.is_none() => {
                    c.statics = Some(new);
                    None
                }
                _ => Some(new),
            }
        };
        // Freeing pages may sleep: outside the lock.
        drop(unused);
        Ok(())
    }

    fn connected(&self, q: u32) -> bool {
        self.queues.get(q as usize).is_some_and(|queue| queue.state.lock_bh().conn.is_some())
    }
}

impl GrefStore for CtrlGrants<'_> {
    fn mapping_size(&self, queue: u32) -> u32 {
        if crate::static_grants_per_queue() == 0 || !self.connected(queue) {
            return 0;
        }
        self.with_statics(queue, |s| s.mapping_size()).unwrap_or(crate::static_grants_per_queue() as u32)
    }

    fn room(&self, queue: u32) -> u32 {
        self.with_statics(queue, |s| s.room()).unwrap_or_else(|| self.mapping_size(queue))
    }

    fn stage(&mut self, queue: u32, gref: GrantRef, readonly: bool) -> netif::Result<()> {
        self.ensure_statics(queue)?;
        self.with_statics(queue, |s| s.stage(gref, readonly)).unwrap_or(Err(netif::Error::CtrlBadQueue))
    }

    fn commit(&mut self, queue: u32) -> netif::Result<()> {
        let r = self.with_statics(queue, |s| s.commit().map(|()| s.mapped())).unwrap_or(Err(netif::Error::CtrlBadQueue));
        match r {
            Ok(n) => {
                pr_info!("{}: queue {}: {} static grants mapped\n", self.name, queue, n);
                #[cfg(xennet_hostile)]
                self.with_statics(queue, |s| crate::hostile::scan_statics(s, queue, "when registered"));
                // The guest's buffers can now go to a NIC queue, if one is
                // steered by its MAC.
                if let Some(q) = self.queues.get(queue as usize) {
                    q.try_nic(self.name, None);
                }
                Ok(())
            }
            Err(e) => {
                warn_ratelimited!("{}: queue {}: mapping static grants failed: {}\n", self.name, queue, e.as_str());
                Err(e)
            }
        }
    }

    fn abort(&mut self, queue: u32) {
        self.with_statics(queue, |s| s.abort());
    }

    fn remove(&mut self, queue: u32, gref: GrantRef) -> CtrlStatus {
        self.with_statics(queue, |s| s.remove(gref)).unwrap_or(CtrlStatus::INVALID_PARAMETER)
    }
}

/// The control ring's event channel target (the vif's shared state).
pub(crate) type CtrlIrq = EventIrq<VifShared>;

/// A connected control ring. Field order is drop order: the event channel
/// goes first (its thread is done once it is unbound), then the ring (and
/// its mapping).
struct CtrlConn {
    _irq: CtrlIrq,
    back: OnRing<CtrlBack<XenBarriers>, MappedRing>,
    /// The vif's queues (their static grants). A reference cycle through
    /// the queues' shared state, broken by `disconnect`.
    queues: KVec<Arc<QueueCtx>>,
    bounce: BouncePage,
    domid: u16,
    /// The frontend broke the ring protocol: requests are no longer read.
    broken: bool,
}

/// One vif's frontend-configured state.
#[pin_data]
pub(crate) struct VifCtrl {
    /// The vif's name, for log lines from the control thread.
    name: CString,
    /// The control ring (process context only: its thread, connect and
    /// disconnect).
    #[pin]
    conn: Mutex<Option<KBox<CtrlConn>>>,
    /// The hash configuration the data path uses (see the module comment).
    #[pin]
    hash: SpinLock<Option<Arc<HashSnapshot>>>,
    /// Multicast groups the guest joined (updated from the guest's TX ring,
    /// read for each frame to the guest).
    #[pin]
    mcast: SpinLock<McastFilter>,
    /// The frontend selected the Toeplitz hash.
    hash_on: AtomicBool,
    /// The frontend asked for multicast filtering.
    mcast_on: AtomicBool,
    /// Headroom before the first guest-receive fragment (XDP).
    xdp_headroom: AtomicU32,
}

impl VifCtrl {
    pub(crate) fn new(name: &CStr) -> impl PinInit<Self, Error> + '_ {
        try_pin_init!(VifCtrl {
            name: CString::try_from_fmt(fmt!("{}", name.to_str().unwrap_or("vif")))?,
            conn <- kernel::new_mutex!(None, "netback_mq_ctrl"),
            hash <- kernel::new_spinlock!(None, "netback_mq_hash"),
            mcast <- kernel::new_spinlock!(McastFilter::new(), "netback_mq_mcast"),
            hash_on: AtomicBool::new(false),
            mcast_on: AtomicBool::new(false),
            xdp_headroom: AtomicU32::new(0),
        }? Error)
    }

    pub(crate) fn name(&self) -> &str {
        self.name.to_str().unwrap_or("?")
    }

    /// Connects the frontend's control ring (`ctrl-ring-ref`,
    /// `event-channel-ctrl`) for a vif of `nq` queues; `target` is the
    /// vif's shared state (holding this `VifCtrl`), the channel's target.
    pub(crate) fn connect_ring(
        &self,
        dev: &Device,
        gref: u32,
        port: u32,
        queues: KVec<Arc<QueueCtx>>,
        target: Arc<VifShared>,
    ) -> Result {
        let nq = queues.len() as u32;
        let map = dev.map_ring(gref).inspect_err(|e| {
            pr_err!("{}: mapping the control ring (grant {}) failed: {:?}\n", self.name(), gref, e)
        })?;
        let back = OnRing::new(map, nq).inspect_err(|e| pr_err!("{}: malformed control ring ({:?})\n", self.name(), e))?;
        let bounce = BouncePage::new()?;
        let irq = EventIrq::bind_interdomain_threaded(dev, port, c"netback_mq-ctrl", target)
            .inspect_err(|e| pr_err!("{}: binding control event channel {} failed: {:?}\n", self.name(), port, e))?;
        let conn = KBox::new(
            CtrlConn { _irq: irq, back, queues, bounce, domid: dev.otherend_id(), broken: false },
            GFP_KERNEL,
        )?;
        let old = self.conn.lock().replace(conn);
        drop(old);
        Ok(())
    }

    /// Sets what the frontend asked for at connect.
    pub(crate) fn set_features(&self, mcast_control: bool, xdp_headroom: u32) {
        self.mcast_on.store(mcast_control, Ordering::Release);
        self.set_xdp_headroom(xdp_headroom);
    }

    /// The frontend's `xdp-headroom` (at connect, and on Reconfiguring).
    pub(crate) fn set_xdp_headroom(&self, requested: u32) {
        let h = if requested > XDP_HEADROOM_LIMIT {
            pr_warn!(
                "{}: frontend asked for {} bytes of XDP headroom; {} granted\n",
                self.name(),
                requested,
                XDP_HEADROOM_LIMIT
            );
            XDP_HEADROOM_LIMIT
        } else {
            requested
        };
        self.xdp_headroom.store(h, Ordering::Release);
    }

    pub(crate) fn xdp_headroom(&self) -> u16 {
        self.xdp_headroom.load(Ordering::Acquire) as u16
    }

    /// Drops the control ring and everything the frontend configured.
    /// Process context (unbinding waits for the ring's thread).
    pub(crate) fn disconnect(&self) {
        self.hash_on.store(false, Ordering::Release);
        self.mcast_on.store(false, Ordering::Release);
        self.xdp_headroom.store(0, Ordering::Release);
        let conn = self.conn.lock().take();
        drop(conn);
        let snapshot = self.hash.lock_bh().take();
        drop(snapshot);
        self.mcast.lock_bh().clear();
    }

    /// The current hash configuration, if the frontend turned hashing on.
    fn snapshot(&self) -> Option<Arc<HashSnapshot>> {
        if !self.hash_on.load(Ordering::Acquire) {
            return None;
        }
        self.hash.lock_bh().clone()
    }

    /// The frontend's Toeplitz hash of a packet about to be copied to the
    /// guest, computed here from the packet itself (never taken from the
    /// skb: a hash there may be the stack's own).
    pub(crate) fn hash_for_guest(&self, skb: &Skb) -> Option<FlowHash> {
        let snap = self.snapshot()?;
        snap.flow_hash(&skb.flow_keys()?)
    }

    /// The queue the frontend's mapping picks for `skb`, or `None` to let
    /// the stack choose. A packet no enabled hash type covers (ARP, say)
    /// goes to the table's bucket 0, as with the C netback.
    pub(crate) fn select_queue(&self, skb: &Skb) -> Option<u16> {
        let snap = self.snapshot()?;
        let h = skb.flow_keys().and_then(|f| snap.flow_hash(&f));
        Some(snap.queue_for(h.map_or(0, |h| h.value)) as u16)
    }

    /// Whether a frame goes to the guest (multicast filter; the frame is
    /// only looked at when the guest asked for filtering).
    pub(crate) fn mcast_passes(&self, skb: &Skb) -> bool {
        if !self.mcast_on.load(Ordering::Acquire) {
            return true;
        }
        let Some(dest) = skb.dest_mac() else { return true };
        !netif::is_group_addr(&dest) || self.mcast.lock_bh().passes(&dest)
    }

    /// A filter update from the guest's TX ring; false if refused.
    pub(crate) fn mcast_update(&self, add: Option<[u8; 6]>, del: Option<[u8; 6]>) -> bool {
        let r = {
            let mut m = self.mcast.lock_bh();
            match (add, del) {
                (Some(a), _) => m.add(a),
                (None, Some(d)) => {
                    m.del(&d);
                    Ok(())
                }
                (None, None) => Ok(()),
            }
        };
        if let Err(e) = &r {
            warn_ratelimited!("{}: multicast add refused: {}\n", self.name(), e.as_str());
        }
        r.is_ok()
    }

    /// Publishes the backend's current hash configuration to the data path
    /// if it changed. Process context.
    fn publish_hash(&self, back: &CtrlBack<XenBarriers>) -> Result {
        let current = self.hash.lock_bh().clone();
        if current.as_ref().is_some_and(|s| s.is_current(&back.state)) {
            return Ok(());
        }
        let mut snap = crate::xen_sys::new_zeroed_arc::<HashSnapshot>()?;
        snap.refresh_from(&back.state);
        let old = self.hash.lock_bh().replace(snap.into());
        drop(old);
        self.hash_on.store(back.state.algorithm == HashAlgorithm::TOEPLITZ, Ordering::Release);
        Ok(())
    }

    /// Runs the frontend's control requests (the ring's thread). Returns
    /// true if there was any.
    pub(crate) fn process(&self, ch: &Channel<'_>) -> bool {
        let mut work = false;
        let mut conn = self.conn.lock();
        let Some(c) = Option::as_mut(&mut *conn) else {
            return false;
        };
        while !c.broken {
            let CtrlConn { back, bounce, domid, queues, .. } = &mut **c;
            let mut grants = CtrlGrants { bounce, domid: *domid, queues, name: self.name() };
            #[cfg(xennet_hostile)]
            let step = crate::hostile::ctrl_process_one(back, &mut grants);
            #[cfg(not(xennet_hostile))]
            let step = back.process_one(&mut grants);
            match step {
                Ok(Some(rejected)) => {
                    work = true;
                    if let Err(e) = self.publish_hash(back) {
                        pr_err!("{}: cannot apply the hash configuration: {:?}\n", self.name(), e);
                    }
                    if let Some(e) = rejected {
                        warn_ratelimited!("{}: control request refused: {}\n", self.name(), e.as_str());
                    }
                }
                Ok(None) => {
                    if back.push() {
                        ch.notify();
                    }
                    match back.ring.final_check_for_requests() {
                        Ok(true) => continue,
                        Ok(false) => break,
                        Err(e) => {
                            c.broken = true;
                            pr_err!("{}: control ring protocol error: {}; ring disabled\n", self.name(), e.as_str());
                        }
                    }
                }
                Err(e) => {
                    c.broken = true;
                    pr_err!("{}: control ring protocol error: {}; ring disabled\n", self.name(), e.as_str());
                }
            }
        }
        work
    }
}
