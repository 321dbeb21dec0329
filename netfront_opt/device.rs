// SPDX-License-Identifier: GPL-2.0

//! One `vif` device: the net device, the xenbus state machine towards the
//! backend, and the net device and NAPI callbacks.

use core::sync::atomic::{AtomicBool, Ordering};
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::{Arc, Mutex, SpinLock};

use crate::netif::{Gso, GsoType, McastFilter, TxFlags, MAX_TX_SIZE, MCAST_MAX, RX_RING_SIZE, TX_RING_SIZE};
use crate::xen_sys::grant_reuse;
use crate::queue::{self, finish_rx, prof_now, Lend, RxConn, SkbBatch, Stats, TxConn, XdpInbox};
use crate::rss::{CtrlRing, RssLayout};
use crate::xen_sys::evtchn::{queue_irq_name, Channel, EventHandler, EventIrq, QueueChannel};
use crate::xen_sys::netdev::{csum, Kind, Napi, NapiQueue, NetDevice, NetDriver, Offloads, Polling, Registration, Skb, Xmit, ETH_HLEN};
use crate::xen_sys::netdev::xmit_more;
use crate::xen_sys::sync::LockBh;
use crate::xen_sys::xdp::{self, Prog, ProgRef, ProgSlot, RxqInfo, Verdict, XdpFrames};
use crate::xen_sys::xenbus::{state, Device, RingPage, Then, Transaction, XenbusDriver};

/// What the backend offers: transmit offloads (its `feature-*` keys) and
/// the number of queues in use.
#[derive(Clone, Copy, Default)]
struct BackendCaps {
    sg: bool,
    tso4: bool,
    tso6: bool,
    queues: usize,
}

/// One half of a queue (transmit or receive) under its lock: the
/// connection's half while connected, and the half's counters.
pub(crate) struct Half<C> {
    conn: Option<KBox<C>>,
    stats: Stats,
}

impl<C> Half<C> {
    fn new() -> Self {
        Half { conn: None, stats: Stats::default() }
    }
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

/// One queue: a NAPI context and its rings, each half under its own lock
/// (never both held at once). The event channels' target.
#[pin_data]
pub(crate) struct QueueCtx {
    index: usize,
    #[pin]
    napi: Napi,
    /// Transmit: `ndo_start_xmit`, completions, XDP_TX, multicast updates.
    #[pin]
    tx: SpinLock<Half<TxConn>>,
    /// Receive: the NAPI poll's receive pass. Holds `static_mapped`.
    #[pin]
    rx: SpinLock<Half<RxConn>>,
    /// Where RSS sends hashed packets (checked on receive).
    rss: Arc<RssLayout>,
    /// The device's XDP program, and this queue's info for it.
    xdp: Arc<ProgSlot>,
    #[pin]
    xdp_rxq: RxqInfo,
}

impl EventHandler for QueueCtx {
    /// The backend signalled: poll (the poll acknowledges the event).
    fn event(&self, _ch: Channel<'_>, _tag: u32) {
        self.napi.schedule();
    }
}

/// A netfront net device's data: its queues and what the backend offers.
#[pin_data]
pub(crate) struct Frontend {
    /// Allocated at probe (up to the vCPU count and `max_queues`); the first
    /// `caps.queues` of them are connected.
    queues: KVec<Arc<QueueCtx>>,
    #[pin]
    caps: SpinLock<BackendCaps>,
    /// The control ring while connected to a backend offering one (and we
    /// have several queues). A mutex: its requests sleep for replies.
    #[pin]
    ctrl: Mutex<Option<CtrlRing>>,
    /// Where RSS sends hashed packets (checked on receive).
    rss: Arc<RssLayout>,
    /// The native XDP program every queue runs (none: the plain path).
    xdp: Arc<ProgSlot>,
    /// The backend filters multicast for us (this connection).
    mcast_control: AtomicBool,
    /// The "filter cannot express this" warning was logged.
    mcast_warned: AtomicBool,
    /// Grant reuse was tried on this connection (registered or not).
    statics_tried: AtomicBool,
    /// Connected, waiting for the backend's Connected to turn the carrier on.
    carrier_armed: AtomicBool,
}

/// The xenbus side of one `vif` device: its registered net device.
pub(crate) struct Netfront {
    reg: Registration<Frontend>,
}

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

#[vtable]
impl XenbusDriver for Netfront {
    /// Creates the net device for a new `vif` device.
    fn probe(dev: &Device) -> Result<Pin<KBox<Self>>> {
        let mut buf = [0u8; 32];
        let len = Device::read_into(dev.nodename(), c"mac", &mut buf).inspect_err(|_| {
            dev.fatal(EINVAL, c"netfront_opt: cannot read the vif's mac from xenstore");
        })?;
        let Some(mac) = parse_mac(&buf[..len]) else {
            dev.fatal(EINVAL, c"netfront_opt: malformed mac in xenstore");
            return Err(EINVAL);
        };
        let cpus = crate::xen_sys::num_online_cpus();
        let nq = cpus.clamp(1, (crate::max_queues() as usize).clamp(1, MAX_QUEUES));
        // Offered offloads; `offloads` trims them to what the backend
        // accepts once connected.
        let reg = Registration::register(Kind::Ether { mac, offered: Offloads::ALL }, dev, Frontend::new(nq)?)?;
        let nf = KBox::pin(Netfront { reg }, GFP_KERNEL)?;
        // Rebound after an unbind, the device is still Closed: announce a
        // fresh start so the backend returns to InitWait.
        if dev.state() != state::INITIALISING {
            if let Err(e) = dev.switch_state(state::INITIALISING) {
                pr_warn!("{}: cannot restart the handshake: {:?}\n", nf.reg.device().name(), e);
            }
        }
        pr_info!(
            "{}: {} ready, waiting for the backend\n",
            nf.reg.device().name(),
            dev.nodename().to_str().unwrap_or("?")
        );
        Ok(nf)
    }

