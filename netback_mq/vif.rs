// SPDX-License-Identifier: GPL-2.0

//! The `vifD.N` net device in dom0 and its queues: the net device callbacks
//! (through `xen_sys::netdev`), per-queue NAPI (guest transmit, and guest
//! receive of a packet held for want of buffers), and the event channels'
//! targets.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLock};

use crate::ctrl::VifCtrl;
use crate::nic::{self, MacFmt, NicUser, VfPort};
use crate::nicrx::{NicEnd, NicRx};
use crate::netif::{CarrierChange, StallChange, StalledQueues};
use crate::queue::{Connection, FrontCaps, RxCfg, RxOutcome, SkbBatch, Stats};
use crate::xen_sys::evtchn::{Channel, EventHandler};
use crate::xen_sys::netdev::{xmit_more, NapiQueue, NetDevice, NetDriver, NicBridge, Offloads, Napi, Polling, Skb, Timer, Xmit};
use crate::xen_sys::now_us;
use crate::xen_sys::sync::LockBh;
use crate::xen_sys::xenbus::Device;

/// Most queues a vif has (the `max_queues` parameter is capped to this).
pub(crate) const MAX_QUEUES: usize = 8;
// Each queue has a bit in the vif's stall set.
const _: () = assert!(MAX_QUEUES <= StalledQueues::MAX_QUEUES);

/// Event-channel bits awaiting their late EOI (the bindings' tags).
pub(crate) const EOI_TX: u32 = 1;
pub(crate) const EOI_RX: u32 = 2;

/// Lock-protected state of one queue.
pub(crate) struct Queue {
    pub(crate) conn: Option<KBox<Connection>>,
    pub(crate) caps: FrontCaps,
    pub(crate) stats: Stats,
}

/// State every queue of a vif shares: what the frontend configured and
/// which queues' guests stalled. The control ring's event channel target.
#[pin_data]
pub(crate) struct VifShared {
    #[pin]
    pub(crate) ctrl: VifCtrl,
    /// Queues whose guest stopped posting receive buffers: while any is,
    /// the carrier is off (the stack then drops what it queued for us).
    stalled: StalledQueues,
    /// Connected with no protocol error: only then may a stall recovery
    /// turn the carrier back on.
    healthy: AtomicBool,
    /// The guest's MAC (xenstore `mac`): bit 48 set when known.
    guest_mac: AtomicU64,
    /// While guest receive goes through a NIC queue: the PF's ifindex,
    /// where frames for the guest that reach the vif are sent (0: none).
    nic_ifindex: AtomicI32,
    /// A frame for another MAC reached the vif while on the NIC (logged
    /// once per NIC path).
    unsteered_seen: AtomicBool,
    /// The vif's own ifindex (set when connected): its bridge decides
    /// whether the NIC path may stand in for it.
    vif_ifindex: AtomicI32,
}

impl VifShared {
    fn guest_mac(&self) -> Option<[u8; 6]> {
        let v = self.guest_mac.load(Ordering::Acquire);
        (v >> 48 == 1).then(|| {
            let b = v.to_be_bytes();
            [b[2], b[3], b[4], b[5], b[6], b[7]]
        })
    }
}

impl EventHandler for VifShared {
    /// The control ring's thread.
    fn event(&self, ch: Channel<'_>, _tag: u32) {
        let work = self.ctrl.process(&ch);
        ch.lateeoi(!work);
    }
}

/// One queue: a NAPI context for guest transmit and its lock-protected
/// connection. The event channels' target.
#[pin_data]
pub(crate) struct QueueCtx {
    pub(crate) index: usize,
    #[pin]
    napi: Napi,
    #[pin]
    pub(crate) state: SpinLock<Queue>,
    /// Channels that fired since the last EOI (`EOI_TX` | `EOI_RX`).
    eoi_pending: AtomicU32,
    /// Wakes NAPI when rate-limit credit is due or a guest-receive stall
    /// is to be declared.
    #[pin]
    timer: Timer,
    shared: Arc<VifShared>,
    /// How guest receive last moved (or wanted to move) onto a NIC queue
    /// (`NicMode`), so a VF's recovery, or the PF joining the vif's
    /// bridge, can move it there the same way. 0 once disconnected.
    nic_mode: AtomicU32,
    /// The last reason the NIC path was refused for (a `NicBridge` as
    /// u32 + 1; 0 none), logged once per change.
    nic_refused: AtomicU32,
}

