//! Guest receive (backend -> frontend packets on the RX ring).
//!
//! The frontend posts one page per request, with the request id equal to the
//! ring slot; the backend answers each request in the same slot (netif.h:
//! frontends rely on it, since extra-info segments overlay responses).
//! Frontend side: [`RxFront`] assembles response chains, each slot copied
//! once, validating ids, statuses, offsets and chain length. Backend side:
//! [`RxBack`] takes posted buffers and writes response chains.

use super::barrier::Barriers;
use super::error::{Error, Result};
use super::ring::{BackRing, FrontRing, RxRingKind, SharedRing};
use super::wire::{
    validate_extra, ExtraFlags, ExtraInfo, ExtraType, GrantRef, Gso, HashExtra, RspStatus, RxFlags,
    RxRequest, RxResponse, NR_SLOTS_MIN, PAGE_SIZE,
};

/// Ring slots per RX ring page.
const SLOTS: usize = super::ring::RX_RING_SIZE as usize;

/// One received fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxFrag {
    /// Ring index of the slot (its buffer holds the data).
    pub idx: u32,
    /// Grant of the buffer (as posted by us, never as echoed by the peer).
    pub gref: GrantRef,
    /// Data offset in the page.
    pub offset: u16,
    /// Data length.
    pub len: u16,
}

/// A received packet: a validated response chain.
#[derive(Debug, Clone, Copy)]
pub struct RxPacket {
    frags: [RxFrag; NR_SLOTS_MIN],
    nr_frags: usize,
    nr_extras: usize,
    /// Ring index of the chain's first slot.
    pub first_idx: u32,
    /// Ring slots consumed (data and extras): buffers `first_idx..` to recycle.
    pub ring_slots: u32,
    /// Flags of the first response.
    pub flags: RxFlags,
    /// GSO parameters, if present.
    pub gso: Option<Gso>,
    /// Hash, if present.
    pub hash: Option<HashExtra>,
    /// XDP headroom the backend announced (0: none).
    pub xdp_headroom: u16,
}

impl RxPacket {
    fn new(first_idx: u32, flags: RxFlags) -> Self {
        Self {
            frags: [RxFrag::default(); NR_SLOTS_MIN],
            nr_frags: 0,
            nr_extras: 0,
            first_idx,
            ring_slots: 0,
            flags,
            gso: None,
            hash: None,
            xdp_headroom: 0,
        }
    }
    /// Data fragments.
    pub fn frags(&self) -> &[RxFrag] {
        &self.frags[..self.nr_frags]
    }
    /// Total length.
    pub fn len(&self) -> usize {
        self.frags().iter().map(|f| usize::from(f.len)).sum()
    }
    /// True if no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Result of polling the RX ring on the frontend.
#[derive(Debug, Clone, Copy)]
pub enum RxEvent {
    /// A valid packet.
    Packet(RxPacket),
    /// A complete chain that must be dropped (error status, bad fragment,
    /// too long); its buffers are still returned for recycling.
    Dropped(RxPacket, Error),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Extras(RxPacket, u8, Option<Error>),
    Frags(RxPacket, Option<Error>),
    Failed(Error),
}

/// Frontend end of an RX queue.
#[derive(Debug)]
pub struct RxFront<B: Barriers> {
    /// The ring.
    pub ring: FrontRing<RxRingKind, B>,
    grefs: [GrantRef; SLOTS],
    posted: [bool; SLOTS],
    state: State,
    max_slots: usize,
}

impl<B: Barriers> RxFront<B> {
    /// Initialises the RX ring page. Packets of more than `max_slots` data
    /// slots (at most `NR_SLOTS_MIN`) are dropped.
    pub fn new(sring: SharedRing<RxRingKind>, max_slots: usize) -> Self {
        Self {
            ring: FrontRing::new(sring),
            grefs: [0; SLOTS],
            posted: [false; SLOTS],
            state: State::Idle,
            max_slots: max_slots.clamp(1, NR_SLOTS_MIN),
        }
    }

