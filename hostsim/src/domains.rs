//! A minimal frontend (guest) and backend (dom0) built from `netif::proto`,
//! exchanging real packets over TX and RX rings through the simulated grant
//! table and event channels. The backend echoes every packet it receives on
//! TX back to the frontend on RX.

use crate::evtchn::EventChannel;
use crate::grant::{CopyPtr, DomId, DomainGrants, GrantTable, Mapping};
use crate::page::{Page, PageRef};
use netif::{
    Error, GrantRef, Gso, HostBarriers, Result, RspStatus, RxBack, RxEvent, RxExtras, RxFlags,
    RxFront, RxOut, RxRequest, SharedRing, TxBack, TxEvent, TxFlags, TxFrag, TxFront, NR_SLOTS_MIN,
    PAGE_SIZE,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The backend domain.
pub const BACKEND: DomId = 0;
/// The frontend domain.
pub const FRONTEND: DomId = 1;

/// What the frontend publishes for the backend to connect (as xenstore would).
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Grant of the TX ring page.
    pub tx_ring: GrantRef,
    /// Grant of the RX ring page.
    pub rx_ring: GrantRef,
}

/// One packet to transmit: data and how to split it into fragments.
#[derive(Debug, Clone)]
pub struct TxSpec {
    /// Packet bytes.
    pub data: Vec<u8>,
    /// Offset of each fragment in its page, and its length.
    pub frags: Vec<(u16, u16)>,
    /// Optional GSO extra.
    pub gso: Option<Gso>,
}

impl TxSpec {
    /// Splits `data` into page-sized fragments at offset 0.
    pub fn simple(data: Vec<u8>) -> Self {
        let frags = data
            .chunks(PAGE_SIZE)
            .map(|c| (0u16, c.len() as u16))
            .collect();
        Self {
            data,
            frags,
            gso: None,
        }
    }
}

/// The guest side.
pub struct Frontend {
    gt: GrantTable,
    /// TX queue.
    pub tx: TxFront<HostBarriers>,
    /// RX queue.
    pub rx: RxFront<HostBarriers>,
    _rings: [PageRef; 2],
    rx_bufs: HashMap<u32, (PageRef, GrantRef)>,
    tx_grants: HashMap<u16, (PageRef, GrantRef)>,
    /// Notifies the backend.
    pub to_back: EventChannel,
    /// Notifications from the backend.
    pub from_back: EventChannel,
    /// Notifications sent.
    pub notifies: u64,
}

impl Frontend {
    /// Allocates and grants the ring pages.
    pub fn new(gt: GrantTable, to_back: EventChannel, from_back: EventChannel) -> (Self, ConnInfo) {
        let txp = Page::new();
        let rxp = Page::new();
        let info = ConnInfo {
            tx_ring: gt.grant(FRONTEND, BACKEND, &txp, false),
            rx_ring: gt.grant(FRONTEND, BACKEND, &rxp, false),
        };
        // SAFETY: the pages are kept alive in `_rings` for the frontend's
        // lifetime and only accessed through rings (volatile) by us and the
        // backend's mapping.
        let (txs, rxs) = unsafe {
            (
                SharedRing::from_raw(txp.as_ptr(), PAGE_SIZE).expect("page"),
                SharedRing::from_raw(rxp.as_ptr(), PAGE_SIZE).expect("page"),
            )
        };
        let fe = Self {
            tx: TxFront::new(txs),
            rx: RxFront::new(rxs, NR_SLOTS_MIN),
            gt,
            _rings: [txp, rxp],
            rx_bufs: HashMap::new(),
            tx_grants: HashMap::new(),
            to_back,
            from_back,
            notifies: 0,
        };
        (fe, info)
    }

    fn kick(&mut self, notify: bool) {
        if notify {
            self.notifies += 1;
            self.to_back.notify();
        }
    }

    /// Queues one packet if the ring has room; returns false if not.
    pub fn send(&mut self, spec: &TxSpec) -> Result<bool> {
        let n = spec.frags.len();
        if n == 0 || n > NR_SLOTS_MIN {
            return Err(Error::TxTooManySlots);
        }
        let need = TxFront::<HostBarriers>::slots_needed(n, spec.gso.as_ref());
        if (self.tx.ring.free_requests() as usize) < need || self.tx.ids.available() < n {
            return Ok(false);
        }
        let mut frags = Vec::with_capacity(n);
        let mut pages = Vec::with_capacity(n);
        let mut pos = 0usize;
        for &(off, len) in &spec.frags {
            let page = Page::new();
            page.fill(0xee); // stale bytes around the packet must not leak
            page.write(off as usize, &spec.data[pos..pos + len as usize]);
            pos += len as usize;
            let gref = self.gt.grant(FRONTEND, BACKEND, &page, true);
            frags.push(TxFrag {
                gref,
                offset: off,
                len,
            });
            pages.push((page, gref));
        }
        let mut ids = [0u16; NR_SLOTS_MIN];
        if let Err(e) = self.tx.queue_packet(&frags, TxFlags(0), spec.gso, &mut ids) {
            for (_, g) in pages {
                let _ = self.gt.end_access(FRONTEND, g);
            }
            return Err(e);
        }
        for (i, p) in pages.into_iter().enumerate() {
            self.tx_grants.insert(ids[i], p);
        }
        let notify = self.tx.push();
        self.kick(notify);
        Ok(true)
    }

