// SPDX-License-Identifier: GPL-2.0

//! The `vifD.N` net device in dom0 and its queues: net device callbacks,
//! per-queue NAPI (guest transmit) and the event channel handlers.

use core::ffi::c_int;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::SpinLock;
use kernel::types::Opaque;

use crate::ctrl::VifCtrl;
use crate::queue::{Connection, FrontCaps, RxCfg, RxOutcome, SkbBatch, Stats};
use crate::xen_sys::bindings as b;
use crate::xen_sys::sync::LockBh;
use crate::xen_sys::xenbus::Device;

/// Most queues a vif has (the `max_queues` parameter is capped to this).
pub(crate) const MAX_QUEUES: usize = 8;

/// Lock-protected state of one queue.
pub(crate) struct Queue {
    pub(crate) conn: Option<KBox<Connection>>,
    pub(crate) caps: FrontCaps,
    pub(crate) stats: Stats,
}

/// Event-channel bits awaiting their late EOI.
const EOI_TX: u32 = 1;
const EOI_RX: u32 = 2;

/// One queue: a NAPI context for guest transmit and its lock-protected
/// connection. Pinned: the event channel handlers and NAPI reach it by
/// address.
#[pin_data]
pub(crate) struct QueueCtx {
    pub(crate) index: usize,
    netdev: *mut b::net_device,
    #[pin]
    napi: Opaque<b::napi_struct>,
    #[pin]
    pub(crate) state: SpinLock<Queue>,
    /// Channels that fired since the last EOI (`EOI_TX` | `EOI_RX`).
    eoi_pending: AtomicU32,
    /// Wakes NAPI when rate-limit credit is due or a guest-receive stall
    /// is to be declared.
    #[pin]
    timer: Opaque<b::timer_list>,
}

// SAFETY: the net device outlives the queue; mutable state is behind the
// lock or atomic.
unsafe impl Send for QueueCtx {}
// SAFETY: as above.
unsafe impl Sync for QueueCtx {}

/// A vif: the net device and its queues. Lives in a pinned box from probe
/// to remove; the net device's private area points to it.
pub(crate) struct Vif {
    pub(crate) netdev: *mut b::net_device,
    pub(crate) queues: KVec<Pin<KBox<QueueCtx>>>,
    /// Control ring, multicast filter and XDP headroom.
    pub(crate) ctrl: Pin<KBox<VifCtrl>>,
    /// Queues whose guest stopped posting receive buffers: while any is,
    /// the carrier is off (the stack then drops what it queued for us).
    stalled_queues: AtomicU32,
}

// SAFETY: the net device outlives the vif; mutable state is behind locks.
unsafe impl Send for Vif {}
// SAFETY: as above.
unsafe impl Sync for Vif {}

static NETDEV_OPS: b::net_device_ops = {
    // SAFETY: all-zero is a valid `net_device_ops` (every callback `None`).
    let mut ops: b::net_device_ops = unsafe { core::mem::zeroed() };
    ops.ndo_open = Some(ndo_open);
    ops.ndo_stop = Some(ndo_stop);
    ops.ndo_start_xmit = Some(ndo_start_xmit);
    ops.ndo_get_stats64 = Some(ndo_get_stats64);
    ops.ndo_fix_features = Some(ndo_fix_features);
    ops.ndo_select_queue = Some(ndo_select_queue);
    ops
};