    fn slot(&self, idx: u32) -> usize {
        (idx & (self.ring.size() - 1)) as usize
    }

    /// Posts a buffer page; returns the ring index (and id) used.
    pub fn post(&mut self, gref: GrantRef) -> Result<u32> {
        let idx = self.ring.req_prod_pvt();
        let s = self.slot(idx);
        self.ring.push_request(RxRequest::new(s as u16, gref))?;
        self.grefs[s] = gref;
        self.posted[s] = true;
        Ok(idx)
    }

    /// The grant posted at ring index `idx` (to recycle a consumed buffer).
    pub fn gref_at(&self, idx: u32) -> GrantRef {
        self.grefs[self.slot(idx)]
    }

    /// Buffers posted and not yet answered.
    pub fn posted(&self) -> u32 {
        self.ring.outstanding()
    }

    /// Publishes posted buffers; true if the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_requests_and_check_notify()
    }

    /// Buffers posted but not yet published (`push`).
    pub fn unpublished(&self) -> u32 {
        self.ring.unpublished()
    }

    /// Buffers the backend can see and has not answered yet.
    pub fn published_posted(&self) -> u32 {
        self.ring.published_outstanding()
    }

    /// True once a fatal error was seen.
    pub fn failed(&self) -> Option<Error> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Consumes one response slot: copies it once, checks that a buffer was
    /// posted there, and returns it with its ring index.
    fn take(&mut self) -> Result<Option<(u32, RxResponse)>> {
        let idx = self.ring.rsp_cons();
        let Some(rsp) = self.ring.next_response()? else {
            return Ok(None);
        };
        let s = self.slot(idx);
        if !self.posted[s] {
            return Err(Error::RxNoBufferPosted);
        }
        self.posted[s] = false;
        Ok(Some((idx, rsp)))
    }

    /// Next received packet. `Err` is fatal for the queue (the ring can no
    /// longer be trusted) and sticky.
    pub fn poll(&mut self) -> Result<Option<RxEvent>> {
        match self.step() {
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
            ok => ok,
        }
    }

    /// Records one data response (id already checked against its slot, status
    /// already >= `NETIF_RSP_DROPPED`); problems with the packet itself are
    /// noted in `err` and the chain goes on to its end.
    fn add_frag(&self, pkt: &mut RxPacket, idx: u32, rsp: &RxResponse, err: &mut Option<Error>) {
        pkt.ring_slots += 1;
        let st = rsp.status();
        if st < 0 {
            err.get_or_insert(Error::RxErrorStatus);
            return;
        }
        let len = st.unsigned_abs();
        if usize::from(rsp.offset()) + usize::from(len) > PAGE_SIZE {
            err.get_or_insert(Error::RxCrossesPage);
            return;
        }
        if pkt.nr_frags == self.max_slots {
            err.get_or_insert(Error::RxChainTooLong);
            return;
        }
        pkt.frags[pkt.nr_frags] = RxFrag {
            idx,
            gref: self.gref_at(idx),
            offset: rsp.offset(),
            len,
        };
        pkt.nr_frags += 1;
    }