/// `try_nic`'s frontend mode as one word: 0 never on a NIC, 1 static
/// grants, `2 | domid << 16` each buffer mapped when posted.
struct NicMode;

impl NicMode {
    fn encode(per_buffer: Option<u16>) -> u32 {
        match per_buffer {
            None => 1,
            Some(domid) => 2 | u32::from(domid) << 16,
        }
    }
    fn decode(v: u32) -> Option<Option<u16>> {
        match v & 0xffff {
            1 => Some(None),
            2 => Some(Some((v >> 16) as u16)),
            _ => None,
        }
    }
}

impl EventHandler for QueueCtx {
    fn event(&self, _ch: Channel<'_>, tag: u32) {
        self.eoi_pending.fetch_or(tag, Ordering::AcqRel);
        self.napi.schedule();
    }
}

/// A vif's net device data: its queues and their shared state.
pub(crate) struct Vif {
    pub(crate) queues: KVec<Arc<QueueCtx>>,
    shared: Arc<VifShared>,
}

impl Vif {
    /// The data of a vif named `name` with `nq` queues.
    pub(crate) fn new(nq: usize, name: &CStr) -> Result<Pin<KBox<Vif>>> {
        let shared = Arc::pin_init(
            try_pin_init!(VifShared {
                ctrl <- VifCtrl::new(name),
                stalled: StalledQueues::new(),
                healthy: AtomicBool::new(false),
                guest_mac: AtomicU64::new(0),
                nic_ifindex: AtomicI32::new(0),
                unsteered_seen: AtomicBool::new(false),
                vif_ifindex: AtomicI32::new(0),
            }? Error),
            GFP_KERNEL,
        )?;
        let mut queues = KVec::with_capacity(nq, GFP_KERNEL)?;
        for index in 0..nq {
            let shared = shared.clone();
            queues.push(
                Arc::pin_init(
                    try_pin_init!(QueueCtx {
                        index,
                        napi <- Napi::new(),
                        state <- kernel::new_spinlock!(
                            Queue { conn: None, caps: FrontCaps::default(), stats: Stats::default() },
                            "netback_mq_queue"
                        ),
                        eoi_pending: AtomicU32::new(0),
                        timer <- Timer::new(),
                        shared,
                        nic_mode: AtomicU32::new(0),
                        nic_refused: AtomicU32::new(0),
                    }? Error),
                    GFP_KERNEL,
                )?,
                GFP_KERNEL,
            )?;
        }
        Ok(KBox::pin(Vif { queues, shared }, GFP_KERNEL)?)
    }

    pub(crate) fn ctrl(&self) -> &VifCtrl {
        &self.shared.ctrl
    }

    /// The guest's MAC, from the toolstack (a NIC queue steered by it can
    /// then serve the guest).
    pub(crate) fn set_guest_mac(&self, mac: [u8; 6]) {
        let mut b = [0u8; 8];
        b[1] = 1;
        b[2..].copy_from_slice(&mac);
        self.shared.guest_mac.store(u64::from_be_bytes(b), Ordering::Release);
    }

    /// Connects the frontend's control ring.
    pub(crate) fn connect_ctrl(&self, dev: &Device, gref: u32, port: u32, nq: u32) -> Result {
        let mut queues = KVec::with_capacity(nq as usize, GFP_KERNEL)?;
        for q in self.queues.iter().take(nq as usize) {
            queues.push(q.clone(), GFP_KERNEL)?;
        }
        self.shared.ctrl.connect_ring(dev, gref, port, queues, self.shared.clone())
    }