impl Vif {
    /// Creates and registers `vif<domid>.<handle>` with `nq` queues.
    pub(crate) fn create(xbdev: Device, domid: u16, handle: u32, nq: usize) -> Result<*const Vif> {
        let name = CString::try_from_fmt(fmt!("vif{}.{}", domid, handle))?;
        // SAFETY: plain allocation; the private area holds one pointer and
        // the name is copied.
        let netdev = unsafe {
            b::xennet_shim_alloc_vif_netdev(size_of::<*const Vif>() as c_int, name.as_char_ptr(), nq as u32)
        };
        if netdev.is_null() {
            return Err(ENOMEM);
        }
        let vif = (|| -> Result<KBox<Vif>> {
            let mut queues = KVec::with_capacity(nq, GFP_KERNEL)?;
            for index in 0..nq {
                queues.push(
                    KBox::pin_init(
                        try_pin_init!(QueueCtx {
                            index,
                            netdev,
                            napi: Opaque::zeroed(),
                            state <- kernel::new_spinlock!(
                                Queue { conn: None, caps: FrontCaps::default(), stats: Stats::default() },
                                "netback_mq_queue"
                            ),
                            eoi_pending: AtomicU32::new(0),
                            timer: Opaque::zeroed(),
                        }),
                        GFP_KERNEL,
                    )?,
                    GFP_KERNEL,
                )?;
            }
            for q in queues.iter() {
                // SAFETY: the timer is pinned inside the queue, which lives
                // until `destroy` shuts the timer down first.
                unsafe { b::xennet_shim_timer_setup(q.timer.get(), Some(timer_fired)) };
            }
            let ctrl = KBox::pin_init(VifCtrl::new(netdev), GFP_KERNEL)?;
            Ok(KBox::new(Vif { netdev, queues, ctrl, stalled_queues: AtomicU32::new(0) }, GFP_KERNEL)?)
        })();
        let vif = match vif {
            Ok(v) => KBox::into_raw(v).cast_const(),
            Err(e) => {
                // SAFETY: allocated above, never registered.
                unsafe { b::free_netdev(netdev) };
                return Err(e);
            }
        };
        // SAFETY: `netdev` is ours and not registered; its private area holds
        // one pointer; `vif` stays valid until `destroy` frees the net device
        // first; the ops tables are static; `xbdev` is live.
        let rc = unsafe {
            b::xennet_shim_netdev_priv(netdev).cast::<*const Vif>().write(vif);
            b::xennet_shim_vif_netdev_init(netdev, &NETDEV_OPS, &crate::ethtool::ETHTOOL_OPS, xbdev.as_raw());
            for q in (*vif).queues.iter() {
                b::xennet_shim_napi_add(netdev, q.napi.get(), Some(napi_poll));
            }
            b::netif_carrier_off(netdev);
            b::register_netdev(netdev)
        };
        if rc < 0 {
            // SAFETY: not registered: free the net device (and its NAPI), then
            // the vif, which nothing else references.
            unsafe {
                b::free_netdev(netdev);
                drop(KBox::from_raw(vif.cast_mut()));
            }
            return Err(Error::from_errno(rc));
        }
        Ok(vif)
    }

    /// Unregisters and frees the net device, then the vif.
    ///
    /// # Safety
    ///
    /// `vif` must come from [`Vif::create`], disconnected, and not be used
    /// again.
    pub(crate) unsafe fn destroy(vif: *const Vif) {
        // SAFETY: live until the box is dropped below (caller's contract).
        let netdev = unsafe { (*vif).netdev };
        // SAFETY: as above.
        for q in unsafe { (*vif).queues.iter() } {
            // SAFETY: set up in `create`; after this it never fires again.
            unsafe { b::xennet_shim_timer_shutdown(q.timer.get()) };
        }
        // SAFETY: registered in `create`; unregistering stops the device and
        // NAPI; freeing deletes the NAPI contexts before the vif goes.
        unsafe {
            b::unregister_netdev(netdev);
            b::free_netdev(netdev);
            drop(KBox::from_raw(vif.cast_mut()));
        }
    }

    /// # Safety
    ///
    /// `netdev` must be a net device created by [`Vif::create`], not freed.
    pub(crate) unsafe fn from_netdev<'a>(netdev: *mut b::net_device) -> &'a Vif {
        // SAFETY: `create` stored the vif pointer in the private area.
        unsafe { &**b::xennet_shim_netdev_priv(netdev).cast::<*const Vif>() }
    }

    pub(crate) fn name(&self) -> &str {
        // SAFETY: `netdev` is live; its name is NUL-terminated.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.netdev)) };
        name.to_str().unwrap_or("?")
    }

    /// Installs the queues' connections and starts traffic.
    pub(crate) fn attach(&self, conns: KVec<KBox<Connection>>, caps: FrontCaps) -> Result {
        let n = conns.len();
        // SAFETY: `netdev` is registered; takes the RTNL lock (process context).
        let rc = unsafe { b::xennet_shim_set_real_num_queues(self.netdev, n as u32) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        for (q, conn) in self.queues.iter().zip(conns) {
            let mut s = q.state.lock_bh();
            s.conn = Some(conn);
            s.caps = caps;
        }
        // SAFETY: `netdev` is registered; process context (RTNL taken inside).
        unsafe {
            b::xennet_shim_netdev_update_features(self.netdev);
            b::netif_carrier_on(self.netdev);
            b::xennet_shim_netif_tx_start_all_queues(self.netdev);
        }
        for q in self.queues[..n].iter() {
            q.schedule();
        }
        Ok(())
    }

    /// Drops every queue's connection: carrier off, event channels unbound,
    /// rings unmapped. Process context (unbinding sleeps).
    pub(crate) fn detach(&self) {
        // SAFETY: `netdev` is live.
        unsafe { b::netif_carrier_off(self.netdev) };
        for q in self.queues.iter() {
            let conn = {
                let mut s = q.state.lock_bh();
                if let Some(c) = s.conn.as_mut() {
                    c.drain_tx();
                    if c.rx_stalled {
                        self.stalled_queues.fetch_sub(1, Ordering::AcqRel);
                    }
                }
                s.conn.take()
            };
            drop(conn);
        }
        self.ctrl.disconnect();
    }

    /// The receive capabilities of the connected frontend (queue 0's copy).
    fn caps(&self) -> FrontCaps {
        self.queues[0].state.lock_bh().caps
    }
}

impl QueueCtx {
    fn napi(&self) -> *mut b::napi_struct {
        self.napi.get()
    }