    fn step(&mut self) -> Result<Option<RxEvent>> {
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Idle => {
                    let Some((idx, rsp)) = self.take()? else {
                        return Ok(None);
                    };
                    if rsp.id() != self.slot(idx) as u16 {
                        return Err(Error::RxIdSlotMismatch);
                    }
                    let mut pkt = RxPacket::new(idx, rsp.flags());
                    let mut err = None;
                    // An error status on the first slot: the packet is
                    // dropped, but its chain still runs to its end.
                    if rsp.status() < RspStatus::DROPPED.0 {
                        return Err(Error::RxBadStatus);
                    }
                    self.add_frag(&mut pkt, idx, &rsp, &mut err);
                    let fl = rsp.flags();
                    self.state = if fl.contains(RxFlags::EXTRA_INFO) {
                        State::Extras(pkt, 0, err)
                    } else if fl.contains(RxFlags::MORE_DATA) {
                        State::Frags(pkt, err)
                    } else {
                        return Ok(Some(self.finish(pkt, err)));
                    };
                }
                State::Extras(mut pkt, mut seen, mut err) => {
                    let Some((_idx, rsp)) = self.take()? else {
                        return Ok(None);
                    };
                    // Extras overlay the response (no id): only the slot counts.
                    pkt.ring_slots += 1;
                    pkt.nr_extras += 1;
                    if pkt.nr_extras > super::tx::MAX_EXTRAS {
                        return Err(Error::ExtraTooMany);
                    }
                    let extra: ExtraInfo = rsp.as_extra();
                    match validate_extra(&extra, &mut seen) {
                        Ok(()) => match extra.ty() {
                            ExtraType::GSO => pkt.gso = Some(extra.as_gso()),
                            ExtraType::HASH => pkt.hash = Some(extra.as_hash()),
                            ExtraType::XDP => pkt.xdp_headroom = extra.as_xdp_headroom(),
                            // Multicast control is TX-only.
                            _ => {
                                err.get_or_insert(Error::ExtraBadType);
                            }
                        },
                        Err(e) => {
                            err.get_or_insert(e);
                        }
                    }
                    self.state = if extra.flags().contains(ExtraFlags::MORE) {
                        State::Extras(pkt, seen, err)
                    } else if pkt.flags.contains(RxFlags::MORE_DATA) {
                        State::Frags(pkt, err)
                    } else {
                        return Ok(Some(self.finish(pkt, err)));
                    };
                }
                State::Frags(mut pkt, mut err) => {
                    let Some((idx, rsp)) = self.take()? else {
                        return Ok(None);
                    };
                    if rsp.id() != self.slot(idx) as u16 {
                        return Err(Error::RxIdSlotMismatch);
                    }
                    if rsp.status() < RspStatus::DROPPED.0 {
                        return Err(Error::RxBadStatus);
                    }
                    self.add_frag(&mut pkt, idx, &rsp, &mut err);
                    // An over-long chain ends here: waiting for its end could
                    // stall (no buffers left to answer); what follows is
                    // parsed as new packets, as Linux netfront does.
                    let too_long = err == Some(Error::RxChainTooLong);
                    if rsp.flags().contains(RxFlags::MORE_DATA) && !too_long {
                        self.state = State::Frags(pkt, err);
                    } else {
                        return Ok(Some(self.finish(pkt, err)));
                    }
                }
            }
        }
    }

    fn finish(&mut self, pkt: RxPacket, err: Option<Error>) -> RxEvent {
        self.state = State::Idle;
        match err {
            Some(e) => RxEvent::Dropped(pkt, e),
            None => RxEvent::Packet(pkt),
        }
    }
}

/// The extra-info segments of one guest-receive packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxExtras {
    /// GSO parameters.
    pub gso: Option<Gso>,
    /// XDP headroom left before the first fragment (0: no XDP extra).
    pub xdp_headroom: u16,
    /// The packet's hash, as configured over the control ring.
    pub hash: Option<HashExtra>,
}

impl RxExtras {
    /// Slots the extras take.
    pub fn count(&self) -> usize {
        usize::from(self.gso.is_some())
            + usize::from(self.xdp_headroom != 0)
            + usize::from(self.hash.is_some())
    }