    /// Collects TX completions, ending the grants of completed slots.
    pub fn poll_tx(&mut self, out: &mut Vec<(u16, RspStatus)>) -> Result<()> {
        loop {
            while let Some(c) = self.tx.next_completion()? {
                let (_page, gref) = self.tx_grants.remove(&c.id).ok_or(Error::UnknownId)?;
                self.gt.end_access(FRONTEND, gref)?;
                out.push((c.id, c.status));
            }
            if !self.tx.ring.final_check_for_responses()? {
                return Ok(());
            }
        }
    }

    /// Posts RX buffers until the ring is full.
    pub fn fill_rx(&mut self) -> Result<()> {
        let mut posted = false;
        while !self.rx.ring.is_full() {
            let page = Page::new();
            let gref = self.gt.grant(FRONTEND, BACKEND, &page, false);
            let idx = self.rx.post(gref)?;
            self.rx_bufs.insert(idx, (page, gref));
            posted = true;
        }
        if posted {
            let notify = self.rx.push();
            self.kick(notify);
        }
        Ok(())
    }

    /// Collects received packets and their GSO extras (dropped ones are
    /// counted in `dropped`).
    pub fn poll_rx(
        &mut self,
        out: &mut Vec<Vec<u8>>,
        gso: &mut Vec<Option<Gso>>,
        dropped: &mut Vec<Error>,
    ) -> Result<()> {
        loop {
            while let Some(ev) = self.rx.poll()? {
                let (p, err) = match ev {
                    RxEvent::Packet(p) => (p, None),
                    RxEvent::Dropped(p, e) => (p, Some(e)),
                };
                if err.is_none() {
                    let mut data = Vec::with_capacity(p.len());
                    for f in p.frags() {
                        let (page, _) = &self.rx_bufs[&f.idx];
                        let mut b = vec![0u8; f.len as usize];
                        page.read(f.offset as usize, &mut b);
                        data.extend_from_slice(&b);
                    }
                    out.push(data);
                    gso.push(p.gso);
                }
                if let Some(e) = err {
                    dropped.push(e);
                }
                for i in 0..p.ring_slots {
                    let idx = p.first_idx.wrapping_add(i);
                    let (_page, gref) = self.rx_bufs.remove(&idx).ok_or(Error::RxNoBufferPosted)?;
                    self.gt.end_access(FRONTEND, gref)?;
                }
            }
            if !self.rx.ring.final_check_for_responses()? {
                return Ok(());
            }
        }
    }

    /// Grants currently held by the frontend for in-flight TX data.
    pub fn tx_in_flight(&self) -> usize {
        self.tx_grants.len()
    }
}

/// Counters kept by the backend.
#[derive(Debug, Default, Clone)]
pub struct BackendStats {
    /// Packets received on TX.
    pub tx_packets: u64,
    /// TX packets dropped, by reason.
    pub tx_dropped: Vec<Error>,
    /// Packets delivered on RX.
    pub rx_packets: u64,
    /// Notifications sent.
    pub notifies: u64,
}

/// The dom0 side.
pub struct Backend {
    grants: DomainGrants,
    /// TX queue.
    pub tx: TxBack<HostBarriers>,
    /// RX queue.
    pub rx: RxBack<HostBarriers>,
    ring_maps: Vec<Mapping>,
    pending_rx: VecDeque<(Vec<u8>, Option<Gso>)>,
    /// Most packets queued for RX before dropping (XSA-392: bounded queue).
    pub rx_queue_max: usize,
    /// Counters.
    pub stats: BackendStats,
    /// Notifies the frontend.
    pub to_front: EventChannel,
    /// Notifications from the frontend.
    pub from_front: EventChannel,
}