    fn otherend_changed(&self, dev: &Device, backend_state: u32) -> Then {
        self.reg.data().backend_changed(dev, self.reg.device(), backend_state);
        Then::Stay
    }

    /// Unbound (module unload, sysfs unbind, device removed): close with the
    /// backend, drop the connection, then the net device.
    fn remove(this: Pin<KBox<Self>>, dev: &Device) {
        let (fe, ndev) = (this.reg.data(), this.reg.device());
        // Nothing more for rings the backend is about to let go.
        ndev.carrier_off();
        ndev.stop_all_queues();
        fe.close_handshake(dev, ndev);
        fe.disconnect(ndev);
        // Dropping `this` unregisters and frees the net device.
    }

    /// The domain was restored (xl restore, live migration): the backend is
    /// a new one and our rings, grants and event channels mean nothing to
    /// it. Drop them; xenbus has put us back in Initialising, so the new
    /// backend's InitWait reconnects us as after probe. The net device (and
    /// the guest's addresses on it) stays.
    fn resume(&self, _dev: &Device) -> Result {
        let ndev = self.reg.device();
        pr_info!("{}: domain restored; reconnecting to the new backend\n", ndev.name());
        self.reg.data().disconnect(ndev);
        Ok(())
    }
}

impl Frontend {
    fn new(nq: usize) -> Result<Pin<KBox<Self>>> {
        let rss = Arc::new(RssLayout::default(), GFP_KERNEL)?;
        let xdp = Arc::new(ProgSlot::new(), GFP_KERNEL)?;
        let mut queues = KVec::with_capacity(nq, GFP_KERNEL)?;
        for index in 0..nq {
            let (rss, xdp) = (rss.clone(), xdp.clone());
            queues.push(
                Arc::pin_init(
                    try_pin_init!(QueueCtx {
                        index,
                        napi <- Napi::new(),
                        tx <- kernel::new_spinlock!(Half::new(), "netfront_opt_tx"),
                        rx <- kernel::new_spinlock!(Half::new(), "netfront_opt_rx"),
                        rss,
                        xdp,
                        xdp_rxq <- RxqInfo::new(),
                    }? Error),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        KBox::pin_init(
            try_pin_init!(Frontend {
                queues,
                caps <- kernel::new_spinlock!(BackendCaps::default(), "netfront_opt_caps"),
                ctrl <- kernel::new_mutex!(None, "netfront_opt_ctrl"),
                rss,
                xdp,
                mcast_control: AtomicBool::new(false),
                mcast_warned: AtomicBool::new(false),
                statics_tried: AtomicBool::new(false),
                carrier_armed: AtomicBool::new(false),
            }? Error),
            GFP_KERNEL,
        )
    }

    /// Queues allocated (the counters `ethtool -S` shows).
    pub(crate) fn nr_queues(&self) -> usize {
        self.queues.len()
    }

    /// Counters of queue `q` (< `nr_queues`).
    pub(crate) fn queue_stats(&self, q: usize) -> Stats {
        let q = &self.queues[q];
        let mut s = q.rx.lock_bh().stats;
        s.add(&q.tx.lock_bh().stats);
        s
    }

    /// The largest MTU: jumbo frames need multi-slot transmit; an XDP
    /// program needs each frame in one page.
    fn max_mtu(&self, caps: BackendCaps) -> usize {
        let mtu = if caps.sg { MAX_TX_SIZE - ETH_HLEN } else { 1500 };
        if self.xdp.is_set() { mtu.min(xdp_max_mtu()) } else { mtu }
    }

    /// Queues connected to the backend.
    fn active_queues(&self) -> &[Arc<QueueCtx>] {
        let n = self.caps.lock_bh().queues.min(self.queues.len());
        &self.queues[..n]
    }

    /// Backend state changed (xenbus `otherend_changed`).
    fn backend_changed(&self, dev: &Device, ndev: &NetDevice, backend_state: u32) {
        let ours = dev.state();
        pr_debug!(
            "{}: backend {} (we are {})\n",
            ndev.name(),
            state::name(backend_state),
            state::name(ours)
        );
        match backend_state {
            // The backend came back after closing (its driver was reloaded
            // or the device rebound): start over, as after probe.
            state::INIT_WAIT if ours == state::CLOSED => {
                pr_info!("{}: backend restarted; reconnecting\n", ndev.name());
                if let Err(e) = dev.switch_state(state::INITIALISING) {
                    pr_warn!("{}: cannot restart the handshake: {:?}\n", ndev.name(), e);
                    return;
                }
                self.backend_changed(dev, ndev, backend_state);
            }
            state::INIT_WAIT if ours == state::INITIALISING => {
                if let Err(e) = self.connect(dev, ndev) {
                    pr_err!("{}: connecting to the backend failed: {:?}\n", ndev.name(), e);
                    self.disconnect(ndev);
                    dev.fatal(e, c"netfront_opt: connecting to the backend");
                }
            }
            state::CONNECTED if ours == state::CONNECTED => {
                // Once per connection: a backend that writes Connected
                // again must not bring back a device disabled since.
                if self.carrier_armed.swap(false, Ordering::AcqRel) {
                    ndev.carrier_on();
                    // Process anything already pending (no-op while the
                    // device is down).
                    for q in self.active_queues() {
                        q.napi.schedule();
                    }
                }
                self.configure_rss(ndev);
                self.register_static_grants(ndev);
            }
            // While we (re)initialise, a closed backend is the old
            // connection's: wait for it to come back to InitWait.
            state::CLOSING | state::CLOSED
                if ours != state::INITIALISING && ours != state::CLOSED =>
            {
                if self.static_grants_held() {
                    // The backend maps our pool pages (grant reuse): close
                    // first, so it detaches and unmaps them, then free them.
                    ndev.carrier_off();
                    dev.frontend_closed();
                    dev.wait_otherend(5000, |s| matches!(s, state::CLOSED | state::UNKNOWN));
                    self.disconnect(ndev);
                } else {
                    self.disconnect(ndev);
                    dev.frontend_closed();
                }
            }
            _ => {}
        }
    }

    /// Sets up each queue's rings, buffers and event channel, publishes them
    /// in xenstore and switches to Connected.
    fn connect(&self, dev: &Device, ndev: &NetDevice) -> Result {
        let domid = dev.otherend_id();
        let be = dev.otherend()?;
        let be = be.as_ref();
        let offered = Device::read_unsigned(be, c"multi-queue-max-queues", 1).max(1) as usize;
        let n = offered.min(self.queues.len());
        let caps = BackendCaps {
            sg: Device::read_unsigned(be, c"feature-sg", 0) == 1,
            tso4: Device::read_unsigned(be, c"feature-gso-tcpv4", 0) == 1,
            tso6: Device::read_unsigned(be, c"feature-gso-tcpv6", 0) == 1,
            queues: n,
        };
        let split = Device::read_unsigned(be, c"feature-split-event-channels", 0) == 1;
        let tuning = crate::tuning();
        // The toolstack's `trusted` node (default 1, as the C driver reads
        // it). An untrusted backend is given only our bounce pages, which
        // never held anything it did not see: no zero-copy transmit.
        let trusted = Device::read_unsigned(dev.nodename(), c"trusted", 1) != 0;
        let mut conns = KVec::with_capacity(n, GFP_KERNEL)?;
        let mut keys = [QueueKeys::default(); MAX_QUEUES];
        for (q, key) in self.queues[..n].iter().zip(keys.iter_mut()) {
            let tx_ring = RingPage::new(dev)?;
            let rx_ring = RingPage::new(dev)?;
            let first = if split { QueueChannel::Tx } else { QueueChannel::Shared };
            let (irq, port) = Self::bind_event_channel(dev, q, first)?;
            let rx = if split { Some(Self::bind_event_channel(dev, q, QueueChannel::Rx)?) } else { None };
            *key = QueueKeys {
                tx_ref: tx_ring.gref(),
                rx_ref: rx_ring.gref(),
                port,
                rx_port: rx.as_ref().map(|(_, p)| *p),
            };
            let rx_irq = rx.map(|(irq, _)| irq);
            conns.push(queue::connect(tx_ring, rx_ring, irq, rx_irq, domid, tuning, trusted)?, GFP_KERNEL)?;
        }
        // The control ring, for RSS (only worth it with several queues) and
        // grant reuse.
        #[cfg(xennet_hostile)]
        let want_ctrl = n > 1 || crate::static_grants() || crate::hostile::mode() == crate::hostile::BAD_CTRL;
        #[cfg(not(xennet_hostile))]
        let want_ctrl = n > 1 || crate::static_grants();
        let ctrl = if want_ctrl && Device::read_unsigned(be, c"feature-ctrl-ring", 0) == 1 {
            CtrlRing::new(dev)
                .inspect_err(|e| pr_warn!("{}: no control ring ({:?}); RSS stays the backend's\n", ndev.name(), e))
                .ok()
        } else {
            None
        };
        let mcast = crate::multicast_control() && Device::read_unsigned(be, c"feature-multicast-control", 0) == 1;
        self.publish(dev, &keys[..n], ctrl.as_ref().map(|c| c.keys()), mcast)?;
        let old = core::mem::replace(&mut *self.ctrl.lock(), ctrl);
        drop(old);
        ndev.set_real_num_queues(n)?;
        for (q, (mut tx, rx)) in self.queues.iter().zip(conns.drain_all()) {
            if mcast && q.index == 0 {
                tx.enable_mcast_control();
            }
            let old_tx = q.tx.lock_bh().conn.replace(tx);
            let old_rx = {
                let mut s = q.rx.lock_bh();
                s.stats.static_mapped = 0;
                s.conn.replace(rx)
            };
            // Unbinding an old connection's event channels sleeps: outside
            // the locks.
            drop((old_tx, old_rx));
        }
        self.mcast_control.store(mcast, Ordering::Release);
        self.statics_tried.store(false, Ordering::Release);
        if mcast {
            self.refresh_mcast(ndev, false);
        }
        {
            // Under the caps lock, as `xdp_install` sets it: the two never
            // cross (this runs without RTNL).
            let mut c = self.caps.lock_bh();
            *c = caps;
            ndev.set_max_mtu(self.max_mtu(caps));
        }
        ndev.update_features();
        // Carrier comes with the backend's Connected (`backend_changed`): a
        // backend still in InitWait reads nothing we would send.
        self.carrier_armed.store(true, Ordering::Release);
        dev.switch_state(state::CONNECTED)?;
        pr_info!(
            "{}: connected to backend domain {} ({}): {} queue(s), {} event channels; tx_batch={} tx_moderation={} rx_refill_batch={} rx_copybreak={} gro={} profile={} tx_zerocopy={}\n",
            ndev.name(),
            domid,
            if trusted { "trusted" } else { "untrusted: bounce pages only" },
            n,
            if split { "split" } else { "shared" },
            u8::from(tuning.tx_batch),
            u8::from(tuning.tx_moderation),
            tuning.rx_refill_batch,
            tuning.rx_copybreak,
            u8::from(tuning.gro),
            u8::from(tuning.profile),
            u8::from(tuning.tx_zerocopy && trusted)
        );
        Ok(())
    }

    /// Hands the device's multicast list to queue 0, which keeps the
    /// backend's filter in step. `locked`: the caller holds the
    /// address-list lock (`ndo_set_rx_mode`).
    fn refresh_mcast(&self, ndev: &NetDevice, locked: bool) {
        if !self.mcast_control.load(Ordering::Acquire) {
            return;
        }
        let mut buf = [0u8; 6 * MCAST_MAX];
        let (n, all) = ndev.mc_list(&mut buf, locked);
        let mut wanted = McastFilter::new();
        for a in buf.chunks_exact(6).take(n.min(MCAST_MAX)) {
            let mut addr = [0u8; 6];
            addr.copy_from_slice(a);
            let _ = wanted.add(addr);
        }
        if (all || n > MCAST_MAX) && !self.mcast_warned.swap(true, Ordering::AcqRel) {
            pr_warn!(
                "{}: the backend's multicast filter holds {} listed groups and cannot pass all multicast; reload with multicast_control=0 for promiscuous or all-multicast use\n",
                ndev.name(),
                MCAST_MAX
            );
        }
        if let Some(q) = self.queues.first() {
            if let Some(c) = q.tx.lock_bh().conn.as_mut() {
                c.set_mcast_wanted(wanted);
            }
        }
    }

    /// Configures RSS over the control ring, once per connection, when the
    /// backend is Connected (it has mapped the ring by then).
    fn configure_rss(&self, ndev: &NetDevice) {
        let mut ctrl = self.ctrl.lock();
        let Some(c) = Option::as_mut(&mut *ctrl) else { return };
        if self.rss.expected_queue(0).is_some() {
            return;
        }
        let queues = self.active_queues().len() as u32;
        #[cfg(xennet_hostile)]
        let rss_wanted = queues > 1 || crate::hostile::mode() == crate::hostile::BAD_CTRL;
        #[cfg(not(xennet_hostile))]
        let rss_wanted = queues > 1;
        if !rss_wanted {
            return;
        }
        if let Err(e) = c.configure(queues, &self.rss) {
            pr_warn!("{}: RSS not configured ({:?}); the backend picks queues\n", ndev.name(), e);
        }
    }

    /// Whether any queue's pages are registered as static grants.
    fn static_grants_held(&self) -> bool {
        self.queues.iter().any(|q| q.rx.lock_bh().stats.static_mapped > 0)
    }

    /// Grant reuse: registers each queue's buffer pages (granted for the
    /// connection already) as static grants, once per connection, when the
    /// backend is Connected and offers them.
    fn register_static_grants(&self, ndev: &NetDevice) {
        if self.statics_tried.swap(true, Ordering::AcqRel) {
            return;
        }
        if !crate::static_grants() {
            pr_info!("{}: grant reuse off (static_grants=0): buffers go by grant copy\n", ndev.name());
            return;
        }
        // The hostile control-ring case has just moved the ring's producer
        // 1000 ahead: a request now would write the index back and hide it.
        #[cfg(xennet_hostile)]
        if crate::hostile::mode() == crate::hostile::BAD_CTRL {
            return;
        }
        let mut ctrl = self.ctrl.lock();
        let Some(c) = Option::as_mut(&mut *ctrl) else { return };
        let Some((mut rx, mut tx)) = buffer_gref_arrays() else { return };
        let mut total = 0;
        let mut stopped_lending = false;
        for q in self.active_queues() {
            let s = q.rx.lock_bh();
            if s.stats.static_mapped > 0 {
                return;
            }
            let Some(nrx) = s.conn.as_ref().map(|c| c.buffer_grefs(&mut rx)) else { return };
            drop(s);
            let Some(ntx) = q.tx.lock_bh().conn.as_ref().map(|c| c.buffer_grefs(&mut tx)) else { return };
            match c.register_static(q.index as u32, &rx[..nrx], &tx[..ntx]) {
                Ok((0, 0)) => {
                    pr_info!("{}: the backend offers no static grants: buffers go by grant copy\n", ndev.name());
                    return;
                }
                Ok((r, t)) => {
                    q.rx.lock_bh().stats.static_mapped = (r + t) as u64;
                    if t > 0 {
                        if let Some(c) = q.tx.lock_bh().conn.as_mut() {
                            stopped_lending |= c.set_static_grants();
                        }
                    }
                    total += r + t;
                    #[cfg(xennet_hostile)]
                    if q.index == 0 && crate::hostile::mode() == crate::hostile::BAD_STATIC {
                        c.hostile_static(&rx[..nrx], &tx[..ntx]);
                    }
                }
                Err(e) => {
                    pr_warn!("{}: queue {}: static grants not registered ({:?}): grant copy\n", ndev.name(), q.index, e);
                    return;
                }
            }
        }
        #[cfg(xennet_hostile)]
        crate::hostile::statics_registered();
        pr_info!(
            "{}: grant reuse: {} buffer pages registered as static grants{}\n",
            ndev.name(),
            total,
            if stopped_lending { "; tx_zerocopy off: the backend maps our TX pages, copying into them costs it less" } else { "" }
        );
    }

    /// Grant reuse: takes every registered page back from the backend
    /// (`DEL`) before our pages go, checking its per-entry answers. Pages
    /// it does not confirm stay with the grant layer until it lets go.
    fn unregister_static_grants(&self, ndev: &NetDevice) {
        let mut ctrl = self.ctrl.lock();
        let Some(c) = Option::as_mut(&mut *ctrl) else { return };
        let Some((mut rx, mut tx)) = buffer_gref_arrays() else { return };
        for q in self.active_queues() {
            let mut s = q.rx.lock_bh();
            let held = s.stats.static_mapped as usize;
            let Some(nrx) = s.conn.as_ref().filter(|_| held > 0).map(|c| c.buffer_grefs(&mut rx)) else { continue };
            s.stats.static_mapped = 0;
            drop(s);
            let ntx = q.tx.lock_bh().conn.as_ref().map_or(0, |c| c.buffer_grefs(&mut tx));
            // What was registered: receive pages first, then transmit.
            let (r, t) = grant_reuse::plan(held as u32, nrx, ntx);
            match c.unregister_static(q.index as u32, &rx[..r], &tx[..t]) {
                Ok(o) if o.inconsistent => pr_warn!(
                    "{}: queue {}: the backend's answer to DEL contradicts itself ({} unmapped, {} refused)\n",
                    ndev.name(),
                    q.index,
                    o.removed,
                    o.refused
                ),
                // Pages a backend's NIC queue holds posted: it unmaps them
                // when it lets the queue go (at the disconnect that follows).
                Ok(o) if o.refused > 0 => pr_info!(
                    "{}: queue {}: {} static grants taken back, {} still in use by the backend\n",
                    ndev.name(),
                    q.index,
                    o.removed,
                    o.refused
                ),
                Ok(o) => pr_info!("{}: queue {}: {} static grants taken back\n", ndev.name(), q.index, o.removed),
                Err(e) => pr_warn!("{}: queue {}: static grants not taken back ({:?})\n", ndev.name(), q.index, e),
            }
        }
    }

    /// Allocates an event channel for the backend and binds it to `q`.
    fn bind_event_channel(dev: &Device, q: &Arc<QueueCtx>, ch: QueueChannel) -> Result<(EventIrq<QueueCtx>, u32)> {
        let name = queue_irq_name("netfront_opt", q.index, ch)?;
        let port = dev.alloc_evtchn()?;
        let irq = EventIrq::bind(port, &name, q.clone()).inspect_err(|_| dev.free_evtchn(port))?;
        Ok((irq, port))
    }

    /// Writes our ring references, event channels and features. One queue
    /// uses the flat layout every backend understands; several use
    /// `multi-queue-num-queues` and a `queue-N/` directory each.
    fn publish(&self, dev: &Device, keys: &[QueueKeys], ctrl: Option<(u32, u32)>, mcast: bool) -> Result {
        let dir = dev.nodename();
        let mut qdirs = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
        for i in 0..keys.len() {
            let path = CString::try_from_fmt(fmt!("{}/queue-{}", dir.to_str().map_err(|_| EINVAL)?, i))?;
            qdirs.push(path, GFP_KERNEL)?;
        }
        dev.transaction(|t| {
            if let [k] = keys {
                // A previous multi-queue connection's count would make
                // the backend look for queue directories.
                t.remove(dir, c"multi-queue-num-queues")?;
                k.write(t, dir)?;
            } else {
                t.write_u32(dir, c"multi-queue-num-queues", keys.len() as u32)?;
                for (k, qdir) in keys.iter().zip(qdirs.iter()) {
                    k.write(t, qdir)?;
                }
            }
            #[cfg(xennet_hostile)]
            let first_qdir = if keys.len() > 1 { qdirs.first().map_or(dir, |d| &**d) } else { dir };
            #[cfg(xennet_hostile)]
            match crate::hostile::mode() {
                crate::hostile::BAD_QUEUES => {
                    kernel::pr_warn!("hostile: multi-queue-num-queues = 99\n");
                    t.write_u32(dir, c"multi-queue-num-queues", 99)?;
                }
                crate::hostile::ZERO_QUEUES => {
                    kernel::pr_warn!("hostile: multi-queue-num-queues = 0\n");
                    t.write_u32(dir, c"multi-queue-num-queues", 0)?;
                }
                crate::hostile::BAD_RING_REF => {
                    kernel::pr_warn!("hostile: tx-ring-ref = 0xdead, a grant never given\n");
                    t.write_u32(first_qdir, c"tx-ring-ref", 0xdead)?;
                }
                crate::hostile::NO_RING_REF => {
                    kernel::pr_warn!("hostile: tx-ring-ref removed\n");
                    t.remove(first_qdir, c"tx-ring-ref")?;
                }
                crate::hostile::ABC_EVTCHN => {
                    kernel::pr_warn!("hostile: event channel written as abc\n");
                    let node = if keys.first().is_some_and(|k| k.rx_port.is_some()) { c"event-channel-tx" } else { c"event-channel" };
                    t.write(first_qdir, node, c"abc")?;
                }
                _ => {}
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
        })
    }

    /// Drops the connection: carrier off, event channel unbound, grants
    /// ended, pages freed. Process context only (unbinding may sleep).
    fn disconnect(&self, ndev: &NetDevice) {
        self.carrier_armed.store(false, Ordering::Release);
        ndev.carrier_off();
        self.rss.clear();
        self.mcast_control.store(false, Ordering::Release);
        let ctrl = self.ctrl.lock().take();
        drop(ctrl);
        for q in self.queues.iter() {
            let tx = q.tx.lock_bh().conn.take();
            let rx = q.rx.lock_bh().conn.take();
            drop((tx, rx));
        }
    }

    /// When unbound while connected (module unload, sysfs unbind), closes
    /// with the backend before our pages go, so it can unmap them first:
    /// Closing, wait for the backend to close, Closed, wait again. A backend
    /// that does not answer within the timeouts is not waited for: pages it
    /// still maps are then freed only once it lets go (see `GrantedPage`).
    fn close_handshake(&self, dev: &Device, ndev: &NetDevice) {
        if dev.state() != state::CONNECTED {
            return;
        }
        let gone = |s| matches!(s, state::CLOSING | state::CLOSED | state::UNKNOWN);
        self.unregister_static_grants(ndev);
        let _ = dev.switch_state(state::CLOSING);
        dev.wait_otherend(5000, gone);
        let _ = dev.switch_state(state::CLOSED);
        let s = dev.wait_otherend(5000, |s| matches!(s, state::CLOSED | state::UNKNOWN));
        if !matches!(s, state::CLOSED | state::UNKNOWN) {
            pr_warn!("{}: backend did not close (state {}); going on\n", ndev.name(), state::name(s));
        }
    }
}

#[vtable]
impl NetDriver for Frontend {
    type Queue = QueueCtx;

    fn queues(&self) -> &[Arc<QueueCtx>] {
        &self.queues
    }

    /// The stack picked the queue (flow hash).
    fn start_xmit(&self, dev: &NetDevice, queue: usize, skb: Skb) -> Xmit {
        match self.queues.get(queue) {
            Some(q) => q.xmit(dev, skb),
            None => Xmit::Done,
        }
    }

    /// Transmit offloads as far as the backend accepts them (checksum
    /// offload needs nothing from it).
    fn offloads(&self) -> Offloads {
        let c = *self.caps.lock_bh();
        Offloads { sg: c.sg, tso4: c.tso4, tso6: c.tso6, csum4: true, csum6: true }
    }

    /// The multicast list changed (address-list lock held).
    fn set_rx_mode(&self, dev: &NetDevice) {
        self.refresh_mcast(dev, true);
    }

    /// A program needs every frame in one page with its headroom: the MTU
    /// must leave room for that (it is held there while one is attached).
    fn xdp_check(&self, dev: &NetDevice, attach: bool) -> core::result::Result<(), &'static CStr> {
        if attach && dev.mtu() > xdp_max_mtu() {
            pr_warn!("{}: XDP needs an MTU of at most {} (it is {})\n", dev.name(), xdp_max_mtu(), dev.mtu());
            return Err(c"netfront_opt: XDP needs a smaller MTU (see the kernel log)");
        }
        Ok(())
    }

    fn xdp_install(&self, dev: &NetDevice, prog: Option<Prog>) {
        let attach = prog.is_some();
        let caps = self.caps.lock_bh();
        let old = self.xdp.replace(prog);
        dev.set_max_mtu(self.max_mtu(*caps));
        drop(caps);
        // The old program's reference goes here, outside the lock; a poll
        // still running it finishes first (freed after an RCU grace period).
        drop(old);
        if attach {
            pr_info!(
                "{}: XDP program attached (native): it runs on a private copy of each frame with {} bytes of headroom; frames over one buffer are dropped unseen while it is (MTU up to {})\n",
                dev.name(),
                xdp::HEADROOM,
                xdp_max_mtu()
            );
        } else {
            pr_info!("{}: XDP program detached\n", dev.name());
        }
    }

    /// Frames another device's program redirected to us: copied onto the
    /// queue of this CPU, as the C netfront picks it.
    fn xdp_xmit(&self, dev: &NetDevice, frames: &XdpFrames<'_>, _flush: bool) -> usize {
        let active = self.active_queues();
        if active.is_empty() {
            return 0;
        }
        let q = &active[crate::xen_sys::xdp::this_cpu() % active.len()];
        let mut sent = 0;
        let mut s = q.tx.lock_bh();
        let Half { conn, stats } = &mut *s;
        let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else { return 0 };
        if let Err(e) = c.reap_tx(stats) {
            c.broken = Some(e);
            drop(s);
            q.disable(dev, e);
            return 0;
        }
        while sent < frames.len() && c.transmit_frame(frames.data(sent), TxFlags(0), stats) {
            sent += 1;
        }
        stats.xdp_xmit += sent as u64;
        // Published at once, flush or not: the core may not call again
        // (its last batch emptied by a devmap program), and the next call
        // may pick another queue.
        c.flush_tx();
        sent
    }
}

/// Largest MTU with which every frame fits an XDP page.
fn xdp_max_mtu() -> usize {
    xdp::max_frame() - ETH_HLEN
}

impl NapiQueue for QueueCtx {
    fn napi(&self) -> &Napi {
        &self.napi
    }

    fn xdp_rxq(&self) -> Option<&RxqInfo> {
        Some(&self.xdp_rxq)
    }

    fn poll(&self, dev: &NetDevice, napi: &Polling<'_>, budget: usize) -> usize {
        QueueCtx::poll(self, dev, napi, budget)
    }
}

impl QueueCtx {
    fn poll(&self, dev: &NetDevice, napi: &Polling<'_>, budget: usize) -> usize {
        let mut done = 0;
        let mut work = false;
        let mut failed = None;
        let prog = self.xdp.get(napi);
        // Slots for the program's frames, only while one is attached.
        let mut inbox = prog.as_ref().map(|_| XdpInbox::new());
        let mut redirected = false;
        loop {
            // Completions first, under the TX lock: the stack's replies to
            // what this pass delivers find the buffers free.
            let tx_room = {
                let mut h = self.tx.lock_bh();
                let Half { conn, stats } = &mut *h;
                let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
                    break;
                };
                let t0 = prof_now(c.tuning.profile);
                match c.reap_tx(stats) {
                    Ok(any) => work |= any,
                    Err(e) => {
                        c.broken = Some(e);
                        failed = Some(e);
                        break;
                    }
                }
                if c.tuning.profile {
                    stats.prof_reap_ns += prof_now(true) - t0;
                }
                c.tx_has_room()
            };
            if tx_room && dev.subqueue_stopped(self.index) {
                dev.wake_subqueue(self.index);
            }
            // The receive pass, under the RX lock.
            let mut batch = SkbBatch::new();
            let (more, gro, prof) = {
                let mut h = self.rx.lock_bh();
                let Half { conn, stats } = &mut *h;
                let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
                    break;
                };
                let prof = c.tuning.profile;
                let t0 = prof_now(prof);
                let r = c.receive(napi, dev, budget - done, (&mut batch, inbox.as_mut()), stats, (&self.rss, self.index as u32));
                if prof {
                    stats.prof_rx_ns += prof_now(prof) - t0;
                }
                let more = match r {
                    Ok((taken, limited)) => {
                        work |= taken > 0;
                        done += taken;
                        limited
                    }
                    Err(e) => {
                        c.broken = Some(e);
                        failed = Some(e);
                        false
                    }
                };
                (more, c.tuning.gro, prof)
            };
            if let (Some(prog), Some(inbox)) = (&prog, inbox.as_mut()) {
                redirected |= self.run_xdp(prog, dev, napi, inbox, &mut batch);
            }
            let t = prof_now(prof);
            batch.deliver(napi, gro);
            if prof {
                let spent = prof_now(prof) - t;
                let mut h = self.rx.lock_bh();
                h.stats.prof_deliver_ns += spent;
                h.stats.prof_polls += 1;
            }
            if failed.is_some() || done >= budget || !more {
                break;
            }
        }
        if redirected {
            xdp::flush_redirects(napi);
        }
        if let Some(e) = failed {
            self.disable(dev, e);
        }
        if done >= budget {
            return budget;
        }
        if napi.complete_done(done) {
            self.rearm(dev, work);
        }
        done
    }

    /// After a poll that finished its work: `RING_FINAL_CHECK_FOR_RESPONSES`
    /// on both rings (poll again if anything arrived meanwhile), then late
    /// EOI (`work` false: the event brought nothing, which throttles a
    /// storm). A half found broken gets no EOI: its queue stays quiet.
    fn rearm(&self, dev: &NetDevice, work: bool) {
        let mut failed = None;
        let mut check = |r: core::result::Result<bool, crate::netif::Error>, broken: &mut Option<crate::netif::Error>| {
            r.unwrap_or_else(|e| {
                *broken = Some(e);
                failed = Some(e);
                false
            })
        };
        let tx_more = {
            let mut h = self.tx.lock_bh();
            match h.conn.as_mut().filter(|c| c.broken.is_none()) {
                Some(c) => Some(check(c.final_check(), &mut c.broken)),
                None => None,
            }
        };
        {
            let mut h = self.rx.lock_bh();
            if let (Some(c), Some(tx_more)) = (h.conn.as_mut().filter(|c| c.broken.is_none()), tx_more) {
                // The final check reads the backend's producer index again:
                // a protocol error found there is as fatal as one found in
                // the poll.
                if check(c.final_check(), &mut c.broken) || tx_more {
                    self.napi.schedule();
                }
                c.lateeoi(!work);
            }
        }
        if let Some(e) = failed {
            self.disable(dev, e);
        }
    }

    /// Runs the XDP program on the frames `receive` copied out (the queue
    /// lock released): passed ones join `batch` as skbs built on their
    /// pages, `XDP_TX` ones are copied onto this queue's TX ring (one
    /// publish for the pass). True if any was redirected (the poll flushes).
    fn run_xdp(&self, prog: &ProgRef<'_>, dev: &NetDevice, napi: &Polling<'_>, inbox: &mut XdpInbox, batch: &mut SkbBatch) -> bool {
        let mut st = Stats::default();
        let mut redirected = false;
        let mut sent_back = false;
        for p in inbox.drain() {
            match xdp::run(prog, &self.xdp_rxq, dev, p.page, p.len) {
                Verdict::Pass(frame) => {
                    st.xdp_pass += 1;
                    match frame.into_skb(napi) {
                        Some(skb) => {
                            finish_rx(skb, p.meta, dev, batch, &mut st, (&self.rss, self.index as u32));
                        }
                        None => st.rx_dropped += 1,
                    }
                }
                Verdict::Tx(frame) => {
                    let mut q = self.tx.lock_bh();
                    let Half { conn, stats } = &mut *q;
                    let sent = conn
                        .as_mut()
                        .filter(|c| c.broken.is_none())
                        .is_some_and(|c| c.transmit_frame(frame.data(), p.meta.tx_flags(), stats));
                    if sent {
                        st.xdp_tx += 1;
                        sent_back = true;
                    } else {
                        st.xdp_aborted += 1;
                    }
                }
                Verdict::Redirected => {
                    st.xdp_redirect += 1;
                    redirected = true;
                }
                Verdict::Dropped { aborted, .. } => {
                    if aborted {
                        st.xdp_aborted += 1;
                    } else {
                        st.xdp_drop += 1;
                    }
                }
            }
        }
        self.rx.lock_bh().stats.add(&st);
        if sent_back {
            if let Some(c) = self.tx.lock_bh().conn.as_mut().filter(|c| c.broken.is_none()) {
                c.flush_tx();
            }
        }
        redirected
    }

    /// A fatal backend protocol error on this queue: log it, carrier off.
    /// The device stays down until it reconnects.
    fn disable(&self, dev: &NetDevice, e: crate::netif::Error) {
        pr_err!(
            "{}: queue {}: backend protocol error: {}; disabling the device\n",
            dev.name(),
            self.index,
            e.as_str()
        );
        dev.carrier_off();
    }

    fn xmit(&self, dev: &NetDevice, skb: Skb) -> Xmit {
        let len = skb.len();
        // More packets follow right away: publish them all with the last.
        let more = xmit_more();
        let mut q = self.tx.lock_bh();
        let Half { conn, stats } = &mut *q;
        let conn = conn.as_mut().filter(|c| c.broken.is_none());
        let mut failed = None;
        match conn {
            Some(c) => {
                let prof = c.tuning.profile;
                let t0 = prof_now(prof);
                'sent: {
                    if !(ETH_HLEN..=MAX_TX_SIZE).contains(&len) {
                        stats.tx_dropped += 1;
                        break 'sent;
                    }
                    if let Err(e) = c.reap_tx(stats) {
                        c.broken = Some(e);
                        failed = Some(e);
                        stats.tx_dropped += 1;
                        break 'sent;
                    }
                    let (flags, gso) = tx_offloads(&skb);
                    let defer = more && c.tuning.tx_batch;
                    let skb = if c.lends() {
                        match c.transmit_lent(skb, flags, gso, stats, defer) {
                            Lend::Sent => break 'sent,
                            Lend::Busy(skb) => return self.busy(dev, c, skb),
                            Lend::Copy(skb) => skb,
                        }
                    } else {
                        skb
                    };
                    if !c.transmit(&skb, len, flags, gso, stats, defer) {
                        return self.busy(dev, c, skb);
                    }
                    // Copied (or dropped): `skb` is freed here.
                }
                // The burst ends here (or the queue stops): publish it.
                let room = c.tx_has_room();
                if !more || !room {
                    c.flush_tx();
                }
                if prof {
                    stats.prof_xmit_ns += prof_now(prof) - t0;
                }
                if !room {
                    dev.stop_subqueue(self.index);
                }
            }
            None => stats.tx_dropped += 1,
        }
        drop(q);
        if let Some(e) = failed {
            self.disable(dev, e);
        }
        Xmit::Done
    }