    /// Installs the queues' connections and starts traffic. Process context.
    pub(crate) fn attach(&self, ndev: &NetDevice, conns: KVec<KBox<Connection>>, caps: FrontCaps) -> Result {
        ndev.set_real_num_queues(conns.len())?;
        self.shared.vif_ifindex.store(ndev.ifindex(), Ordering::Release);
        let n = conns.len();
        for (q, conn) in self.queues.iter().zip(conns) {
            let old = {
                let mut s = q.state.lock_bh();
                s.caps = caps;
                s.conn.replace(conn)
            };
            // Unbinding the old event channels sleeps: outside the lock.
            drop(old);
        }
        ndev.update_features();
        self.shared.healthy.store(true, Ordering::Release);
        ndev.carrier_on();
        for q in self.queues[..n].iter() {
            ndev.wake_subqueue(q.index);
            q.napi.schedule();
        }
        Ok(())
    }

    /// Drops every queue's connection: carrier off, event channels unbound,
    /// rings unmapped. Process context (unbinding sleeps).
    pub(crate) fn detach(&self, ndev: &NetDevice) {
        self.shared.healthy.store(false, Ordering::Release);
        self.shared.nic_ifindex.store(0, Ordering::Release);
        ndev.carrier_off();
        for q in self.queues.iter() {
            let conn = {
                let mut s = q.state.lock_bh();
                // Under the lock `wait_on` looks at the connection under.
                q.nic_mode.store(0, Ordering::Release);
                q.nic_refused.store(0, Ordering::Release);
                if let Some(c) = s.conn.as_mut() {
                    c.drain_tx();
                }
                s.conn.take()
            };
            // The carrier is off already; a new connection starts unstalled.
            let _ = self.shared.stalled.clear(q.index);
            drop(conn);
        }
        self.shared.ctrl.disconnect();
    }
}

#[vtable]
impl NetDriver for Vif {
    type Queue = QueueCtx;

    fn queues(&self) -> &[Arc<QueueCtx>] {
        &self.queues
    }

    /// Traffic for the guest. Never refused (`NETDEV_TX_BUSY`): a packet
    /// that finds too few guest buffers is held and the queue stopped.
    fn start_xmit(&self, dev: &NetDevice, queue: usize, skb: Skb) -> Xmit {
        if let Some(q) = self.queues.get(queue) {
            q.xmit(dev, skb);
        }
        Xmit::Done
    }

    /// Offloads towards the guest only as far as its receive path accepts
    /// them (queue 0's copy of the frontend's features).
    fn offloads(&self) -> Offloads {
        let c = self.queues.first().map(|q| q.state.lock_bh().caps).unwrap_or_default();
        Offloads { sg: c.sg, tso4: c.gso4, tso6: c.gso6, csum4: c.csum4, csum6: c.csum6 }
    }

    /// The frontend's hash mapping when it configured one over the control
    /// ring, else the stack's choice.
    fn select_queue(&self, _dev: &NetDevice, skb: &Skb) -> Option<u16> {
        self.shared.ctrl.select_queue(skb)
    }
}

impl NapiQueue for QueueCtx {
    fn napi(&self) -> &Napi {
        &self.napi
    }

    fn poll(&self, dev: &NetDevice, napi: &Polling<'_>, budget: usize) -> usize {
        QueueCtx::poll(self, dev, napi, budget)
    }

    fn timer(&self) -> Option<&Timer> {
        Some(&self.timer)
    }

    /// Poll again: credit due, or time to check for a stall.
    fn timer_fired(&self) {
        self.napi.schedule();
    }
}

impl NicUser for QueueCtx {
    /// The NIC completed frames into this queue's guest pages (or its VF
    /// went away): the poll deals with them.
    fn nic_event(&self) {
        self.napi.schedule();
    }

