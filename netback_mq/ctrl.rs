// SPDX-License-Identifier: GPL-2.0

//! Per-vif state the frontend configures beyond the data rings: the control
//! ring (`feature-ctrl-ring`: Toeplitz hash key, hash types and the
//! hash-to-queue mapping, as the Windows PV drivers set them), the
//! multicast filter (`request-multicast-control`) and the XDP headroom
//! (`xdp-headroom`).
//!
//! The protocol logic (request validation, the hash, the filter) is the
//! protocol core's (`netif::ctrl`, `netif::mcast`); this file binds it to a
//! mapped ring page, a threaded event channel and grant copies. The data
//! path reads the configuration under one IRQ-safe lock, and only when the
//! frontend turned the feature on (atomic flags), so a frontend that uses
//! none of it costs nothing per packet.

use core::ffi::c_int;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::SpinLockIrq;

use crate::netif::{
    self, CtrlBack, CtrlRingKind, FlowHash, FlowKeys, GrantOps, GrantRef, HashAlgorithm, McastFilter,
    SharedRing, PAGE_SIZE,
};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::bindings as b;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::grant;
use crate::xen_sys::xenbus::{Device, MappedRing};

/// Static grant mappings (`ADD_GREF_MAPPING`) this backend keeps: none yet
/// (`GET_GREF_MAPPING_SIZE` answers 0, which tells the frontend to grant
/// per packet). Persistent mappings arrive with grant reuse.
const STATIC_GREFS: usize = 0;

/// Largest XDP headroom honoured: the rest of the first buffer must still
/// hold a full-size frame's headers. Larger requests are clamped (logged).
pub(crate) const XDP_HEADROOM_LIMIT: u32 = 2048;

/// A page of ours that grant copies to and from the frontend go through
/// (the control state lives on stacks and in the heap, whose frames are
/// not directly usable in a grant copy).
struct BouncePage(*mut b::page);

impl BouncePage {
    fn new() -> Result<Self> {
        // SAFETY: plain page allocation.
        let p = unsafe { b::xennet_shim_alloc_zeroed_page() };
        if p.is_null() {
            return Err(ENOMEM);
        }
        Ok(Self(p))
    }
    fn gfn(&self) -> u64 {
        // SAFETY: a valid page we own.
        unsafe { b::xennet_shim_page_to_gfn(self.0) as u64 }
    }
    fn addr(&self) -> *mut u8 {
        // SAFETY: a valid lowmem page we own.
        unsafe { b::xennet_shim_page_address(self.0).cast() }
    }
}

impl Drop for BouncePage {
    fn drop(&mut self) {
        // SAFETY: allocated in `new`, never granted or shared.
        unsafe { b::xennet_shim_free_page(self.0) };
    }
}

/// Grant copies between the frontend's control pages and ours.
struct CtrlGrants<'a> {
    bounce: &'a BouncePage,
    domid: u16,
}