    /// No room for `skb`: what was deferred goes out now, the queue stops
    /// and the stack keeps the skb (the TX lock held).
    fn busy(&self, dev: &NetDevice, c: &mut TxConn, skb: Skb) -> Xmit {
        c.flush_tx();
        dev.stop_subqueue(self.index);
        Xmit::Busy(skb)
    }
}

/// The netif flags and GSO request for an outgoing skb.
fn tx_offloads(skb: &Skb) -> (TxFlags, Option<Gso>) {
    let flags = match skb.ip_summed() {
        csum::PARTIAL => TxFlags::CSUM_BLANK.with(TxFlags::DATA_VALIDATED),
        csum::UNNECESSARY => TxFlags::DATA_VALIDATED,
        _ => TxFlags(0),
    };
    let gso = skb.gso().map(|(size, v6)| Gso {
        size,
        ty: if v6 { GsoType::TCPV6 } else { GsoType::TCPV4 },
        features: 0,
    });
    (flags, gso)
}

/// Room for one queue's receive and transmit buffer grants (`buffer_grefs`).
fn buffer_gref_arrays() -> Option<(KVec<u32>, KVec<u32>)> {
    Some((
        KVec::from_elem(0u32, RX_RING_SIZE as usize, GFP_KERNEL).ok()?,
        KVec::from_elem(0u32, TX_RING_SIZE as usize, GFP_KERNEL).ok()?,
    ))
}