    /// The extras as chained segments (`MORE` on all but the last), in
    /// type order; returns how many were written.
    fn encode(&self, out: &mut [ExtraInfo; 3]) -> usize {
        let mut n = 0;
        if let Some(g) = self.gso {
            out[n] = ExtraInfo::gso(g, ExtraFlags(0));
            n += 1;
        }
        if self.xdp_headroom != 0 {
            out[n] = ExtraInfo::xdp(self.xdp_headroom, ExtraFlags(0));
            n += 1;
        }
        if let Some(h) = self.hash {
            out[n] = ExtraInfo::hash(h, ExtraFlags(0));
            n += 1;
        }
        for e in out[..n.saturating_sub(1)].iter_mut() {
            *e = ExtraInfo::new(e.ty(), ExtraFlags::MORE, e.data());
        }
        n
    }
}

/// One fragment the backend delivers into a posted buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxOut {
    /// Offset in the buffer page.
    pub offset: u16,
    /// Length.
    pub len: u16,
}

/// Backend end of an RX queue.
#[derive(Debug)]
pub struct RxBack<B: Barriers> {
    /// The ring.
    pub ring: BackRing<RxRingKind, B>,
}

impl<B: Barriers> RxBack<B> {
    /// Attaches to an RX ring page initialised by the frontend.
    pub fn attach(sring: SharedRing<RxRingKind>) -> Result<Self> {
        Ok(Self {
            ring: BackRing::attach(sring)?,
        })
    }

    /// Buffers posted by the frontend and not yet consumed.
    pub fn available(&mut self) -> Result<u32> {
        self.ring.unconsumed_requests()
    }

    /// Ring slots a packet of `nr_frags` fragments with `extras` needs.
    pub fn slots_needed(nr_frags: usize, extras: &RxExtras) -> usize {
        nr_frags + extras.count()
    }

    /// Takes the buffers for one packet (`slots_needed` of them) into `out`;
    /// returns `Ok(false)`, consuming nothing, if not enough are posted.
    /// Each request is copied out of the ring once.
    pub fn take_buffers(&mut self, out: &mut [RxRequest]) -> Result<bool> {
        if (self.available()? as usize) < out.len() {
            return Ok(false);
        }
        for o in out.iter_mut() {
            *o = self.ring.next_request()?.ok_or(Error::RingFull)?;
        }
        Ok(true)
    }

    /// Writes the responses for a packet whose data was copied into the
    /// buffers taken by `take_buffers`: `bufs[0]` gets `frags[0]`, then one
    /// slot per extra (chained), then the remaining fragments, in order.
    pub fn respond(
        &mut self,
        bufs: &[RxRequest],
        frags: &[RxOut],
        flags: RxFlags,
        extras: &RxExtras,
    ) -> Result<()> {
        if frags.is_empty() || bufs.len() != Self::slots_needed(frags.len(), extras) {
            return Err(Error::RingFull);
        }
        let mut list = [ExtraInfo::new(ExtraType::NONE, ExtraFlags(0), [0; 6]); 3];
        let n = extras.encode(&mut list);
        let mut b = bufs.iter();
        for (i, f) in frags.iter().enumerate() {
            let req = b.next().ok_or(Error::RingFull)?;
            let mut fl = if i == 0 { flags } else { RxFlags(0) };
            if i + 1 < frags.len() {
                fl = fl.with(RxFlags::MORE_DATA);
            }
            if i == 0 && n > 0 {
                fl = fl.with(RxFlags::EXTRA_INFO);
            }
            self.ring
                .push_response(RxResponse::new(req.id(), f.offset, fl, f.len as i16))?;
            if i == 0 {
                for e in &list[..n] {
                    b.next().ok_or(Error::RingFull)?;
                    self.ring.push_response(RxResponse::from_extra(e))?;
                }
            }
        }
        Ok(())
    }

    /// Answers one taken buffer with an error status (nothing delivered).
    pub fn respond_error(&mut self, buf: &RxRequest, status: RspStatus) -> Result<()> {
        self.ring
            .push_response(RxResponse::new(buf.id(), 0, RxFlags(0), status.0))
    }

    /// Publishes responses; true if the frontend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_responses_and_check_notify()
    }
}

