// SPDX-License-Identifier: GPL-2.0

//! One `vif` device: the net device, the xenbus state machine towards the
//! backend, and the net device and NAPI callbacks.

use core::ffi::c_int;
use kernel::prelude::*;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::sync::{Mutex, SpinLock};
use kernel::str::CString;
use kernel::types::Opaque;

use crate::netif::{Gso, GsoType, McastFilter, TxFlags, MAX_TX_SIZE, MCAST_MAX};
use crate::rss::{CtrlRing, RssLayout};
use crate::queue::{Connection, SkbBatch, Stats, CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY};
use crate::xen_sys::bindings as b;
use crate::xen_sys::evtchn::EventIrq;
use crate::xen_sys::sync::LockBh;
use crate::xen_sys::xenbus::{state, Device, RingPage, Transaction};

/// What the backend offers: transmit offloads (its `feature-*` keys) and
/// the number of queues in use.
#[derive(Clone, Copy, Default)]
struct BackendCaps {
    sg: bool,
    tso4: bool,
    tso6: bool,
    queues: usize,
}

/// Lock-protected state of one queue.
pub(crate) struct Queue {
    conn: Option<KBox<Connection>>,
    stats: Stats,
}

/// One queue's xenstore keys.
#[derive(Clone, Copy, Default)]
struct QueueKeys {
    tx_ref: u32,
    rx_ref: u32,
    /// `event-channel`, or `event-channel-tx` when split.
    port: u32,
    /// `event-channel-rx` when split.
    rx_port: Option<u32>,
}

impl QueueKeys {
    /// Writes the keys, removing those of the other event-channel layout a
    /// previous connection may have left.
    fn write(&self, t: &Transaction, dir: &CStr) -> Result {
        t.write_u32(dir, c"tx-ring-ref", self.tx_ref)?;
        t.write_u32(dir, c"rx-ring-ref", self.rx_ref)?;
        match self.rx_port {
            Some(rx) => {
                t.remove(dir, c"event-channel")?;
                t.write_u32(dir, c"event-channel-tx", self.port)?;
                t.write_u32(dir, c"event-channel-rx", rx)
            }
            None => {
                t.remove(dir, c"event-channel-tx")?;
                t.remove(dir, c"event-channel-rx")?;
                t.write_u32(dir, c"event-channel", self.port)
            }
        }
    }
}

/// Most queues a device uses (more are never requested from the backend).
const MAX_QUEUES: usize = 8;

/// Event channel names per queue (they show in /proc/interrupts): shared,
/// then the TX and RX ones of split channels.
static IRQ_NAMES: [[&CStr; 3]; MAX_QUEUES] = [
    [c"netfront_opt-q0", c"netfront_opt-q0-tx", c"netfront_opt-q0-rx"],
    [c"netfront_opt-q1", c"netfront_opt-q1-tx", c"netfront_opt-q1-rx"],
    [c"netfront_opt-q2", c"netfront_opt-q2-tx", c"netfront_opt-q2-rx"],
    [c"netfront_opt-q3", c"netfront_opt-q3-tx", c"netfront_opt-q3-rx"],
    [c"netfront_opt-q4", c"netfront_opt-q4-tx", c"netfront_opt-q4-rx"],
    [c"netfront_opt-q5", c"netfront_opt-q5-tx", c"netfront_opt-q5-rx"],
    [c"netfront_opt-q6", c"netfront_opt-q6-tx", c"netfront_opt-q6-rx"],
    [c"netfront_opt-q7", c"netfront_opt-q7-tx", c"netfront_opt-q7-rx"],
];

/// One queue: a NAPI context and its lock-protected rings. Pinned: the
/// event channel handler and the NAPI poll reach it by address.
#[pin_data]
pub(crate) struct QueueCtx {
    index: usize,
    netdev: *mut b::net_device,
    #[pin]
    napi: Opaque<b::napi_struct>,
    #[pin]
    state: SpinLock<Queue>,
}

// SAFETY: the net device outlives the queue; mutable state is behind the lock.
unsafe impl Send for QueueCtx {}
// SAFETY: as above.
unsafe impl Sync for QueueCtx {}

/// A netfront device. Lives in a pinned box from probe to remove; the net
/// device's private area holds a pointer to it.
#[pin_data]
pub(crate) struct Frontend {
    xbdev: Device,
    netdev: *mut b::net_device,
    /// Allocated at probe (up to the vCPU count and `max_queues`); the first
    /// `nr_active` of them are connected.
    queues: KVec<Pin<KBox<QueueCtx>>>,
    #[pin]
    caps: SpinLock<BackendCaps>,
    /// The control ring while connected to a backend offering one (and we
    /// have several queues). A mutex: its requests sleep for replies.
    #[pin]
    ctrl: Mutex<Option<CtrlRing>>,
    /// Where RSS sends hashed packets (checked on receive).
    pub(crate) rss: RssLayout,
    /// The backend filters multicast for us (this connection).
    mcast_control: AtomicBool,
    /// The "filter cannot express this" warning was logged.
    mcast_warned: AtomicBool,
}