    fn schedule(&self) {
        // SAFETY: the NAPI context was added in `create` and lives as long
        // as the queue (no-op while disabled).
        unsafe { b::xennet_shim_napi_schedule(self.napi()) };
    }

    fn name(&self) -> &str {
        // SAFETY: `netdev` is live; its name is NUL-terminated.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.netdev)) };
        name.to_str().unwrap_or("?")
    }

    /// A fatal protocol error on this queue: log it, carrier off. The vif
    /// stays down until the frontend reconnects.
    fn disable(&self, e: crate::netif::Error) {
        pr_err!(
            "{}: queue {}: frontend protocol error: {}; disabling the vif\n",
            self.name(),
            self.index,
            e.as_str()
        );
        // SAFETY: `netdev` is live.
        unsafe { b::netif_carrier_off(self.netdev) };
    }

    fn arm_timer(&self, delay_us: u64) {
        // SAFETY: set up in `Vif::create`, shut down only in `destroy`.
        unsafe { b::xennet_shim_timer_arm_us(self.timer.get(), delay_us) };
    }

    /// Carrier off while any queue's guest is stalled, on once none is.
    fn stall_changed(&self, change: Option<bool>) {
        // SAFETY: `netdev` is a live device made by `Vif::create`.
        let vif = unsafe { Vif::from_netdev(self.netdev) };
        match change {
            Some(true) => {
                pr_warn!("{}: queue {}: guest receive stalled (no buffers posted)\n", self.name(), self.index);
                if vif.stalled_queues.fetch_add(1, Ordering::AcqRel) == 0 {
                    // SAFETY: `netdev` is live.
                    unsafe { b::netif_carrier_off(self.netdev) };
                }
            }
            Some(false) => {
                pr_info!("{}: queue {}: guest receive ready again\n", self.name(), self.index);
                if vif.stalled_queues.fetch_sub(1, Ordering::AcqRel) == 1 {
                    // SAFETY: `netdev` is live.
                    unsafe { b::netif_carrier_on(self.netdev) };
                }
            }
            None => {}
        }
    }

    fn vif(&self) -> &Vif {
        // SAFETY: `netdev` is a live device made by `Vif::create`.
        unsafe { Vif::from_netdev(self.netdev) }
    }

    fn subqueue_stopped(&self) -> bool {
        // SAFETY: `netdev` is live; `index` is below its queue count.
        unsafe { b::xennet_shim_netif_subqueue_stopped(self.netdev, self.index as u16) }
    }

    /// NAPI poll: guest transmit, and waking guest receive when the guest
    /// posted buffers.
    fn poll(&self, budget: usize) -> usize {
        let mut done = 0;
        let mut work = false;
        let mut failed = None;
        loop {
            let mut batch = SkbBatch::new();
            let rx_room = {
                let mut q = self.state.lock_bh();
                let Queue { conn, stats, .. } = &mut *q;
                let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
                    break;
                };
                match c.guest_tx(self.napi(), self.netdev, budget - done, &mut batch, stats, &self.vif().ctrl) {
                    Ok(w) => work |= w,
                    Err(e) => c.broken = Some(e),
                }
                failed = c.take_new_error();
                let ready = c.rx_ready();
                if self.subqueue_stopped() {
                    let stall = c.rx_stall_check(!ready, crate::rx_stall_timeout_us());
                    self.stall_changed(stall);
                    if !ready {
                        // Look again when the stall timeout is due.
                        self.arm_timer(crate::rx_stall_timeout_us());
                    }
                }
                ready
            };
            for &skb in batch.skbs() {
                // SAFETY: each skb was built for this device in this poll.
                unsafe { b::xennet_shim_napi_gro_receive(self.napi(), skb) };
            }
            done += batch.len();
            if rx_room && self.subqueue_stopped() {
                // SAFETY: `netdev` is live; `index` is below its queue count.
                unsafe { b::xennet_shim_netif_wake_subqueue(self.netdev, self.index as u16) };
            }
            if failed.is_some() || done >= budget || batch.len() < SkbBatch::MAX {
                break;
            }
        }
        if let Some(e) = failed {
            self.disable(e);
        }
        if done >= budget {
            return budget;
        }
        // SAFETY: we are this NAPI context's poll function.
        if unsafe { b::napi_complete_done(self.napi(), done as c_int) } {
            let mut q = self.state.lock_bh();
            if let Some(c) = q.conn.as_mut() {
                if let Some(wait) = c.rate_wait_us() {
                    // Over the rate limit: the timer polls again when credit
                    // is due (new requests would not help).
                    self.arm_timer(wait);
                } else if c.broken.is_none() {
                    match c.final_check() {
                        Ok(true) => self.schedule(),
                        Ok(false) => {}
                        Err(e) => c.broken = Some(e),
                    }
                }
                // A broken queue still acknowledges events, as spurious:
                // Xen then rate-limits a frontend that keeps signalling.
                let pending = self.eoi_pending.swap(0, Ordering::AcqRel);
                c.lateeoi(pending, !work || c.broken.is_some());
                failed = c.take_new_error();
            }
            drop(q);
            if let Some(e) = failed {
                self.disable(e);
            }
        }
        done
    }