    fn retry_nic(self: Arc<Self>) {
        QueueCtx::retry_nic(&self);
    }
}

impl QueueCtx {
    /// Moves guest receive onto the NIC queue steered by the guest's MAC,
    /// if netback_mq drives one: posting the frontend's static grants, or
    /// with `per_buffer` (the frontend's domain) mapping each buffer's
    /// grant when posted. Queue 0, which the VF's single queue serves;
    /// frames for the guest reaching any queue go through the PF. Process
    /// context.
    pub(crate) fn try_nic(self: &Arc<Self>, name: &str, per_buffer: Option<u16>) {
        if self.index != 0 {
            return;
        }
        let Some(mac) = self.shared.guest_mac() else { return };
        let Some(vf) = nic::find(mac) else {
            if nic::count() > 0 {
                // VFs are in use, none for this guest (all taken, or its MAC
                // not assigned to one).
                pr_info!("{}: no igb VF steered by the guest's MAC {}: grant copy\n", name, MacFmt(mac));
            }
            return;
        };
        let Some(ifindex) = vf.pf_ifindex() else {
            pr_warn!("{}: igb VF {} has no PF network device to send through: grant copy\n", name, MacFmt(mac));
            return;
        };
        if self.shared.ctrl.xdp_headroom() != 0 {
            pr_info!("{}: the frontend wants an XDP headroom, which the NIC cannot leave: grant copy\n", name);
            return;
        }
        // The NIC path stands in for the vif's bridge only where the PF is
        // a port of the same plain Linux bridge; otherwise the VF waits for
        // that (its watchdog asks again every second).
        let bridge = NicBridge::of(self.shared.vif_ifindex.load(Ordering::Acquire), ifindex);
        if bridge != NicBridge::Shared {
            let code = bridge as u32 + 1;
            if self.nic_refused.swap(code, Ordering::AcqRel) != code {
                pr_info!(
                    "{}: igb VF {} not used: {}: grant copy (the NIC path starts once the PF joins the vif's bridge)\n",
                    name,
                    MacFmt(mac),
                    bridge.as_str()
                );
            }
            self.wait_on(&vf, per_buffer);
            return;
        }
        // Allocated before the lock (and, declared first, freed after it on
        // a return: freeing per-buffer mapping pages sleeps), as is a path
        // that ended before.
        let Ok(nic) = NicRx::new(vf.clone(), per_buffer) else { return };
        let mut q = self.state.lock_bh();
        let Queue { conn, stats, .. } = &mut *q;
        let Some(c) = conn.as_mut() else { return };
        if !c.nic_can_start(per_buffer.is_some()) {
            return;
        }
        if vf.attach(self.clone()).is_err() {
            if vf.in_reset() {
                // The VF's recovery moves the queue once it is up again.
                self.nic_mode.store(NicMode::encode(per_buffer), Ordering::Release);
                vf.wait_for(self.clone());
            }
            return;
        }
        let retired = c.take_retired();
        c.nic_start(nic, stats);
        self.nic_mode.store(NicMode::encode(per_buffer), Ordering::Release);
        self.shared.nic_ifindex.store(ifindex, Ordering::Release);
        self.shared.unsteered_seen.store(false, Ordering::Release);
        self.nic_refused.store(0, Ordering::Release);
        drop(q);
        drop(retired);
        pr_info!(
            "{}: queue 0: guest receive through the NIC (igb VF {}, {}): it writes into the guest's pages, no copy in dom0\n",
            name,
            MacFmt(mac),
            if per_buffer.is_some() { "each buffer's grant mapped when posted" } else { "static grants" }
        );
        self.napi.schedule();
    }