// SAFETY: the raw pointers are a net device and a xenbus device that outlive
// the frontend; all mutable state is behind spinlocks.
unsafe impl Send for Frontend {}
// SAFETY: as above.
unsafe impl Sync for Frontend {}

static NETDEV_OPS: b::net_device_ops = {
    // SAFETY: all-zero is a valid `net_device_ops` (every callback `None`).
    let mut ops: b::net_device_ops = unsafe { core::mem::zeroed() };
    ops.ndo_open = Some(ndo_open);
    ops.ndo_stop = Some(ndo_stop);
    ops.ndo_start_xmit = Some(ndo_start_xmit);
    ops.ndo_get_stats64 = Some(ndo_get_stats64);
    ops.ndo_fix_features = Some(ndo_fix_features);
    ops.ndo_set_rx_mode = Some(ndo_set_rx_mode);
    ops
};

/// Parses "aa:bb:cc:dd:ee:ff".
fn parse_mac(s: &[u8]) -> Option<[u8; 6]> {
    if s.len() != 17 {
        return None;
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        let p = &s[i * 3..i * 3 + 2];
        if i < 5 && s[i * 3 + 2] != b':' {
            return None;
        }
        *byte = hex(p[0])? << 4 | hex(p[1])?;
    }
    Some(mac)
}