#[cfg(test)]
mod tests {
    use super::super::barrier::HostBarriers;
    use super::super::ring::tests::page;
    use super::super::wire::GsoType;
    use super::*;

    fn rig() -> (RxFront<HostBarriers>, BackRing<RxRingKind, HostBarriers>) {
        let p = page();
        // SAFETY: test page shared by the two ends only through rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let mut f = RxFront::new(a, NR_SLOTS_MIN);
        for i in 0..256 {
            f.post(1000 + i).unwrap();
        }
        f.push();
        (f, BackRing::attach(b).unwrap())
    }

    /// A hostile backend answering the next requests with raw responses.
    fn answer(b: &mut BackRing<RxRingKind, HostBarriers>, rsps: &[RxResponse]) {
        for r in rsps {
            b.next_request().unwrap().unwrap();
            b.push_response(*r).unwrap();
        }
        b.push_responses();
    }

    const M: RxFlags = RxFlags::MORE_DATA;

    #[test]
    fn chain_with_gso() {
        let (mut f, b) = rig();
        let mut back = RxBack { ring: b };
        let mut bufs = [RxRequest::zeroed(); 3];
        assert!(back.take_buffers(&mut bufs).unwrap());
        let g = Gso {
            size: 1448,
            ty: GsoType::TCPV4,
            features: 0,
        };
        let frags = [
            RxOut {
                offset: 0,
                len: 4096,
            },
            RxOut {
                offset: 0,
                len: 100,
            },
        ];
        let extras = RxExtras {
            gso: Some(g),
            ..RxExtras::default()
        };
        back.respond(&bufs, &frags, RxFlags::DATA_VALIDATED, &extras)
            .unwrap();
        back.push();
        let RxEvent::Packet(p) = f.poll().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(p.len(), 4196);
        assert_eq!(p.ring_slots, 3);
        assert_eq!(p.gso, Some(g));
        assert_eq!(p.frags()[0].gref, 1000);
        assert_eq!(p.frags()[1].gref, 1002);
        assert!(f.poll().unwrap().is_none());
    }

    #[test]
    fn chained_extras_and_xdp_headroom() {
        let (mut f, b) = rig();
        let mut back = RxBack { ring: b };
        let extras = RxExtras {
            gso: Some(Gso {
                size: 1400,
                ty: GsoType::TCPV6,
                features: 0,
            }),
            xdp_headroom: 256,
            hash: Some(HashExtra {
                ty: 3,
                algorithm: 1,
                value: 0xdead_beef,
            }),
        };
        let frags = [
            RxOut {
                offset: 256,
                len: 4096 - 256,
            },
            RxOut { offset: 0, len: 10 },
        ];
        let n = RxBack::<HostBarriers>::slots_needed(2, &extras);
        assert_eq!(n, 5);
        let mut bufs = [RxRequest::zeroed(); 5];
        assert!(back.take_buffers(&mut bufs).unwrap());
        assert_eq!(
            back.respond(&bufs[..4], &frags, RxFlags(0), &extras),
            Err(Error::RingFull)
        );
        back.respond(&bufs, &frags, RxFlags(0), &extras).unwrap();
        back.push();
        let RxEvent::Packet(p) = f.poll().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!((p.ring_slots, p.len()), (5, 4096 - 256 + 10));
        assert_eq!(
            (p.gso, p.hash, p.xdp_headroom),
            (extras.gso, extras.hash, 256)
        );
        assert_eq!(p.frags()[0].offset, 256);
        assert_eq!(
            p.frags()[1].gref,
            1004,
            "data resumes after the three extras"
        );
    }