    /// Leaves the queue waiting on `vf` (its watchdog calls `retry_nic`)
    /// in frontend mode `per_buffer`: only while connected and not on a
    /// NIC already (under the queue's lock, which the disconnection takes).
    fn wait_on(self: &Arc<Self>, vf: &Arc<dyn VfPort>, per_buffer: Option<u16>) {
        let q = self.state.lock_bh();
        if q.conn.as_ref().is_some_and(|c| c.nic_can_start(per_buffer.is_some())) {
            self.nic_mode.store(NicMode::encode(per_buffer), Ordering::Release);
            vf.wait_for(self.clone());
        }
    }

    /// Moves guest receive (back) onto the NIC after its VF's reset by the
    /// PF, or once the PF joined the vif's bridge, in the frontend mode it
    /// had. Nothing once disconnected. Process context.
    pub(crate) fn retry_nic(self: &Arc<Self>) {
        if let Some(per_buffer) = NicMode::decode(self.nic_mode.load(Ordering::Acquire)) {
            self.try_nic(self.shared.ctrl.name(), per_buffer);
        }
    }

    /// A fatal protocol error on this queue: log it, carrier off. The vif
    /// stays down until the frontend reconnects.
    fn disable(&self, dev: &NetDevice, e: crate::netif::Error) {
        pr_err!(
            "{}: queue {}: frontend protocol error: {}; disabling the vif\n",
            dev.name(),
            self.index,
            e.as_str()
        );
        self.shared.healthy.store(false, Ordering::Release);
        dev.carrier_off();
    }

    /// Carrier off while any queue's guest is stalled, on once none is.
    fn stall_changed(&self, dev: &NetDevice, change: Option<StallChange>) {
        let Some(change) = change else { return };
        match change {
            StallChange::Stalled => {
                pr_warn!("{}: queue {}: guest receive stalled (no buffers posted)\n", dev.name(), self.index)
            }
            StallChange::Recovered => pr_info!("{}: queue {}: guest receive ready again\n", dev.name(), self.index),
        }
        let stalled = &self.shared.stalled;
        let healthy = &self.shared.healthy;
        stalled.drive(stalled.apply(self.index, change), |c| match c {
            CarrierChange::Off => dev.carrier_off(),
            // Not over a protocol error or a disconnection.
            CarrierChange::On if healthy.load(Ordering::Acquire) => dev.carrier_on(),
            CarrierChange::On => {}
        });
    }