impl Frontend {
    fn new_pinned(xbdev: Device, netdev: *mut b::net_device, nq: usize) -> Result<Pin<KBox<Self>>> {
        let mut queues = KVec::with_capacity(nq, GFP_KERNEL)?;
        for index in 0..nq {
            queues.push(
                KBox::pin_init(
                    try_pin_init!(QueueCtx {
                        index,
                        netdev,
                        napi: Opaque::zeroed(),
                        state <- kernel::new_spinlock!(
                            Queue { conn: None, stats: Stats::default() },
                            "netfront_opt_queue"
                        ),
                    }),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        KBox::pin_init(
            try_pin_init!(Frontend {
                xbdev,
                netdev,
                queues,
                caps <- kernel::new_spinlock!(BackendCaps::default(), "netfront_opt_caps"),
                ctrl <- kernel::new_mutex!(None, "netfront_opt_ctrl"),
                rss: RssLayout::default(),
                mcast_control: AtomicBool::new(false),
                mcast_warned: AtomicBool::new(false),
            }),
            GFP_KERNEL,
        )
    }

    /// Creates the net device for `xbdev` (xenbus probe).
    pub(crate) fn probe(xbdev: Device) -> Result {
        let mut buf = [0u8; 32];
        let len = Device::read_into(xbdev.nodename(), c"mac", &mut buf).inspect_err(|_| {
            xbdev.fatal(EINVAL, c"netfront_opt: cannot read the vif's mac from xenstore");
        })?;
        let Some(mac) = parse_mac(&buf[..len]) else {
            xbdev.fatal(EINVAL, c"netfront_opt: malformed mac in xenstore");
            return Err(EINVAL);
        };

        // SAFETY: returns a plain count.
        let cpus = unsafe { b::xennet_shim_num_online_cpus() } as usize;
        let nq = cpus.clamp(1, (crate::max_queues() as usize).clamp(1, MAX_QUEUES));
        // SAFETY: plain allocation; the private area holds one pointer.
        let netdev =
            unsafe { b::xennet_shim_alloc_etherdev(size_of::<*const Frontend>() as c_int, nq as u32) };
        if netdev.is_null() {
            return Err(ENOMEM);
        }
        let fe = Self::new_pinned(xbdev, netdev, nq);
        let fe = match fe {
            Ok(fe) => fe,
            Err(e) => {
                // SAFETY: `netdev` was allocated above and never registered.
                unsafe { b::free_netdev(netdev) };
                return Err(e);
            }
        };
        // SAFETY: the frontend is never moved out of its box until remove.
        let fe: *const Frontend = KBox::into_raw(unsafe { Pin::into_inner_unchecked(fe) });
        // SAFETY: `netdev` is ours and not registered; its private area holds
        // one pointer; `fe` stays valid until remove frees the net device
        // first; `NETDEV_OPS` is static; `xbdev` is live.
        let rc = unsafe {
            b::xennet_shim_netdev_priv(netdev).cast::<*const Frontend>().write(fe);
            b::xennet_shim_netdev_init(
                netdev,
                &NETDEV_OPS,
                &crate::ethtool::ETHTOOL_OPS,
                xbdev.as_raw(),
                mac.as_ptr(),
            );
            for q in (*fe).queues.iter() {
                b::xennet_shim_napi_add(netdev, q.napi.get(), Some(napi_poll));
            }
            // Offered offloads; `ndo_fix_features` trims them to what the
            // backend accepts once connected.
            b::xennet_shim_netdev_set_hw_features(netdev, b::xennet_shim_offload_mask(true, true, true, true, true));
            b::netif_carrier_off(netdev);
            b::register_netdev(netdev)
        };
        if rc < 0 {
            // SAFETY: not registered: free the net device (and its NAPI), then
            // the frontend, which nothing else references.
            unsafe {
                b::free_netdev(netdev);
                drop(KBox::from_raw(fe.cast_mut()));
            }
            return Err(Error::from_errno(rc));
        }
        // SAFETY: `xbdev` is live; the pointer is taken back in `remove`.
        unsafe { b::xennet_shim_set_drvdata(xbdev.as_raw(), fe.cast_mut().cast()) };
        // SAFETY: `fe` is live (just created, owned by the xenbus device now).
        let fe = unsafe { &*fe };
        // Rebound after an unbind, the device is still Closed: announce a
        // fresh start so the backend returns to InitWait.
        if xbdev.state() != state::INITIALISING {
            if let Err(e) = xbdev.switch_state(state::INITIALISING) {
                pr_warn!("{}: cannot restart the handshake: {:?}\n", fe.name(), e);
            }
        }
        pr_info!(
            "{}: {} ready, waiting for the backend\n",
            fe.name(),
            xbdev.nodename().to_str().unwrap_or("?")
        );
        Ok(())
    }

    /// The frontend of a bound xenbus device.
    ///
    /// # Safety
    ///
    /// `xbdev` must have been probed successfully and not yet removed.
    pub(crate) unsafe fn from_xenbus<'a>(xbdev: Device) -> &'a Frontend {
        // SAFETY: probe stored a valid frontend pointer (caller's contract).
        unsafe { &*b::xennet_shim_get_drvdata(xbdev.as_raw()).cast::<Frontend>() }
    }

    /// # Safety
    ///
    /// `netdev` must be a net device created by `probe` and not yet freed.
    pub(crate) unsafe fn from_netdev<'a>(netdev: *mut b::net_device) -> &'a Frontend {
        // SAFETY: probe stored the frontend pointer in the private area.
        unsafe { &**b::xennet_shim_netdev_priv(netdev).cast::<*const Frontend>() }
    }

    fn name(&self) -> &str {
        // SAFETY: `netdev` is live; its name is NUL-terminated.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.netdev)) };
        name.to_str().unwrap_or("?")
    }

    /// Queues allocated (the counters `ethtool -S` shows).
    pub(crate) fn nr_queues(&self) -> usize {
        self.queues.len()
    }

    /// Counters of queue `q` (< `nr_queues`).
    pub(crate) fn queue_stats(&self, q: usize) -> Stats {
        self.queues[q].state.lock_bh().stats
    }

    /// Queues connected to the backend.
    fn active_queues(&self) -> &[Pin<KBox<QueueCtx>>] {
        let n = self.caps.lock_bh().queues.min(self.queues.len());
        &self.queues[..n]
    }

    /// Backend state changed (xenbus `otherend_changed`).
    pub(crate) fn backend_changed(&self, backend_state: u32) {
        let ours = self.xbdev.state();
        pr_debug!(
            "{}: backend {} (we are {})\n",
            self.name(),
            state::name(backend_state),
            state::name(ours)
        );
        match backend_state {
            // The backend came back after closing (its driver was reloaded
            // or the device rebound): start over, as after probe.
            state::INIT_WAIT if ours == state::CLOSED => {
                pr_info!("{}: backend restarted; reconnecting\n", self.name());
                if let Err(e) = self.xbdev.switch_state(state::INITIALISING) {
                    pr_warn!("{}: cannot restart the handshake: {:?}\n", self.name(), e);
                    return;
                }
                self.backend_changed(backend_state);
            }
            state::INIT_WAIT if ours == state::INITIALISING => {
                if let Err(e) = self.connect() {
                    pr_err!("{}: connecting to the backend failed: {:?}\n", self.name(), e);
                    self.disconnect();
                    self.xbdev.fatal(e, c"netfront_opt: connecting to the backend");
                }
            }
            state::CONNECTED if ours == state::CONNECTED => self.configure_rss(),
            // While we (re)initialise, a closed backend is the old
            // connection's: wait for it to come back to InitWait.
            state::CLOSING | state::CLOSED
                if ours != state::INITIALISING && ours != state::CLOSED =>
            {
                self.disconnect();
                self.xbdev.frontend_closed();
            }
            _ => {}
        }
    }

    /// Sets up each queue's rings, buffers and event channel, publishes them
    /// in xenstore and switches to Connected.
    fn connect(&self) -> Result {
        let domid = self.xbdev.otherend_id();
        let be = self.xbdev.otherend();
        let offered = Device::read_unsigned(be, c"multi-queue-max-queues", 1).max(1) as usize;
        let n = offered.min(self.queues.len());
        let caps = BackendCaps {
            sg: Device::read_unsigned(be, c"feature-sg", 0) == 1,
            tso4: Device::read_unsigned(be, c"feature-gso-tcpv4", 0) == 1,
            tso6: Device::read_unsigned(be, c"feature-gso-tcpv6", 0) == 1,
            queues: n,
        };
        let split = Device::read_unsigned(be, c"feature-split-event-channels", 0) == 1;
        let mut conns = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut keys = [QueueKeys::default(); MAX_QUEUES];
        for (q, key) in self.queues[..n].iter().zip(keys.iter_mut()) {
            let tx_ring = RingPage::new(&self.xbdev)?;
            let rx_ring = RingPage::new(&self.xbdev)?;
            let names = IRQ_NAMES[q.index];
            let (irq, port) = self.bind_event_channel(q, names[if split { 1 } else { 0 }])?;
            let rx = if split {
                Some(self.bind_event_channel(q, names[2])?)
            } else {
                None
            };
            *key = QueueKeys {
                tx_ref: tx_ring.gref(),
                rx_ref: rx_ring.gref(),
                port,
                rx_port: rx.as_ref().map(|(_, p)| *p),
            };
            let rx_irq = rx.map(|(irq, _)| irq);
            conns.push(Connection::new(tx_ring, rx_ring, irq, rx_irq, domid)?, GFP_KERNEL)?;
        }
        // The control ring, for RSS: only worth it with several queues.
        #[cfg(xennet_hostile)]
        let want_ctrl = n > 1 || crate::hostile::mode() == crate::hostile::BAD_CTRL;
        #[cfg(not(xennet_hostile))]
        let want_ctrl = n > 1;
        let ctrl = if want_ctrl && Device::read_unsigned(be, c"feature-ctrl-ring", 0) == 1 {
            CtrlRing::new(&self.xbdev)
                .inspect_err(|e| pr_warn!("{}: no control ring ({:?}); RSS stays the backend's\n", self.name(), e))
                .ok()
        } else {
            None
        };
        let mcast = crate::multicast_control() && Device::read_unsigned(be, c"feature-multicast-control", 0) == 1;
        self.publish(&keys[..n], ctrl.as_ref().map(|c| c.keys()), mcast)?;
        *self.ctrl.lock() = ctrl;
        // SAFETY: `netdev` is registered; takes the RTNL lock (process context).
        let rc = unsafe { b::xennet_shim_set_real_num_queues(self.netdev, n as u32) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        for (q, mut conn) in self.queues.iter().zip(conns.drain_all()) {
            if mcast && q.index == 0 {
                conn.enable_mcast_control();
            }
            q.state.lock_bh().conn = Some(conn);
        }
        self.mcast_control.store(mcast, Ordering::Release);
        if mcast {
            self.refresh_mcast(true);
        }
        *self.caps.lock_bh() = caps;
        // Jumbo frames need multi-slot transmit.
        let max_mtu = if caps.sg { MAX_TX_SIZE - ETH_HLEN } else { 1500 };
        // SAFETY: `netdev` is registered; takes the RTNL lock (process context).
        unsafe {
            b::xennet_shim_netdev_set_max_mtu(self.netdev, max_mtu as u32);
            b::xennet_shim_netdev_update_features(self.netdev);
        }
        self.xbdev.switch_state(state::CONNECTED)?;
        // SAFETY: `netdev` is live and registered.
        unsafe { b::netif_carrier_on(self.netdev) };
        // Process anything already pending (no-op while the device is down).
        for q in self.active_queues() {
            // SAFETY: the NAPI context was added in probe.
            unsafe { b::xennet_shim_napi_schedule(q.napi()) };
        }
        // The toolstack's `trusted` node (default 1, as the C driver reads
        // it) asks an untrusted backend be given only bounce pages. Ours
        // always are: transmit copies into pages dedicated to this backend
        // (they never held anything it did not see), so both values are
        // honoured; the log says which the toolstack set.
        let trusted = Device::read_unsigned(self.xbdev.nodename(), c"trusted", 1) != 0;
        pr_info!(
            "{}: connected to backend domain {} ({}): {} queue(s), {} event channels\n",
            self.name(),
            domid,
            if trusted { "trusted" } else { "untrusted: bounce pages only" },
            n,
            if split { "split" } else { "shared" }
        );
        Ok(())
    }

    /// Hands the device's multicast list to queue 0, which keeps the
    /// backend's filter in step. `lock`: take the address-list lock (not
    /// held by the caller).
    fn refresh_mcast(&self, lock: bool) {
        if !self.mcast_control.load(Ordering::Acquire) {
            return;
        }
        let mut buf = [0u8; 6 * MCAST_MAX];
        let mut all = false;
        // SAFETY: `netdev` is live; `buf` holds `MCAST_MAX` addresses.
        let n = unsafe { b::xennet_shim_netdev_mc_list(self.netdev, buf.as_mut_ptr(), MCAST_MAX as u32, lock, &mut all) }
            as usize;
        let mut wanted = McastFilter::new();
        for a in buf.chunks_exact(6).take(n.min(MCAST_MAX)) {
            let mut addr = [0u8; 6];
            addr.copy_from_slice(a);
            let _ = wanted.add(addr);
        }
        if (all || n > MCAST_MAX) && !self.mcast_warned.swap(true, Ordering::AcqRel) {
            pr_warn!(
                "{}: the backend's multicast filter holds {} listed groups and cannot pass all multicast; reload with multicast_control=0 for promiscuous or all-multicast use\n",
                self.name(),
                MCAST_MAX
            );
        }
        if let Some(q) = self.queues.first() {
            if let Some(c) = q.state.lock_bh().conn.as_mut() {
                c.set_mcast_wanted(wanted);
            }
        }
    }

    /// Configures RSS over the control ring, once per connection, when the
    /// backend is Connected (it has mapped the ring by then).
    fn configure_rss(&self) {
        let mut ctrl = self.ctrl.lock();
        let Some(c) = Option::as_mut(&mut *ctrl) else { return };
        if self.rss.expected_queue(0).is_some() {
            return;
        }
        let queues = self.active_queues().len() as u32;
        if let Err(e) = c.configure(queues, &self.rss) {
            pr_warn!("{}: RSS not configured ({:?}); the backend picks queues\n", self.name(), e);
        }
    }

    /// Allocates an event channel for the backend and binds it to `q`'s handler.
    fn bind_event_channel(&self, q: &QueueCtx, name: &'static CStr) -> Result<(EventIrq, u32)> {
        let port = self.xbdev.alloc_evtchn()?;
        // SAFETY: the handler gets the queue, which outlives the binding: the
        // connection (owner of the binding) is dropped in `disconnect`, which
        // `remove` runs before freeing the queues.
        let irq = unsafe {
            EventIrq::bind(port, interrupt, name, core::ptr::from_ref(q).cast_mut().cast())
        }
        .inspect_err(|_| self.xbdev.free_evtchn(port))?;
        Ok((irq, port))
    }

    /// Writes our ring references, event channels and features. One queue
    /// uses the flat layout every backend understands; several use
    /// `multi-queue-num-queues` and a `queue-N/` directory each.
    fn publish(&self, keys: &[QueueKeys], ctrl: Option<(u32, u32)>, mcast: bool) -> Result {
        let dir = self.xbdev.nodename();
        let mut qdirs = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
        for i in 0..keys.len() {
            let path = CString::try_from_fmt(fmt!("{}/queue-{}", dir.to_str().map_err(|_| EINVAL)?, i))?;
            qdirs.push(path, GFP_KERNEL)?;
        }
        loop {
            let t = Transaction::start()?;
            let written = (|| -> Result {
                if let [k] = keys {
                    // A previous multi-queue connection's count would make
                    // the backend look for queue directories.
                    t.remove(dir, c"multi-queue-num-queues")?;
                    k.write(&t, dir)?;
                } else {
                    t.write_u32(dir, c"multi-queue-num-queues", keys.len() as u32)?;
                    for (k, qdir) in keys.iter().zip(qdirs.iter()) {
                        k.write(&t, qdir)?;
                    }
                }
                #[cfg(xennet_hostile)]
                if crate::hostile::mode() == crate::hostile::BAD_QUEUES {
                    kernel::pr_warn!("hostile: multi-queue-num-queues = 99\n");
                    t.write_u32(dir, c"multi-queue-num-queues", 99)?;
                }
                match ctrl {
                    Some((gref, port)) => {
                        t.write_u32(dir, c"ctrl-ring-ref", gref)?;
                        t.write_u32(dir, c"event-channel-ctrl", port)?;
                    }
                    None => {
                        t.remove(dir, c"ctrl-ring-ref")?;
                        t.remove(dir, c"event-channel-ctrl")?;
                    }
                }
                if mcast {
                    t.write(dir, c"request-multicast-control", c"1")?;
                } else {
                    t.remove(dir, c"request-multicast-control")?;
                }
                t.write(dir, c"request-rx-copy", c"1")?;
                t.write(dir, c"feature-rx-notify", c"1")?;
                // Receive side: multi-slot and GSO packets; checksums may
                // arrive partial or pre-validated.
                t.write(dir, c"feature-sg", c"1")?;
                t.write(dir, c"feature-gso-tcpv4", c"1")?;
                t.write(dir, c"feature-gso-tcpv6", c"1")?;
                t.write(dir, c"feature-no-csum-offload", c"0")?;
                t.write(dir, c"feature-ipv6-csum-offload", c"1")
            })();
            if let Err(e) = written {
                let _ = t.end(true);
                return Err(e);
            }
            match t.end(false) {
                Err(e) if e == EAGAIN => continue,
                r => return r,
            }
        }
    }

    /// Drops the connection: carrier off, event channel unbound, grants
    /// ended, pages freed. Process context only (unbinding may sleep).
    fn disconnect(&self) {
        // SAFETY: `netdev` is live.
        unsafe { b::netif_carrier_off(self.netdev) };
        self.rss.clear();
        self.mcast_control.store(false, Ordering::Release);
        let ctrl = self.ctrl.lock().take();
        drop(ctrl);
        for q in self.queues.iter() {
            let conn = q.state.lock_bh().conn.take();
            drop(conn);
        }
    }

    /// The domain was restored (xl restore, live migration): the backend is
    /// a new one and our rings, grants and event channels mean nothing to
    /// it. Drop them; xenbus has put us back in Initialising, so the new
    /// backend's InitWait reconnects us as after probe. The net device (and
    /// the guest's addresses on it) stays.
    pub(crate) fn resume(&self) {
        pr_info!("{}: domain restored; reconnecting to the new backend\n", self.name());
        self.disconnect();
    }

    /// When unbound while connected (module unload, sysfs unbind), closes
    /// with the backend before our pages go, so it can unmap them first:
    /// Closing, wait for the backend to close, Closed, wait again. A backend
    /// that does not answer within the timeouts is not waited for: pages it
    /// still maps are then freed only once it lets go (see `GrantedPage`).
    fn close_handshake(&self) {
        if self.xbdev.state() != state::CONNECTED {
            return;
        }
        let gone = |s| matches!(s, state::CLOSING | state::CLOSED | state::UNKNOWN);
        let _ = self.xbdev.switch_state(state::CLOSING);
        self.xbdev.wait_otherend(5000, gone);
        let _ = self.xbdev.switch_state(state::CLOSED);
        let s = self.xbdev.wait_otherend(5000, |s| matches!(s, state::CLOSED | state::UNKNOWN));
        if !matches!(s, state::CLOSED | state::UNKNOWN) {
            pr_warn!(
                "{}: backend did not close (state {}); going on\n",
                self.name(),
                state::name(s)
            );
        }
    }

    /// Unbinds from the xenbus device (xenbus `remove`) and frees everything.
    ///
    /// # Safety
    ///
    /// `xbdev` must have been probed successfully; called once.
    pub(crate) unsafe fn remove(xbdev: Device) {
        // SAFETY: probe stored this pointer (caller's contract); it is taken
        // back exactly once, here.
        let fe = unsafe { b::xennet_shim_get_drvdata(xbdev.as_raw()).cast::<Frontend>() };
        // SAFETY: as above; live until the box is dropped below.
        let netdev = unsafe { (*fe).netdev };
        // SAFETY: registered in probe; unregistering stops the device (and NAPI).
        unsafe { b::unregister_netdev(netdev) };
        // SAFETY: `fe` is live.
        unsafe { (*fe).close_handshake() };
        // SAFETY: `fe` is live.
        unsafe { (*fe).disconnect() };
        // SAFETY: unregistered; freeing also deletes the NAPI context, after
        // an RCU grace period, before the frontend holding it is freed.
        unsafe {
            b::free_netdev(netdev);
            b::xennet_shim_set_drvdata(xbdev.as_raw(), core::ptr::null_mut());
            drop(KBox::from_raw(fe));
        }
    }

}

impl QueueCtx {
    fn napi(&self) -> *mut b::napi_struct {
        self.napi.get()
    }

    fn name(&self) -> &str {
        // SAFETY: `netdev` is live; its name is NUL-terminated.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.netdev)) };
        name.to_str().unwrap_or("?")
    }

    fn poll(&self, budget: usize) -> usize {
        let mut done = 0;
        let mut work = false;
        let mut failed = None;
        loop {
            let mut batch = SkbBatch::new();
            let tx_room = {
                let mut q = self.state.lock_bh();
                let Queue { conn, stats, .. } = &mut *q;
                let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
                    break;
                };
                let r = c.reap_tx(stats).and_then(|tx| {
                    work |= tx;
                    // SAFETY: `netdev` is the live device this queue belongs to.
                    let rss = unsafe { &Frontend::from_netdev(self.netdev).rss };
                    c.receive(self.napi(), self.netdev, budget - done, &mut batch, stats, (rss, self.index as u32))
                });
                match r {
                    Ok(rx) => work |= rx,
                    Err(e) => {
                        c.broken = Some(e);
                        failed = Some(e);
                    }
                }
                c.tx_has_room()
            };
            for &skb in batch.skbs() {
                // SAFETY: each skb was built for this device in this poll.
                unsafe { b::xennet_shim_napi_gro_receive(self.napi(), skb) };
            }
            done += batch.len();
            // SAFETY: `netdev` is live.
            if tx_room && unsafe { b::xennet_shim_netif_subqueue_stopped(self.netdev, self.index as u16) } {
                // SAFETY: as above; `index` is below the device's queue count.
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
            let mut failed = None;
            if let Some(c) = q.conn.as_mut().filter(|c| c.broken.is_none()) {
                match c.final_check() {
                    // SAFETY: the NAPI context is live.
                    Ok(true) => unsafe { b::xennet_shim_napi_schedule(self.napi()) },
                    Ok(false) => {}
                    Err(e) => {
                        c.broken = Some(e);
                        failed = Some(e);
                    }
                }
                c.lateeoi(!work);
            }
            drop(q);
            // The final check reads the backend's producer index again: a
            // protocol error found there is as fatal as one found above.
            if let Some(e) = failed {
                self.disable(e);
            }
        }
        done
    }

    /// A fatal backend protocol error on this queue: log it, carrier off.
    /// The device stays down until it reconnects.
    fn disable(&self, e: crate::netif::Error) {
        pr_err!(
            "{}: queue {}: backend protocol error: {}; disabling the device\n",
            self.name(),
            self.index,
            e.as_str()
        );
        // SAFETY: `netdev` is live.
        unsafe { b::netif_carrier_off(self.netdev) };
    }

    fn xmit(&self, skb: *mut b::sk_buff) -> b::netdev_tx_t {
        // SAFETY: the stack hands us a live skb.
        let len = unsafe { b::xennet_shim_skb_len(skb) } as usize;
        let mut q = self.state.lock_bh();
        let Queue { conn, stats, .. } = &mut *q;
        let conn = conn.as_mut().filter(|c| c.broken.is_none());
        let mut failed = None;
        match conn {
            Some(c) if (ETH_HLEN..=MAX_TX_SIZE).contains(&len) => 'sent: {
                if let Err(e) = c.reap_tx(stats) {
                    c.broken = Some(e);
                    failed = Some(e);
                    stats.tx_dropped += 1;
                    break 'sent;
                }
                let (flags, gso) = tx_offloads(skb);
                if c.transmit(skb, len, flags, gso, stats).is_err() {
                    // SAFETY: `netdev` is live.
                    unsafe { b::xennet_shim_netif_stop_subqueue(self.netdev, self.index as u16) };
                    return b::netdev_tx_NETDEV_TX_BUSY;
                }
                if !c.tx_has_room() {
                    // SAFETY: `netdev` is live.
                    unsafe { b::xennet_shim_netif_stop_subqueue(self.netdev, self.index as u16) };
                }
            }
            _ => stats.tx_dropped += 1,
        }
        drop(q);
        if let Some(e) = failed {
            self.disable(e);
        }
        // SAFETY: copied (or dropped): the skb is ours to free.
        unsafe { b::xennet_shim_kfree_skb_any(skb) };
        b::netdev_tx_NETDEV_TX_OK
    }
}

const ETH_HLEN: usize = 14;

/// The netif flags and GSO request for an outgoing skb.
fn tx_offloads(skb: *mut b::sk_buff) -> (TxFlags, Option<Gso>) {
    // SAFETY: `skb` is a live skb handed to `ndo_start_xmit`.
    let (summed, gso_size, v6) = unsafe {
        (
            b::xennet_shim_skb_ip_summed(skb),
            b::xennet_shim_skb_gso_size(skb),
            b::xennet_shim_skb_gso_is_tcpv6(skb),
        )
    };
    let flags = match summed {
        CHECKSUM_PARTIAL => TxFlags::CSUM_BLANK.with(TxFlags::DATA_VALIDATED),
        CHECKSUM_UNNECESSARY => TxFlags::DATA_VALIDATED,
        _ => TxFlags(0),
    };
    let gso = (gso_size > 0).then_some(Gso {
        size: gso_size as u16,
        ty: if v6 { GsoType::TCPV6 } else { GsoType::TCPV4 },
        features: 0,
    });
    (flags, gso)
}

/// Event channel handler of one queue.
///
/// # Safety
///
/// `dev_id` must be the queue given to `EventIrq::bind`, still bound.
unsafe extern "C" fn interrupt(_irq: c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the queue passed to `EventIrq::bind`, live while bound.
    let q = unsafe { &*dev_id.cast::<QueueCtx>() };
    // SAFETY: the NAPI context lives as long as the queue.
    unsafe { b::xennet_shim_napi_schedule(q.napi()) };
    b::irqreturn::IRQ_HANDLED
}

/// NAPI poll callback.
///
/// # Safety
///
/// `napi` must be the NAPI context inside a `QueueCtx` created by `probe`.
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
/// `netdev` must be a live net device created by `probe`.
unsafe extern "C" fn ndo_open(netdev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let fe = unsafe { Frontend::from_netdev(netdev) };
    for q in fe.queues.iter() {
        // SAFETY: the NAPI context was added in probe and is disabled while down.
        unsafe { b::napi_enable(q.napi()) };
    }
    // SAFETY: `netdev` is live.
    unsafe { b::xennet_shim_netif_tx_start_all_queues(netdev) };
    for q in fe.queues.iter() {
        // SAFETY: enabled above.
        unsafe { b::xennet_shim_napi_schedule(q.napi()) };
    }
    0
}

/// `ndo_stop`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `probe`.
unsafe extern "C" fn ndo_stop(netdev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let fe = unsafe { Frontend::from_netdev(netdev) };
    // SAFETY: `netdev` is live.
    unsafe { b::xennet_shim_netif_tx_stop_all_queues(netdev) };
    for q in fe.queues.iter() {
        // SAFETY: enabled in `ndo_open`.
        unsafe { b::napi_disable(q.napi()) };
    }
    0
}

/// `ndo_start_xmit`: the stack picked the queue (flow hash).
///
/// # Safety
///
/// `netdev` must be a live net device created by `probe`; `skb` a live skb.
unsafe extern "C" fn ndo_start_xmit(skb: *mut b::sk_buff, netdev: *mut b::net_device) -> b::netdev_tx_t {
    // SAFETY: the stack calls us with our live net device and a live skb.
    let (fe, index) = unsafe {
        (
            Frontend::from_netdev(netdev),
            b::xennet_shim_skb_get_queue_mapping(skb) as usize,
        )
    };
    // The stack never picks a queue beyond `real_num_tx_queues`.
    fe.queues[index.min(fe.queues.len() - 1)].xmit(skb)
}

/// `ndo_get_stats64`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `probe`; `out` writable.
unsafe extern "C" fn ndo_get_stats64(netdev: *mut b::net_device, out: *mut b::rtnl_link_stats64) {
    // SAFETY: the stack calls us with our live net device.
    let fe = unsafe { Frontend::from_netdev(netdev) };
    // SAFETY: `out` is a valid stats structure to fill.
    let out = unsafe { &mut *out };
    Stats::fill_link_stats(fe.queues.iter().map(|q| q.state.lock_bh().stats), out);
}

/// `ndo_fix_features`: keeps only the offloads the backend accepts.
///
/// # Safety
///
/// `netdev` must be a live net device created by `probe`.
unsafe extern "C" fn ndo_fix_features(
    netdev: *mut b::net_device,
    features: b::netdev_features_t,
) -> b::netdev_features_t {
    // SAFETY: the stack calls us with our live net device.
    let fe = unsafe { Frontend::from_netdev(netdev) };
    let caps = *fe.caps.lock_bh();
    // SAFETY: pure functions returning feature masks.
    let (offered, allowed) = unsafe {
        (
            b::xennet_shim_offload_mask(true, true, true, true, true),
            // Checksum offload needs nothing from the backend.
            b::xennet_shim_offload_mask(caps.sg, caps.tso4, caps.tso6, true, true),
        )
    };
    (features & !offered) | (features & allowed)
}

/// `ndo_set_rx_mode`: the multicast list changed (address-list lock held).
///
/// # Safety
///
/// `netdev` must be a live net device created by `Frontend::probe`.
unsafe extern "C" fn ndo_set_rx_mode(netdev: *mut b::net_device) {
    // SAFETY: the stack calls us with our live net device.
    let fe = unsafe { Frontend::from_netdev(netdev) };
    fe.refresh_mcast(false);
}