impl Backend {
    /// Maps the frontend's ring pages and attaches.
    pub fn connect(
        gt: GrantTable,
        info: ConnInfo,
        to_front: EventChannel,
        from_front: EventChannel,
    ) -> Result<Self> {
        let txm = gt.map(BACKEND, FRONTEND, info.tx_ring, false)?;
        let rxm = match gt.map(BACKEND, FRONTEND, info.rx_ring, false) {
            Ok(m) => m,
            Err(e) => {
                let _ = gt.unmap(BACKEND, txm.handle);
                return Err(e);
            }
        };
        // SAFETY: the mapped pages are kept alive by `ring_maps` for the
        // backend's lifetime and only accessed through rings (volatile).
        let (txs, rxs) = unsafe {
            (
                SharedRing::from_raw(txm.page.as_ptr(), PAGE_SIZE)?,
                SharedRing::from_raw(rxm.page.as_ptr(), PAGE_SIZE)?,
            )
        };
        let tx = TxBack::attach(txs);
        let rx = RxBack::attach(rxs);
        let (tx, rx) = match (tx, rx) {
            (Ok(t), Ok(r)) => (t, r),
            (Err(e), _) | (_, Err(e)) => {
                let _ = gt.unmap(BACKEND, txm.handle);
                let _ = gt.unmap(BACKEND, rxm.handle);
                return Err(e);
            }
        };
        Ok(Self {
            grants: DomainGrants::new(gt, BACKEND, FRONTEND),
            tx,
            rx,
            ring_maps: vec![txm, rxm],
            pending_rx: VecDeque::new(),
            rx_queue_max: 1024,
            stats: BackendStats::default(),
            to_front,
            from_front,
        })
    }

    fn copy_in(&self, f: &TxFrag, out: &mut Vec<u8>) -> Result<()> {
        let local = Page::new();
        self.grants.gt.copy(
            BACKEND,
            &CopyPtr::Gref {
                dom: FRONTEND,
                gref: f.gref,
                offset: f.offset as usize,
            },
            &CopyPtr::Local {
                page: local.clone(),
                offset: 0,
            },
            f.len as usize,
        )?;
        let mut b = vec![0u8; f.len as usize];
        local.read(0, &mut b);
        out.extend_from_slice(&b);
        Ok(())
    }

    /// Processes TX requests; an `Err` is fatal for the vif.
    pub fn poll_tx(&mut self) -> Result<()> {
        loop {
            while let Some(ev) = self.tx.poll()? {
                let (pkt, status) = match ev {
                    TxEvent::Packet(p) => {
                        let mut data = Vec::with_capacity(p.len());
                        let mut ok = Ok(());
                        for f in p.frags() {
                            ok = ok.and_then(|_| self.copy_in(&f, &mut data));
                        }
                        match ok {
                            Ok(()) => {
                                self.stats.tx_packets += 1;
                                if self.pending_rx.len() < self.rx_queue_max {
                                    self.pending_rx.push_back((data, p.gso));
                                }
                                (p, RspStatus::OKAY)
                            }
                            Err(e) => {
                                self.stats.tx_dropped.push(e);
                                (p, RspStatus::ERROR)
                            }
                        }
                    }
                    TxEvent::Dropped(p, e) => {
                        self.stats.tx_dropped.push(e);
                        (p, RspStatus::ERROR)
                    }
                    // The simulated backend keeps no multicast filter.
                    TxEvent::Mcast(p) => (p, RspStatus::OKAY),
                };
                self.tx.respond(&pkt, status)?;
                if self.tx.push() {
                    self.stats.notifies += 1;
                    self.to_front.notify();
                }
            }
            if !self.tx.ring.final_check_for_requests()? {
                return Ok(());
            }
        }
    }

    /// Delivers queued packets into posted RX buffers.
    pub fn flush_rx(&mut self) -> Result<()> {
        let mut pushed = false;
        loop {
            while let Some((pkt, gso)) = self.pending_rx.front() {
                let extras = RxExtras {
                    gso: *gso,
                    ..RxExtras::default()
                };
                let chunks: Vec<&[u8]> = pkt.chunks(PAGE_SIZE).collect();
                if chunks.is_empty() || chunks.len() > NR_SLOTS_MIN {
                    self.pending_rx.pop_front();
                    continue;
                }
                let mut bufs = [RxRequest::zeroed(); NR_SLOTS_MIN + 1];
                let bufs = &mut bufs[..RxBack::<HostBarriers>::slots_needed(chunks.len(), &extras)];
                if !self.rx.take_buffers(bufs)? {
                    break;
                }
                // With GSO, the second slot carries the extra segment.
                let data_bufs = bufs
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| extras.gso.is_none() || i != 1)
                    .map(|(_, b)| b);
                let mut outs = Vec::with_capacity(chunks.len());
                for (c, b) in chunks.iter().zip(data_bufs) {
                    let local = Page::new();
                    local.write(0, c);
                    self.grants.gt.copy(
                        BACKEND,
                        &CopyPtr::Local {
                            page: local,
                            offset: 0,
                        },
                        &CopyPtr::Gref {
                            dom: FRONTEND,
                            gref: b.gref(),
                            offset: 0,
                        },
                        c.len(),
                    )?;
                    outs.push(RxOut {
                        offset: 0,
                        len: c.len() as u16,
                    });
                }
                self.rx.respond(bufs, &outs, RxFlags(0), &extras)?;
                self.pending_rx.pop_front();
                self.stats.rx_packets += 1;
                pushed = true;
            }
            if pushed && self.rx.push() {
                self.stats.notifies += 1;
                self.to_front.notify();
            }
            pushed = false;
            // Wait for more buffers only while packets are queued.
            if self.pending_rx.is_empty() || !self.rx.ring.final_check_for_requests()? {
                return Ok(());
            }
        }
    }

    /// Packets waiting for RX buffers.
    pub fn rx_queued(&self) -> usize {
        self.pending_rx.len()
    }

    /// Unmaps the ring pages.
    pub fn disconnect(self) -> Result<()> {
        for m in &self.ring_maps {
            self.grants.gt.unmap(BACKEND, m.handle)?;
        }
        Ok(())
    }
}