    /// Guest receive: copy `skb` into the guest's buffers.
    fn xmit(&self, skb: *mut b::sk_buff) -> b::netdev_tx_t {
        let ctrl = &self.vif().ctrl;
        if !ctrl.mcast_passes(skb) {
            // A group the guest did not join (multicast control).
            self.state.lock_bh().stats.mcast_filtered += 1;
            // SAFETY: the skb is ours to free.
            unsafe { b::xennet_shim_kfree_skb_any(skb) };
            return b::netdev_tx_NETDEV_TX_OK;
        }
        let cfg = RxCfg { xdp_headroom: ctrl.xdp_headroom(), hash: ctrl.hash_for_guest(skb) };
        let mut q = self.state.lock_bh();
        let Queue { conn, caps, stats } = &mut *q;
        let outcome = match conn.as_mut().filter(|c| c.broken.is_none()) {
            None => {
                stats.tx_dropped += 1;
                RxOutcome::Dropped
            }
            Some(c) => {
                let mut outcome = c.guest_rx(skb, *caps, &cfg, stats);
                if matches!(outcome, RxOutcome::NoRoom) {
                    // SAFETY: `netdev` is live; `index` is below its queue count.
                    unsafe { b::xennet_shim_netif_stop_subqueue(self.netdev, self.index as u16) };
                    // The guest signals when it posts more; if it already
                    // did, go on now.
                    if c.rx_wait_for_buffers() {
                        // SAFETY: as above.
                        unsafe { b::xennet_shim_netif_wake_subqueue(self.netdev, self.index as u16) };
                        outcome = c.guest_rx(skb, *caps, &cfg, stats);
                    } else {
                        // Starts the stall clock; the timer declares a stall
                        // if the guest posts nothing until it fires.
                        let _ = c.rx_stall_check(true, crate::rx_stall_timeout_us());
                        self.arm_timer(crate::rx_stall_timeout_us());
                    }
                }
                outcome
            }
        };
        let failed = conn.as_mut().and_then(|c| c.take_new_error());
        drop(q);
        if let Some(e) = failed {
            self.disable(e);
        }
        match outcome {
            RxOutcome::NoRoom => b::netdev_tx_NETDEV_TX_BUSY,
            RxOutcome::Delivered | RxOutcome::Dropped => {
                // SAFETY: copied or dropped: the skb is ours to free.
                unsafe { b::xennet_shim_kfree_skb_any(skb) };
                b::netdev_tx_NETDEV_TX_OK
            }
        }
    }
}

/// `ndo_select_queue`: the frontend's hash mapping when it configured one
/// over the control ring, else the stack's choice.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`; `skb` live.
unsafe extern "C" fn ndo_select_queue(
    netdev: *mut b::net_device,
    skb: *mut b::sk_buff,
    _sb_dev: *mut b::net_device,
) -> u16 {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    // SAFETY: `netdev` and `skb` are live.
    let stack = || unsafe { b::xennet_shim_netdev_pick_tx(netdev, skb) };
    match vif.ctrl.select_queue(skb) {
        // The mapping only names queues below the connected count.
        Some(q) if (q as usize) < vif.queues.len() => q as u16,
        _ => stack(),
    }
}