    /// NAPI poll: guest transmit (every request consumed counts against
    /// the budget, delivered or not), then the guest-receive packet held
    /// for want of buffers once the guest posted them.
    fn poll(&self, dev: &NetDevice, napi: &Polling<'_>, budget: usize) -> usize {
        let mut done = 0;
        let mut work = false;
        let mut nic_again = false;
        let mut failed = None;
        let ctrl = &self.shared.ctrl;
        loop {
            let mut batch = SkbBatch::new();
            let (rx_room, drained) = {
                let mut q = self.state.lock_bh();
                let Queue { conn, caps, stats } = &mut *q;
                let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
                    break;
                };
                // Guest receive through the NIC: completions answered, the
                // guest's new buffers posted; ended at once if the vif and
                // the PF are no longer ports of one bridge.
                let policy = c.nic_pf().and_then(|pf| {
                    let b = NicBridge::of(self.shared.vif_ifindex.load(Ordering::Acquire), pf);
                    (b != NicBridge::Shared).then_some(NicEnd::Bridge(b))
                });
                let (frames, again, ended) = c.nic_poll(stats, policy);
                work |= frames > 0;
                nic_again |= again;
                if let Some(why) = ended {
                    self.shared.nic_ifindex.store(0, Ordering::Release);
                    pr_warn!("{}: queue {}: guest receive leaves the NIC ({}): grant copy\n", dev.name(), self.index, why);
                }
                // Guest-receive packets left planned (the stack promised more
                // that did not come): copy them now.
                c.flush_rx(stats);
                let round = match c.guest_tx(napi, dev, budget - done, &mut batch, stats, ctrl) {
                    Ok(r) => r,
                    Err(e) => {
                        c.broken = Some(e);
                        Default::default()
                    }
                };
                done += round.consumed;
                work |= round.consumed > 0;
                // The guest left its MAC: off the NIC in the next round.
                nic_again |= c.nic_must_end();
                let stopped = dev.subqueue_stopped(self.index);
                let mut rx_room = false;
                if stopped || c.has_held() {
                    // Guest receive waits for buffers: deliver the held
                    // packet if they came; if not, have the guest signal
                    // when it posts (it may just have).
                    if c.rx_ready() {
                        c.deliver_held(*caps, ctrl, stats);
                    }
                    if (c.has_held() || !c.rx_ready()) && c.rx_wait_for_buffers() {
                        c.deliver_held(*caps, ctrl, stats);
                    }
                    let waiting = c.has_held() || !c.rx_ready();
                    let change = if waiting {
                        c.rx_stall.short(now_us(), crate::rx_stall_timeout_us())
                    } else {
                        c.rx_stall.ready()
                    };
                    if change == Some(StallChange::Stalled) {
                        // The guest is gone for now: drop what waited for it.
                        c.drop_held(stats);
                    }
                    self.stall_changed(dev, change);
                    if waiting {
                        // Look again when the stall timeout is due.
                        self.timer.arm_us(crate::rx_stall_timeout_us());
                    }
                    rx_room = stopped && !waiting;
                }
                failed = c.take_new_error();
                (rx_room, round.drained)
            };
            batch.deliver(napi, true);
            if rx_room {
                dev.wake_subqueue(self.index);
            }
            if failed.is_some() || done >= budget || drained {
                break;
            }
        }
        if let Some(e) = failed {
            self.disable(dev, e);
        }
        if done >= budget || nic_again {
            // More NIC completions or buffers may be waiting: poll again.
            return budget;
        }
        if napi.complete_done(done) {
            let mut q = self.state.lock_bh();
            if let Some(c) = q.conn.as_mut() {
                // The NIC's receive interrupt, masked since it fired.
                c.nic_rearm();
                if let Some(wait) = c.rate_wait_us() {
                    // Over the rate limit: the timer polls again when credit
                    // is due (new requests would not help).
                    self.timer.arm_us(wait);
                } else if c.broken.is_none() {
                    match c.final_check() {
                        Ok(true) => self.napi.schedule(),
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
                self.disable(dev, e);
            }
        }
        done
    }

    /// Guest receive while the guest receives through its VF: everything
    /// for it goes in there (out of the PF, which is a port of the vif's
    /// bridge; the NIC's loopback brings it into the guest's pool), in the
    /// NIC's order.
    fn xmit_nic(&self, dev: &NetDevice, skb: Skb, pf: i32) {
        // Unicast for another MAC (flooded by the bridge, or meant for a
        // promiscuous guest) the pool would not take: dropped here, not
        // sent out of the PF.
        if let Some(dest) = skb.dest_mac().filter(|d| d[0] & 1 == 0 && Some(*d) != self.shared.guest_mac()) {
            let first = !self.shared.unsteered_seen.swap(true, Ordering::AcqRel);
            self.state.lock_bh().stats.nic_unsteered += 1;
            if first {
                pr_info!(
                    "{}: a frame for {} reached the vif: while the guest receives through its VF only its own MAC's frames, broadcast and its multicast reach it (a promiscuous guest sees no more); counted in queue_N_nic_unsteered\n",
                    dev.name(),
                    MacFmt(dest)
                );
            }
            return;
        }
        if skb.dest_mac().is_some_and(|d| d[0] & 1 == 1) {
            // Broadcast or multicast: the bridge flooded it to the PF too,
            // and the NIC replicates it into every pool that takes it. Were
            // the PF no longer a port of the vif's bridge, the frame must
            // not go out of it: the next poll ends the NIC path.
            if !dev.same_master_as(pf) {
                self.napi.schedule();
            }
            self.state.lock_bh().stats.nic_group_dups += 1;
            return;
        }
        if !dev.same_master_as(pf) {
            // The vif left the PF's bridge: the next poll ends the path.
            self.napi.schedule();
        }
        let sent = skb.xmit_on(pf).is_ok();
        let mut q = self.state.lock_bh();
        if sent {
            q.stats.nic_redirected += 1;
        } else {
            q.stats.tx_dropped += 1;
        }
    }

    /// Guest receive: copy `skb` into the guest's buffers, or hold it (and
    /// stop the queue) until the guest posts enough.
    fn xmit(&self, dev: &NetDevice, skb: Skb) {
        let nic = self.shared.nic_ifindex.load(Ordering::Acquire);
        if nic != 0 {
            self.xmit_nic(dev, skb, nic);
            return;
        }
        let ctrl = &self.shared.ctrl;
        if !ctrl.mcast_passes(&skb) {
            // A group the guest did not join (multicast control).
            let mut q = self.state.lock_bh();
            let Queue { conn, stats, .. } = &mut *q;
            stats.mcast_filtered += 1;
            if let (false, Some(c)) = (xmit_more(), conn.as_mut()) {
                // The last of a burst: what the packets before it planned goes.
                c.flush_rx(stats);
            }
            return;
        }
        let cfg = RxCfg { xdp_headroom: ctrl.xdp_headroom(), hash: ctrl.hash_for_guest(&skb) };
        let mut q = self.state.lock_bh();
        let Queue { conn, caps, stats } = &mut *q;
        let Some(c) = conn.as_mut().filter(|c| c.broken.is_none()) else {
            stats.tx_dropped += 1;
            if let Some(c) = conn.as_mut() {
                // A broken connection answers nothing more: free what it
                // had planned rather than keep it until the detach.
                c.discard_rx();
            }
            return;
        };
        if let Some(pf) = c.nic_pf() {
            // The NIC path started after `nic_ifindex` was read: this ring's
            // requests are the NIC's now, and a grant copy into them would
            // answer out of order. The frame goes the NIC's way.
            drop(q);
            self.xmit_nic(dev, skb, pf);
            return;
        }
        if c.has_held() {
            // The queue was restarted (device down and up) while a packet
            // waited: it goes first, and while it still waits this one is
            // dropped (one packet is held at most).
            c.deliver_held(*caps, ctrl, stats);
            if c.has_held() {
                stats.tx_dropped += 1;
                dev.stop_subqueue(self.index);
                return;
            }
        }
        match c.guest_rx(skb, *caps, &cfg, stats) {
            RxOutcome::NoRoom(skb) => {
                // What is planned goes now: the guest may be waiting for it
                // before it posts more buffers.
                c.flush_rx(stats);
                dev.stop_subqueue(self.index);
                // The guest signals when it posts more; if it already did,
                // go on now.
                let skb = if c.rx_wait_for_buffers() {
                    match c.guest_rx(skb, *caps, &cfg, stats) {
                        RxOutcome::NoRoom(skb) => Some(skb),
                        _ => None,
                    }
                } else {
                    Some(skb)
                };
                c.flush_rx(stats);
                match skb {
                    None => dev.wake_subqueue(self.index),
                    Some(skb) => {
                        stats.tx_held += 1;
                        c.hold(skb);
                        // Starts the stall clock (or declares the stall, if
                        // it was already running that long); the timer looks
                        // again when the timeout is due.
                        let change = c.rx_stall.short(now_us(), crate::rx_stall_timeout_us());
                        if change == Some(StallChange::Stalled) {
                            c.drop_held(stats);
                        }
                        self.stall_changed(dev, change);
                        self.timer.arm_us(crate::rx_stall_timeout_us());
                    }
                }
            }
            // One grant-copy hypercall and one notification for all the
            // packets the stack has queued behind this one.
            _ if !xmit_more() => c.flush_rx(stats),
            _ => {}
        }
        let failed = c.take_new_error();
        drop(q);
        if let Some(e) = failed {
            self.disable(dev, e);
        }
    }
}