/// Outcome of a two-domain run.
#[derive(Debug, Default)]
pub struct RunReport {
    /// TX completions seen by the frontend, in order.
    pub completions: Vec<(u16, RspStatus)>,
    /// Packets received by the frontend, in order.
    pub received: Vec<Vec<u8>>,
    /// GSO extra of each received packet.
    pub received_gso: Vec<Option<Gso>>,
    /// RX packets the frontend dropped.
    pub rx_dropped: Vec<Error>,
    /// Backend counters.
    pub backend: BackendStats,
    /// Fatal error on either side, if any.
    pub fatal: Option<(&'static str, Error)>,
    /// Frontend notifications sent.
    pub front_notifies: u64,
    /// Grants of the frontend left at the end (rings + posted RX buffers).
    pub front_grants_left: usize,
    /// Mappings left after the backend disconnected.
    pub mappings_left: usize,
}

/// Runs a frontend and a backend as two threads until every packet was
/// transmitted, completed and echoed back (or `timeout` passes).
pub fn run_pair(packets: Vec<TxSpec>, timeout: Duration) -> RunReport {
    let gt = GrantTable::new();
    let to_back = EventChannel::new();
    let to_front = EventChannel::new();
    let (mut fe, info) = Frontend::new(gt.clone(), to_back.clone(), to_front.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + timeout;

    let be_stop = stop.clone();
    let be_gt = gt.clone();
    let backend = std::thread::spawn(move || -> (BackendStats, Option<Error>) {
        let mut be = match Backend::connect(be_gt, info, to_front, to_back) {
            Ok(b) => b,
            Err(e) => return (BackendStats::default(), Some(e)),
        };
        let mut fatal = None;
        while !be_stop.load(Ordering::Acquire) {
            if let Err(e) = be.poll_tx().and_then(|_| be.flush_rx()) {
                fatal = Some(e);
                break;
            }
            be.from_front.wait(Duration::from_millis(5));
        }
        let stats = be.stats.clone();
        let _ = be.disconnect();
        (stats, fatal)
    });

    let mut rep = RunReport::default();
    let total = packets.len();
    let mut next = 0;
    let mut front = || -> Result<()> {
        fe.fill_rx()?;
        while Instant::now() < deadline {
            // At most 512 packets between sending and receiving: the
            // backend's queue (1024) then never overflows, however the two
            // threads are scheduled (an overflow drops, as a real backend).
            while next < total
                && next - (rep.received.len() + rep.rx_dropped.len()) < 512
                && fe.send(&packets[next])?
            {
                next += 1;
            }
            fe.poll_tx(&mut rep.completions)?;
            fe.poll_rx(
                &mut rep.received,
                &mut rep.received_gso,
                &mut rep.rx_dropped,
            )?;
            fe.fill_rx()?;
            if next == total
                && fe.tx_in_flight() == 0
                && rep.received.len() + rep.rx_dropped.len() >= total
            {
                break;
            }
            fe.from_back.wait(Duration::from_millis(5));
        }
        Ok(())
    };
    if let Err(e) = front() {
        rep.fatal = Some(("frontend", e));
    }
    stop.store(true, Ordering::Release);
    to_back_wake(&fe);
    let (stats, be_fatal) = backend.join().expect("backend thread panicked");
    if let (None, Some(e)) = (rep.fatal, be_fatal) {
        rep.fatal = Some(("backend", e));
    }
    rep.backend = stats;
    rep.front_notifies = fe.notifies;
    rep.front_grants_left = gt.grants_of(FRONTEND);
    rep.mappings_left = gt.mappings();
    rep
}

fn to_back_wake(fe: &Frontend) {
    fe.to_back.notify();
}