/// Event channel handler for guest-TX (or shared) events.
///
/// # Safety
///
/// `dev_id` must be the queue given to the binding, still bound.
pub(crate) unsafe extern "C" fn interrupt_tx(_irq: c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the queue passed at binding, live while bound.
    let q = unsafe { &*dev_id.cast::<QueueCtx>() };
    q.eoi_pending.fetch_or(EOI_TX, Ordering::AcqRel);
    q.schedule();
    b::irqreturn::IRQ_HANDLED
}

/// Event channel handler for guest-RX events (split channels): the guest
/// posted buffers.
///
/// # Safety
///
/// `dev_id` must be the queue given to the binding, still bound.
pub(crate) unsafe extern "C" fn interrupt_rx(_irq: c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the queue passed at binding, live while bound.
    let q = unsafe { &*dev_id.cast::<QueueCtx>() };
    q.eoi_pending.fetch_or(EOI_RX, Ordering::AcqRel);
    q.schedule();
    b::irqreturn::IRQ_HANDLED
}

/// Timer callback: poll again (credit due, or time to check for a stall).
///
/// # Safety
///
/// `t` must be the timer inside a `QueueCtx` made by `Vif::create`.
unsafe extern "C" fn timer_fired(t: *mut b::timer_list) {
    // SAFETY: our timers are the `timer` field of a live `QueueCtx`.
    let q = unsafe {
        &*t.cast::<u8>()
            .sub(core::mem::offset_of!(QueueCtx, timer))
            .cast::<QueueCtx>()
    };
    q.schedule();
}

/// NAPI poll callback.
///
/// # Safety
///
/// `napi` must be the NAPI context inside a `QueueCtx` made by `Vif::create`.
unsafe extern "C" fn napi_poll(napi: *mut b::napi_struct, budget: c_int) -> c_int {
    // SAFETY: our NAPI contexts are the `napi` field of a live `QueueCtx`
    // (`Opaque` holds its value at the field's address).
    let q = unsafe {
        &*napi
            .cast::<u8>()
            .sub(core::mem::offset_of!(QueueCtx, napi))
            .cast::<QueueCtx>()
    };
    q.poll(budget.max(0) as usize) as c_int
}

/// `ndo_open`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`.
unsafe extern "C" fn ndo_open(netdev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    for q in vif.queues.iter() {
        // SAFETY: the NAPI context was added in `create`; disabled while down.
        unsafe { b::napi_enable(q.napi()) };
    }
    // SAFETY: `netdev` is live.
    unsafe { b::xennet_shim_netif_tx_start_all_queues(netdev) };
    for q in vif.queues.iter() {
        q.schedule();
    }
    0
}

/// `ndo_stop`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`.
unsafe extern "C" fn ndo_stop(netdev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    // SAFETY: `netdev` is live.
    unsafe { b::xennet_shim_netif_tx_stop_all_queues(netdev) };
    for q in vif.queues.iter() {
        // SAFETY: enabled in `ndo_open`.
        unsafe { b::napi_disable(q.napi()) };
    }
    0
}

/// `ndo_start_xmit`: traffic for the guest.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`; `skb` live.
unsafe extern "C" fn ndo_start_xmit(skb: *mut b::sk_buff, netdev: *mut b::net_device) -> b::netdev_tx_t {
    // SAFETY: the stack calls us with our live net device and a live skb.
    let (vif, index) = unsafe { (Vif::from_netdev(netdev), b::xennet_shim_skb_get_queue_mapping(skb) as usize) };
    // The stack never picks a queue beyond `real_num_tx_queues`.
    vif.queues[index.min(vif.queues.len() - 1)].xmit(skb)
}

/// `ndo_get_stats64`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`; `out` writable.
unsafe extern "C" fn ndo_get_stats64(netdev: *mut b::net_device, out: *mut b::rtnl_link_stats64) {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    // SAFETY: `out` is a valid stats structure to fill.
    let out = unsafe { &mut *out };
    Stats::fill_link_stats(vif.queues.iter().map(|q| q.state.lock_bh().stats), out);
}

/// `ndo_fix_features`: offloads towards the guest only as far as its
/// receive path accepts them.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`.
unsafe extern "C" fn ndo_fix_features(
    netdev: *mut b::net_device,
    features: b::netdev_features_t,
) -> b::netdev_features_t {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    let c = vif.caps();
    // SAFETY: pure functions returning feature masks.
    let (offered, allowed) = unsafe {
        (
            b::xennet_shim_offload_mask(true, true, true, true, true),
            b::xennet_shim_offload_mask(c.sg, c.gso4, c.gso6, c.csum4, c.csum6),
        )
    };
    (features & !offered) | (features & allowed)
}