    #[test]
    fn take_buffers_is_all_or_nothing() {
        // XSA-392 class: a packet needing more buffers than posted consumes
        // none of them (no slot held while waiting for more).
        let p = page();
        // SAFETY: test page shared by the two ends only through rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let mut f = RxFront::<HostBarriers>::new(a, NR_SLOTS_MIN);
        f.post(1).unwrap();
        f.post(2).unwrap();
        f.push();
        let mut back = RxBack::<HostBarriers>::attach(b).unwrap();
        let mut bufs = [RxRequest::zeroed(); 3];
        assert!(!back.take_buffers(&mut bufs).unwrap());
        assert_eq!(back.ring.req_cons(), 0);
        assert!(back.take_buffers(&mut bufs[..2]).unwrap());
        assert_eq!((bufs[0].gref(), bufs[1].gref()), (1, 2));
    }

    #[test]
    fn hostile_responses() {
        // id not matching its slot
        let (mut f, mut b) = rig();
        answer(&mut b, &[RxResponse::new(5, 0, RxFlags(0), 60)]);
        assert_eq!(f.poll().unwrap_err(), Error::RxIdSlotMismatch);
        assert_eq!(f.poll().unwrap_err(), Error::RxIdSlotMismatch);
        // status below DROPPED
        let (mut f, mut b) = rig();
        answer(&mut b, &[RxResponse::new(0, 0, RxFlags(0), -3)]);
        assert_eq!(f.poll().unwrap_err(), Error::RxBadStatus);
        // error status: dropped, not fatal
        let (mut f, mut b) = rig();
        answer(
            &mut b,
            &[
                RxResponse::new(0, 0, RxFlags(0), -1),
                RxResponse::new(1, 0, RxFlags(0), 60),
            ],
        );
        assert!(matches!(
            f.poll().unwrap().unwrap(),
            RxEvent::Dropped(_, Error::RxErrorStatus)
        ));
        assert!(matches!(f.poll().unwrap().unwrap(), RxEvent::Packet(_)));
        // crossing the page
        let (mut f, mut b) = rig();
        answer(&mut b, &[RxResponse::new(0, 4000, RxFlags(0), 200)]);
        assert!(matches!(
            f.poll().unwrap().unwrap(),
            RxEvent::Dropped(_, Error::RxCrossesPage)
        ));
        // over-long chain: dropped, all slots accounted for
        let (mut f, mut b) = rig();
        let mut rs = std::vec::Vec::new();
        for i in 0..30u16 {
            let fl = if i < 29 { M } else { RxFlags(0) };
            rs.push(RxResponse::new(i, 0, fl, 10));
        }
        answer(&mut b, &rs);
        let RxEvent::Dropped(p, Error::RxChainTooLong) = f.poll().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(p.ring_slots as usize, NR_SLOTS_MIN + 1);
        // The tail is parsed as a new packet; every slot is accounted for.
        let RxEvent::Packet(p2) = f.poll().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(p2.first_idx, p.first_idx + p.ring_slots);
        assert_eq!(p.ring_slots + p2.ring_slots, 30);
        // A chain that never ends cannot stall the frontend.
        let (mut f, mut b) = rig();
        let rs: std::vec::Vec<RxResponse> =
            (0..256u16).map(|i| RxResponse::new(i, 0, M, 10)).collect();
        answer(&mut b, &rs);
        let mut slots = 0;
        while let Some(ev) = f.poll().unwrap() {
            let (RxEvent::Packet(p) | RxEvent::Dropped(p, _)) = ev;
            slots += p.ring_slots;
        }
        assert_eq!(slots as usize, 256 - 256 % (NR_SLOTS_MIN + 1));
        // bad extra type
        let (mut f, mut b) = rig();
        let bad = ExtraInfo::new(ExtraType(9), ExtraFlags(0), [0; 6]);
        answer(
            &mut b,
            &[
                RxResponse::new(0, 0, RxFlags::EXTRA_INFO, 60),
                RxResponse::from_extra(&bad),
            ],
        );
        assert!(matches!(
            f.poll().unwrap().unwrap(),
            RxEvent::Dropped(_, Error::ExtraBadType)
        ));
    }
}