impl CtrlGrants<'_> {
    fn copy(&mut self, gref: GrantRef, offset: usize, len: usize, to_guest: bool) -> netif::Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(netif::Error::GrantOutOfPage);
        }
        let guest = netif::Frame::Grant(gref);
        let local = netif::Frame::Local(self.bounce.gfn());
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
        // SAFETY: the bounce page is ours and at least `buf.len()` long
        // (checked in `copy`); nobody else writes it.
        unsafe { core::ptr::copy_nonoverlapping(self.bounce.addr(), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn copy_to_grant(&mut self, gref: GrantRef, offset: usize, buf: &[u8]) -> netif::Result<()> {
        if buf.len() > PAGE_SIZE {
            return Err(netif::Error::GrantOutOfPage);
        }
        // SAFETY: as above.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), self.bounce.addr(), buf.len()) };
        self.copy(gref, offset, buf.len(), true)
    }

    fn map_grant(&mut self, _gref: GrantRef, _readonly: bool) -> netif::Result<u32> {
        // Unreachable with STATIC_GREFS = 0: the core refuses the request
        // for lack of room before mapping anything.
        Err(netif::Error::GrantBad)
    }

    fn unmap_grant(&mut self, _handle: u32) -> netif::Result<()> {
        Err(netif::Error::GrantBad)
    }
}

/// A connected control ring. Field order is drop order: the event channel
/// goes first (its thread is done once it is unbound), the ring page last.
struct CtrlConn {
    /// Held for its binding (dropping it unbinds); the thread gets the IRQ
    /// number as its argument.
    _irq: EventIrq,
    back: CtrlBack<XenBarriers, STATIC_GREFS>,
    bounce: BouncePage,
    _map: MappedRing,
    domid: u16,
    /// The frontend broke the ring protocol: requests are no longer read.
    broken: bool,
}

/// Lock-protected part of [`VifCtrl`].
pub(crate) struct CtrlState {
    conn: Option<KBox<CtrlConn>>,
    mcast: McastFilter,
}

/// One vif's frontend-configured state. Pinned: the control event
/// channel's thread reaches it by address.
#[pin_data]
pub(crate) struct VifCtrl {
    netdev: *mut b::net_device,
    #[pin]
    state: SpinLockIrq<CtrlState>,
    /// The frontend selected the Toeplitz hash.
    hash_on: AtomicBool,
    /// The frontend asked for multicast filtering.
    mcast_on: AtomicBool,
    /// Headroom before the first guest-receive fragment (XDP).
    xdp_headroom: AtomicU32,
    /// Queues of the connection: with more than one, `ndo_select_queue`
    /// has already hashed each packet by the time it is transmitted.
    queues: AtomicU32,
}

// SAFETY: the net device outlives the vif; mutable state is behind the lock
// or atomic.
unsafe impl Send for VifCtrl {}
// SAFETY: as above.
unsafe impl Sync for VifCtrl {}

impl VifCtrl {
    pub(crate) fn new(netdev: *mut b::net_device) -> impl PinInit<Self, Error> {
        try_pin_init!(VifCtrl {
            netdev,
            state <- kernel::new_spinlock_irq!(
                CtrlState { conn: None, mcast: McastFilter::new() },
                "netback_mq_ctrl"
            ),
            hash_on: AtomicBool::new(false),
            mcast_on: AtomicBool::new(false),
            xdp_headroom: AtomicU32::new(0),
            queues: AtomicU32::new(0),
        })
    }

    fn name(&self) -> &str {
        // SAFETY: `netdev` is live; its name is NUL-terminated.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.netdev)) };
        name.to_str().unwrap_or("?")
    }

    /// Connects the frontend's control ring (`ctrl-ring-ref`,
    /// `event-channel-ctrl`) for a vif of `nq` queues.
    pub(crate) fn connect_ring(&self, xbdev: &Device, gref: u32, port: u32, nq: u32) -> Result {
        let map = xbdev.map_ring(gref).inspect_err(|e| {
            pr_err!("{}: mapping the control ring (grant {}) failed: {:?}\n", self.name(), gref, e)
        })?;
        // SAFETY: one page of the frontend's, mapped for as long as the
        // connection (which owns the mapping and drops it after the ring).
        let sring = unsafe { SharedRing::<CtrlRingKind>::from_raw(map.as_ptr(), PAGE_SIZE) }.map_err(|_| EINVAL)?;
        let back = CtrlBack::attach(sring, nq).map_err(|e| {
            pr_err!("{}: malformed control ring: {}\n", self.name(), e.as_str());
            EINVAL
        })?;
        let bounce = BouncePage::new()?;
        let dev_id = core::ptr::from_ref(self).cast_mut().cast();
        // SAFETY: the handler gets this `VifCtrl`, which outlives the
        // binding: the connection is dropped in `disconnect`, before the vif.
        let irq = unsafe { EventIrq::bind_interdomain_threaded(xbdev, port, ctrl_thread, c"netback_mq-ctrl", dev_id) }
            .inspect_err(|e| pr_err!("{}: binding control event channel {} failed: {:?}\n", self.name(), port, e))?;
        let conn = KBox::new(
            CtrlConn { _irq: irq, back, bounce, _map: map, domid: xbdev.otherend_id(), broken: false },
            GFP_KERNEL,
        )?;
        let old = self.state.lock().conn.replace(conn);
        drop(old);
        self.queues.store(nq, Ordering::Release);
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
        let conn = {
            let mut s = self.state.lock();
            s.mcast.clear();
            s.conn.take()
        };
        self.hash_on.store(false, Ordering::Release);
        self.mcast_on.store(false, Ordering::Release);
        self.xdp_headroom.store(0, Ordering::Release);
        self.queues.store(0, Ordering::Release);
        drop(conn);
    }

    /// The frontend's Toeplitz hash of a packet about to be copied to the
    /// guest: the one `select_queue` stamped on it when there are several
    /// queues (it stamps or clears every packet), else computed now.
    pub(crate) fn hash_for_guest(&self, skb: *mut b::sk_buff) -> Option<FlowHash> {
        if !self.hash_on.load(Ordering::Acquire) {
            return None;
        }
        if self.queues.load(Ordering::Acquire) <= 1 {
            return self.hash(skb);
        }
        let (mut value, mut l4) = (0, false);
        // SAFETY: `skb` is live; valid out-pointers.
        let (stamped, v6) = unsafe { (b::xennet_shim_skb_sw_hash(skb, &mut value, &mut l4), b::xennet_shim_skb_is_ipv6(skb)) };
        stamped.then(|| FlowHash { value, ty: 2 * u8::from(v6) + u8::from(l4) })
    }

    /// The frontend's Toeplitz hash of `skb`, if it configured one that
    /// covers the packet.
    fn hash(&self, skb: *mut b::sk_buff) -> Option<FlowHash> {
        let f = flow_keys(skb)?;
        let s = self.state.lock();
        s.conn.as_ref()?.back.state.flow_hash(&f)
    }

    /// The hash and the queue the frontend's table names for it, under one
    /// lock; a packet no enabled hash type covers (ARP, say) gets no hash
    /// and the table's bucket 0, as with the C netback. `None` while no
    /// control ring is connected.
    fn hash_and_queue(&self, skb: *mut b::sk_buff) -> Option<(Option<FlowHash>, u32)> {
        let f = flow_keys(skb);
        let s = self.state.lock();
        let cfg = &s.conn.as_ref()?.back.state;
        let h = f.and_then(|f| cfg.flow_hash(&f));
        Some((h, cfg.queue_for(h.map_or(0, |h| h.value))))
    }

    /// The queue the frontend's mapping picks for `skb` (stamping the
    /// frontend's hash on it, or clearing any other: the guest-receive path
    /// sends what is stamped), or `None` to let the stack choose.
    pub(crate) fn select_queue(&self, skb: *mut b::sk_buff) -> Option<u32> {
        if !self.hash_on.load(Ordering::Acquire) {
            return None;
        }
        let (h, q) = self.hash_and_queue(skb)?;
        // SAFETY: `skb` is live and ours to annotate.
        unsafe {
            match h {
                Some(h) => b::xennet_shim_skb_set_sw_hash(skb, h.value, h.is_l4()),
                None => b::xennet_shim_skb_clear_hash(skb),
            }
        }
        Some(q)
    }

    /// Whether a frame goes to the guest (multicast filter; the frame is
    /// only looked at when the guest asked for filtering).
    pub(crate) fn mcast_passes(&self, skb: *mut b::sk_buff) -> bool {
        if !self.mcast_on.load(Ordering::Acquire) {
            return true;
        }
        let dest = dest_mac(skb);
        !netif::is_group_addr(&dest) || self.state.lock().mcast.passes(&dest)
    }

    /// A filter update from the guest's TX ring; false if refused.
    pub(crate) fn mcast_update(&self, add: Option<[u8; 6]>, del: Option<[u8; 6]>) -> bool {
        let mut s = self.state.lock();
        match (add, del) {
            (Some(a), _) => match s.mcast.add(a) {
                Ok(()) => true,
                Err(e) => {
                    drop(s);
                    warn_ratelimited!("{}: multicast add refused: {}\n", self.name(), e.as_str());
                    false
                }
            },
            (None, Some(d)) => {
                s.mcast.del(&d);
                true
            }
            (None, None) => true,
        }
    }

    /// Runs the frontend's control requests (the ring's thread). Returns
    /// true if there was any.
    fn process(&self, irq: c_int) -> bool {
        let mut work = false;
        loop {
            let mut s = self.state.lock();
            let Some(c) = s.conn.as_mut().filter(|c| !c.broken) else {
                return work;
            };
            let CtrlConn { back, bounce, domid, .. } = &mut **c;
            let mut grants = CtrlGrants { bounce, domid: *domid };
            match back.process_one(&mut grants) {
                Ok(Some(rejected)) => {
                    work = true;
                    let hash_on = back.state.algorithm == HashAlgorithm::TOEPLITZ;
                    self.hash_on.store(hash_on, Ordering::Release);
                    drop(s);
                    if let Some(e) = rejected {
                        warn_ratelimited!("{}: control request refused: {}\n", self.name(), e.as_str());
                    }
                }
                Ok(None) => {
                    if back.push() {
                        // SAFETY: `irq` is the bound control channel.
                        unsafe { b::notify_remote_via_irq(irq) };
                    }
                    match back.ring.final_check_for_requests() {
                        Ok(true) => continue,
                        Ok(false) => return work,
                        Err(e) => {
                            c.broken = true;
                            drop(s);
                            pr_err!("{}: control ring protocol error: {}; ring disabled\n", self.name(), e.as_str());
                            return work;
                        }
                    }
                }
                Err(e) => {
                    c.broken = true;
                    drop(s);
                    pr_err!("{}: control ring protocol error: {}; ring disabled\n", self.name(), e.as_str());
                    return work;
                }
            }
        }
    }
}

/// The destination MAC of a frame the stack hands us (its data starts at
/// the Ethernet header); all-zero if the linear area is shorter.
fn dest_mac(skb: *mut b::sk_buff) -> [u8; 6] {
    let mut mac = [0u8; 6];
    // SAFETY: `skb` is live; at least `headlen` bytes at `data` are readable.
    unsafe {
        if b::xennet_shim_skb_headlen(skb) >= 6 {
            core::ptr::copy_nonoverlapping(b::xennet_shim_skb_data(skb).cast::<u8>(), mac.as_mut_ptr(), 6);
        }
    }
    mac
}

/// The addresses and ports of `skb` (flow dissector), if IPv4 or IPv6.
fn flow_keys(skb: *mut b::sk_buff) -> Option<FlowKeys> {
    let mut f = FlowKeys::default();
    let mut ports = [0u8; 4];
    let mut tcp = false;
    // SAFETY: `skb` is live; the out-pointers are valid and sized as the
    // shim writes them (16, 16 and 4 bytes).
    let ok = unsafe {
        b::xennet_shim_skb_flow(skb, &mut f.v6, f.src.as_mut_ptr(), f.dst.as_mut_ptr(), ports.as_mut_ptr(), &mut tcp)
    };
    if !ok {
        return None;
    }
    if tcp {
        f.tcp_ports = Some(([ports[0], ports[1]], [ports[2], ports[3]]));
    }
    Some(f)
}

/// The control ring's threaded event handler.
///
/// # Safety
///
/// `dev_id` must be the `VifCtrl` given to the binding, still bound.
unsafe extern "C" fn ctrl_thread(irq: c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the `VifCtrl` passed at binding, live while bound.
    let ctrl = unsafe { &*dev_id.cast::<VifCtrl>() };
    let work = ctrl.process(irq);
    let flags = if work { 0 } else { b::XEN_EOI_FLAG_SPURIOUS };
    // SAFETY: `irq` was bound in late-EOI mode.
    unsafe { b::xen_irq_lateeoi(irq as u32, flags) };
    b::irqreturn::IRQ_HANDLED
}
