//! Guest transmit (frontend -> backend packets on the TX ring).
//!
//! Backend side: [`TxBack`] assembles request chains (first slot, extra-info
//! segments, fragments) one slot at a time, each slot copied out of the ring
//! exactly once, and validates them. Frontend side: [`TxFront`] writes
//! packets as request chains and matches responses to outstanding ids.

use super::barrier::Barriers;
use super::error::{Error, Result};
use super::ring::{BackRing, FrontRing, SharedRing, TxRingKind};
use super::slots::IdPool;
use super::wire::{
    validate_extra, ExtraFlags, ExtraInfo, ExtraType, GrantRef, Gso, HashExtra, RspStatus, TxFlags,
    TxRequest, TxResponse, ETH_HLEN, MAX_TX_SIZE, NR_SLOTS_MIN, PAGE_SIZE,
};

/// Most extra-info segments one packet can carry (one per type).
pub const MAX_EXTRAS: usize = (ExtraType::MAX.0 - 1) as usize;

/// One data fragment of a TX packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFrag {
    /// Grant of the page holding the data.
    pub gref: GrantRef,
    /// Offset of the data in the page.
    pub offset: u16,
    /// Length of the data.
    pub len: u16,
}

/// A complete, validated TX request chain.
#[derive(Debug, Clone, Copy)]
pub struct TxPacket {
    slots: [TxRequest; NR_SLOTS_MIN],
    nr_slots: usize,
    nr_extras: usize,
    first_len: u16,
    /// GSO parameters, if a GSO extra was present.
    pub gso: Option<Gso>,
    /// Hash, if a hash extra was present.
    pub hash: Option<HashExtra>,
    /// Multicast address to add, if present.
    pub mcast_add: Option<[u8; 6]>,
    /// Multicast address to delete, if present.
    pub mcast_del: Option<[u8; 6]>,
}

impl TxPacket {
    fn new(first: TxRequest) -> Self {
        let mut slots = [TxRequest::zeroed(); NR_SLOTS_MIN];
        slots[0] = first;
        Self {
            slots,
            nr_slots: 1,
            nr_extras: 0,
            first_len: first.size(),
            gso: None,
            hash: None,
            mcast_add: None,
            mcast_del: None,
        }
    }
    /// The first request (its `size` is the packet length).
    pub fn first(&self) -> &TxRequest {
        &self.slots[0]
    }
    /// Flags of the first request (checksum offload bits).
    pub fn flags(&self) -> TxFlags {
        self.slots[0].flags()
    }
    /// Total packet length.
    pub fn len(&self) -> usize {
        usize::from(self.slots[0].size())
    }
    /// True for a zero-length packet (only ever in a dropped packet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of data slots.
    pub fn nr_frags(&self) -> usize {
        self.nr_slots
    }
    /// Ring slots used (data slots plus extra-info segments).
    pub fn ring_slots(&self) -> usize {
        self.nr_slots + self.nr_extras
    }
    /// The requests of the data slots, in order.
    pub fn requests(&self) -> &[TxRequest] {
        &self.slots[..self.nr_slots]
    }
    /// Data fragment `i`; the first fragment's length is the packet length
    /// minus the other fragments.
    pub fn frag(&self, i: usize) -> Option<TxFrag> {
        let r = self.requests().get(i)?;
        let len = if i == 0 { self.first_len } else { r.size() };
        Some(TxFrag {
            gref: r.gref(),
            offset: r.offset(),
            len,
        })
    }
    /// Data fragments, in order.
    pub fn frags(&self) -> impl Iterator<Item = TxFrag> + '_ {
        (0..self.nr_slots).filter_map(move |i| self.frag(i))
    }
    /// The responses to push for this packet, in ring order: the first
    /// request, a `NULL` for each extra segment, then each fragment
    /// (`ring_slots()` responses in all).
    pub fn responses(&self, status: RspStatus) -> impl Iterator<Item = TxResponse> + '_ {
        let first = core::iter::once(TxResponse::new(self.slots[0].id(), status));
        let extras = (0..self.nr_extras).map(|_| TxResponse::new(0, RspStatus::NULL));
        let rest = self.slots[1..self.nr_slots]
            .iter()
            .map(move |r| TxResponse::new(r.id(), status));
        first.chain(extras).chain(rest)
    }
}

/// Result of polling the TX ring on the backend.
#[derive(Debug, Clone, Copy)]
pub enum TxEvent {
    /// A valid packet.
    Packet(TxPacket),
    /// A well-formed chain carrying an unacceptable packet: answer every slot
    /// with `NETIF_RSP_ERROR` and carry on.
    Dropped(TxPacket, Error),
    /// A multicast filter update (a dummy request with an `MCAST_ADD` or
    /// `MCAST_DEL` extra, see [`TxPacket::mcast_add`]): no packet data.
    Mcast(TxPacket),
}

#[derive(Debug, Clone, Copy)]
enum State {
    Idle,
    Extras(TxPacket, u8),
    Frags(TxPacket),
    Failed(Error),
}

/// Assembles TX request chains read from a [`BackRing`].
///
/// Errors returned by [`TxAssembler::poll`] are fatal for the queue (the C
/// netback's `xenvif_fatal_tx_err`): the ring contents can no longer be
/// trusted, and every later poll returns the same error.
#[derive(Debug, Clone, Copy)]
pub struct TxAssembler {
    state: State,
}

impl Default for TxAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl TxAssembler {
    /// No chain in progress.
    pub fn new() -> Self {
        Self { state: State::Idle }
    }

    /// True once a fatal error was seen.
    pub fn failed(&self) -> Option<Error> {
        match self.state {
            State::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// Consumes requests until a chain is complete (`Ok(Some)`), the ring is
    /// empty mid-chain or between chains (`Ok(None)`: call again after the
    /// next notification), or the frontend broke the protocol (`Err`).
    pub fn poll<B: Barriers>(
        &mut self,
        ring: &mut BackRing<TxRingKind, B>,
    ) -> Result<Option<TxEvent>> {
        match self.step(ring) {
            Err(e) => {
                self.state = State::Failed(e);
                Err(e)
            }
            ok => ok,
        }
    }

    fn step<B: Barriers>(&mut self, ring: &mut BackRing<TxRingKind, B>) -> Result<Option<TxEvent>> {
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Idle => {
                    let Some(req) = ring.next_request()? else {
                        return Ok(None);
                    };
                    let pkt = TxPacket::new(req);
                    self.state = if req.flags().contains(TxFlags::EXTRA_INFO) {
                        State::Extras(pkt, 0)
                    } else if req.flags().contains(TxFlags::MORE_DATA) {
                        State::Frags(pkt)
                    } else {
                        return Ok(Some(self.finish(pkt)?));
                    };
                }
                State::Extras(mut pkt, mut seen) => {
                    let Some(req) = ring.next_request()? else {
                        return Ok(None);
                    };
                    let extra = req.as_extra();
                    if pkt.nr_extras == MAX_EXTRAS {
                        return Err(Error::ExtraTooMany);
                    }
                    validate_extra(&extra, &mut seen)?;
                    pkt.nr_extras += 1;
                    match extra.ty() {
                        ExtraType::GSO => pkt.gso = Some(extra.as_gso()),
                        ExtraType::HASH => pkt.hash = Some(extra.as_hash()),
                        ExtraType::MCAST_ADD => pkt.mcast_add = Some(extra.data()),
                        ExtraType::MCAST_DEL => pkt.mcast_del = Some(extra.data()),
                        _ => return Err(Error::ExtraBadType),
                    }
                    self.state = if extra.flags().contains(ExtraFlags::MORE) {
                        State::Extras(pkt, seen)
                    } else if pkt.flags().contains(TxFlags::MORE_DATA) {
                        State::Frags(pkt)
                    } else {
                        return Ok(Some(self.finish(pkt)?));
                    };
                }
                State::Frags(mut pkt) => {
                    let Some(req) = ring.next_request()? else {
                        return Ok(None);
                    };
                    if pkt.nr_slots == NR_SLOTS_MIN {
                        return Err(Error::TxTooManySlots);
                    }
                    if usize::from(req.offset()) + usize::from(req.size()) > PAGE_SIZE {
                        return Err(Error::TxSlotCrossesPage);
                    }
                    if pkt.first_len < req.size() {
                        return Err(Error::TxFirstSlotTooSmall);
                    }
                    pkt.first_len -= req.size();
                    pkt.slots[pkt.nr_slots] = req;
                    pkt.nr_slots += 1;
                    if req.flags().contains(TxFlags::MORE_DATA) {
                        self.state = State::Frags(pkt);
                    } else {
                        return Ok(Some(self.finish(pkt)?));
                    }
                }
            }
        }
    }

    fn finish(&mut self, pkt: TxPacket) -> Result<TxEvent> {
        self.state = State::Idle;
        let first = pkt.first();
        if usize::from(first.offset()) + usize::from(pkt.first_len) > PAGE_SIZE {
            return Err(Error::TxSlotCrossesPage);
        }
        if pkt.mcast_add.is_some() || pkt.mcast_del.is_some() {
            // netif.h: filter updates ride on dummy requests; one that also
            // carries a packet or both updates is answered with an error.
            if !pkt.is_empty()
                || pkt.nr_frags() != 1
                || pkt.mcast_add.is_some() == pkt.mcast_del.is_some()
            {
                return Ok(TxEvent::Dropped(pkt, Error::McastWithData));
            }
            return Ok(TxEvent::Mcast(pkt));
        }
        if pkt.is_empty() {
            return Ok(TxEvent::Dropped(pkt, Error::TxAllZeroLength));
        }
        if pkt.len() < ETH_HLEN {
            return Ok(TxEvent::Dropped(pkt, Error::TxPacketTooShort));
        }
        Ok(TxEvent::Packet(pkt))
    }
}

/// Backend end of a TX queue: ring plus chain assembler.
#[derive(Debug)]
pub struct TxBack<B: Barriers> {
    /// The ring.
    pub ring: BackRing<TxRingKind, B>,
    /// The chain assembler.
    pub asm: TxAssembler,
}

impl<B: Barriers> TxBack<B> {
    /// Attaches to a TX ring page initialised by the frontend.
    pub fn attach(sring: SharedRing<TxRingKind>) -> Result<Self> {
        Ok(Self {
            ring: BackRing::attach(sring)?,
            asm: TxAssembler::new(),
        })
    }
    /// Next packet (see [`TxAssembler::poll`]).
    pub fn poll(&mut self) -> Result<Option<TxEvent>> {
        self.asm.poll(&mut self.ring)
    }
    /// Queues the responses for a packet (all with `status`).
    pub fn respond(&mut self, pkt: &TxPacket, status: RspStatus) -> Result<()> {
        for r in pkt.responses(status) {
            self.ring.push_response(r)?;
        }
        Ok(())
    }
    /// Publishes responses; true if the frontend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_responses_and_check_notify()
    }
}

/// A completed transmit as seen by the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCompletion {
    /// Id of the request slot.
    pub id: u16,
    /// OKAY, ERROR or DROPPED.
    pub status: RspStatus,
}

/// Frontend end of a TX queue: ring plus id bookkeeping.
#[derive(Debug)]
pub struct TxFront<B: Barriers> {
    /// The ring.
    pub ring: FrontRing<TxRingKind, B>,
    /// Outstanding request ids (one per data slot).
    pub ids: IdPool<{ super::ring::TX_RING_SIZE as usize }>,
}

impl<B: Barriers> TxFront<B> {
    /// Initialises the TX ring page.
    pub fn new(sring: SharedRing<TxRingKind>) -> Self {
        Self {
            ring: FrontRing::new(sring),
            ids: IdPool::new(),
        }
    }

    /// Ring slots a packet of `nr_frags` fragments needs.
    pub fn slots_needed(nr_frags: usize, gso: Option<&Gso>) -> usize {
        nr_frags + usize::from(gso.is_some())
    }

    /// Writes one packet as a request chain (not yet published). The ids of
    /// the data slots are written to `ids_out[..frags.len()]`.
    pub fn queue_packet(
        &mut self,
        frags: &[TxFrag],
        flags: TxFlags,
        gso: Option<Gso>,
        ids_out: &mut [u16],
    ) -> Result<()> {
        if frags.is_empty() || frags.len() > NR_SLOTS_MIN || ids_out.len() < frags.len() {
            return Err(Error::TxTooManySlots);
        }
        let mut total = 0usize;
        for f in frags {
            if usize::from(f.offset) + usize::from(f.len) > PAGE_SIZE {
                return Err(Error::TxSlotCrossesPage);
            }
            total += usize::from(f.len);
        }
        if total > MAX_TX_SIZE {
            return Err(Error::TxPacketTooLarge);
        }
        if total < ETH_HLEN {
            return Err(Error::TxPacketTooShort);
        }
        let needed = Self::slots_needed(frags.len(), gso.as_ref());
        if (self.ring.free_requests() as usize) < needed {
            return Err(Error::RingFull);
        }
        if self.ids.available() < frags.len() {
            return Err(Error::IdsExhausted);
        }
        let base = flags.0 & (TxFlags::CSUM_BLANK.0 | TxFlags::DATA_VALIDATED.0);
        for (i, f) in frags.iter().enumerate() {
            let id = self.ids.alloc()?;
            ids_out[i] = id;
            let mut fl = if i == 0 { TxFlags(base) } else { TxFlags(0) };
            if i + 1 < frags.len() {
                fl = fl.with(TxFlags::MORE_DATA);
            }
            if i == 0 && gso.is_some() {
                fl = fl.with(TxFlags::EXTRA_INFO);
            }
            let size = if i == 0 { total as u16 } else { f.len };
            self.ring
                .push_request(TxRequest::new(f.gref, f.offset, fl, id, size))?;
            if let (0, Some(g)) = (i, gso) {
                let e = ExtraInfo::gso(g, ExtraFlags(0));
                self.ring.push_request(TxRequest::from_extra(&e))?;
            }
        }
        Ok(())
    }

    /// Writes a multicast filter update (netif.h's dummy request: no data,
    /// one `MCAST_ADD` or `MCAST_DEL` extra), not yet published. Returns the
    /// request's id, completed like a packet's.
    pub fn queue_mcast(&mut self, add: bool, addr: [u8; 6]) -> Result<u16> {
        if addr[0] & 1 == 0 {
            return Err(Error::McastNotMulticast);
        }
        if self.ring.free_requests() < 2 {
            return Err(Error::RingFull);
        }
        let id = self.ids.alloc()?;
        self.ring
            .push_request(TxRequest::new(0, 0, TxFlags::EXTRA_INFO, id, 0))?;
        let ty = if add {
            ExtraType::MCAST_ADD
        } else {
            ExtraType::MCAST_DEL
        };
        let e = ExtraInfo::mcast(ty, ExtraFlags(0), addr);
        self.ring.push_request(TxRequest::from_extra(&e))?;
        Ok(id)
    }

    /// Publishes queued requests; true if the backend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_requests_and_check_notify()
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES` on completions. `moderate`: the
    /// backend notifies once half the published requests in flight have
    /// completed rather than at the next completion, so a busy queue takes
    /// an event per half ring instead of one per packet. Completions only
    /// return our own bounce pages (never an skb), so reaping them late
    /// holds nothing back.
    pub fn final_check(&mut self, moderate: bool) -> Result<bool> {
        let after = if moderate { self.ring.published_outstanding().div_ceil(2) } else { 1 };
        self.ring.final_check_for_responses_after(after)
    }

    /// Next completed request slot. `NULL` responses (extra segments) are
    /// skipped; unknown or repeated ids and unknown statuses are errors.
    pub fn next_completion(&mut self) -> Result<Option<TxCompletion>> {
        while let Some(rsp) = self.ring.next_response()? {
            let status = rsp.status();
            if status == RspStatus::NULL {
                continue;
            }
            if status != RspStatus::OKAY
                && status != RspStatus::ERROR
                && status != RspStatus::DROPPED
            {
                return Err(Error::TxBadStatus);
            }
            self.ids.release(rsp.id())?;
            return Ok(Some(TxCompletion {
                id: rsp.id(),
                status,
            }));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::barrier::HostBarriers;
    use super::super::ring::tests::page;
    use super::super::wire::GsoType;
    use super::*;

    struct Rig {
        p: *mut u8,
        back: TxBack<HostBarriers>,
        prod: u32,
    }

    impl Rig {
        fn new() -> Self {
            let p = page();
            // SAFETY: `p` is a leaked page-aligned test page used only via rings.
            let s = unsafe { SharedRing::from_raw(p, PAGE_SIZE).unwrap() };
            let f = FrontRing::<TxRingKind, HostBarriers>::new(s);
            let _ = f;
            // SAFETY: as above.
            let s = unsafe { SharedRing::from_raw(p, PAGE_SIZE).unwrap() };
            Self {
                p,
                back: TxBack::attach(s).unwrap(),
                prod: 0,
            }
        }
        /// Writes raw requests as a hostile frontend would.
        fn write(&mut self, reqs: &[TxRequest]) {
            // SAFETY: as above.
            let s = unsafe { SharedRing::<TxRingKind>::from_raw(self.p, PAGE_SIZE).unwrap() };
            for r in reqs {
                s.write_req(self.prod, *r);
                self.prod += 1;
            }
            // SAFETY: req_prod at offset 0 of the test page.
            unsafe { self.p.cast::<u32>().write_volatile(self.prod) };
        }
    }

    const M: TxFlags = TxFlags::MORE_DATA;
    const X: TxFlags = TxFlags::EXTRA_INFO;
    const N: TxFlags = TxFlags(0);

    fn req(off: u16, fl: TxFlags, id: u16, size: u16) -> TxRequest {
        TxRequest::new(1, off, fl, id, size)
    }

    fn gso_slot(more: bool, size: u16, ty: GsoType) -> TxRequest {
        let fl = if more {
            ExtraFlags::MORE
        } else {
            ExtraFlags(0)
        };
        TxRequest::from_extra(&ExtraInfo::gso(
            Gso {
                size,
                ty,
                features: 0,
            },
            fl,
        ))
    }

    fn packet(r: &mut Rig) -> TxPacket {
        match r.back.poll().unwrap().unwrap() {
            TxEvent::Packet(p) => p,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn single_and_chain() {
        let mut r = Rig::new();
        r.write(&[req(0, N, 1, 60)]);
        let p = packet(&mut r);
        assert_eq!((p.len(), p.nr_frags(), p.ring_slots()), (60, 1, 1));
        r.write(&[req(100, M, 2, 3000), req(0, M, 3, 1000), req(0, N, 4, 0)]);
        let p = packet(&mut r);
        assert_eq!(p.nr_frags(), 3);
        let lens: std::vec::Vec<u16> = p.frags().map(|f| f.len).collect();
        assert_eq!(lens, [2000, 1000, 0]);
        assert_eq!(p.responses(RspStatus::OKAY).count(), 3);
    }

    #[test]
    fn incomplete_chain_waits_then_completes() {
        let mut r = Rig::new();
        r.write(&[req(0, M | X, 1, 3000)]);
        assert!(r.back.poll().unwrap().is_none());
        r.write(&[gso_slot(false, 1448, GsoType::TCPV4)]);
        assert!(r.back.poll().unwrap().is_none());
        r.write(&[req(0, N, 2, 1000)]);
        let p = packet(&mut r);
        assert_eq!(p.gso.unwrap().size, 1448);
        assert_eq!(p.ring_slots(), 3);
        let st: std::vec::Vec<RspStatus> =
            p.responses(RspStatus::OKAY).map(|x| x.status()).collect();
        assert_eq!(st, [RspStatus::OKAY, RspStatus::NULL, RspStatus::OKAY]);
    }

    impl core::ops::BitOr for TxFlags {
        type Output = TxFlags;
        fn bitor(self, o: TxFlags) -> TxFlags {
            self.with(o)
        }
    }

    fn fatal(reqs: &[TxRequest]) -> Error {
        let mut r = Rig::new();
        r.write(reqs);
        let e = r.back.poll().unwrap_err();
        assert_eq!(r.back.poll().unwrap_err(), e, "errors are sticky");
        e
    }

    fn dropped(reqs: &[TxRequest]) -> Error {
        let mut r = Rig::new();
        r.write(reqs);
        match r.back.poll().unwrap().unwrap() {
            TxEvent::Dropped(_, e) => e,
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn malformed_classes() {
        let mut many = std::vec![req(0, M, 0, 18 * 10)];
        for i in 1..NR_SLOTS_MIN as u16 {
            many.push(req(0, M, i, 10));
        }
        many.push(req(0, N, 99, 0));
        assert_eq!(fatal(&many), Error::TxTooManySlots);
        // exactly 18 is fine
        let mut ok = std::vec![req(0, M, 0, 18 * 10)];
        for i in 1..NR_SLOTS_MIN as u16 - 1 {
            ok.push(req(0, M, i, 10));
        }
        ok.push(req(0, N, 17, 10));
        let mut r = Rig::new();
        r.write(&ok);
        assert_eq!(packet(&mut r).nr_frags(), 18);

        assert_eq!(fatal(&[req(4000, N, 0, 200)]), Error::TxSlotCrossesPage);
        assert_eq!(
            fatal(&[req(0, M, 0, 200), req(4000, N, 1, 97)]),
            Error::TxSlotCrossesPage
        );
        assert_eq!(
            fatal(&[req(0, M, 0, 100), req(0, N, 1, 101)]),
            Error::TxFirstSlotTooSmall
        );
        assert_eq!(
            dropped(&[req(0, M, 0, 0), req(0, M, 1, 0), req(0, N, 2, 0)]),
            Error::TxAllZeroLength
        );
        assert_eq!(dropped(&[req(0, N, 0, 0)]), Error::TxAllZeroLength);
        assert_eq!(dropped(&[req(0, N, 0, 13)]), Error::TxPacketTooShort);
        assert_eq!(
            fatal(&[req(0, X, 0, 60), gso_slot(false, 0, GsoType::TCPV4)]),
            Error::GsoZeroSize
        );
        assert_eq!(
            fatal(&[req(0, X, 0, 60), gso_slot(false, 10, GsoType(3))]),
            Error::GsoBadType
        );
        assert_eq!(
            fatal(&[
                req(0, X, 0, 60),
                gso_slot(true, 10, GsoType::TCPV4),
                gso_slot(false, 10, GsoType::TCPV4)
            ]),
            Error::ExtraDuplicate
        );
        let none = TxRequest::from_extra(&ExtraInfo::new(ExtraType::NONE, ExtraFlags(0), [0; 6]));
        assert_eq!(fatal(&[req(0, X, 0, 60), none]), Error::ExtraBadType);
        let more_none = TxRequest::from_extra(&ExtraInfo::new(
            ExtraType::HASH,
            ExtraFlags::MORE,
            [0, 1, 0, 0, 0, 0],
        ));
        assert_eq!(
            fatal(&[req(0, X, 0, 60), more_none, more_none]),
            Error::ExtraDuplicate
        );
    }

    /// The hostile suite's layouts (netfront_opt hostile modes 15-18),
    /// each a legal packet the backend must deliver whole.
    #[test]
    fn hostile_suite_layouts_are_packets() {
        // XSA-432: 18 slots of 8 bytes, 144 bytes.
        let mut tiny = std::vec![req(0, M, 0, 144)];
        for i in 1..NR_SLOTS_MIN as u16 {
            tiny.push(req(8 * i, if i + 1 < NR_SLOTS_MIN as u16 { M } else { N }, i, 8));
        }
        // XSA-448: 60 bytes, then two zero-length slots.
        let zero_tail = [req(0, M, 0, 60), req(60, M, 1, 0), req(60, N, 2, 0)];
        // XSA-423: Ethernet, IPv4 and TCP headers in their own slots, the
        // rest after them; then the same with a GSO extra.
        let split = [req(0, M, 0, 1090), req(14, M, 1, 20), req(34, M, 2, 20), req(54, N, 3, 1036)];
        let split_gso = [
            req(0, M | X, 0, 5000),
            gso_slot(false, 1448, GsoType::TCPV4),
            req(14, M, 1, 20),
            req(34, M, 2, 20),
            req(54, M, 3, 4042),
            req(0, N, 4, 904),
        ];
        for (reqs, first, frags) in [(&tiny[..], 8, 18), (&zero_tail, 60, 3), (&split, 14, 4), (&split_gso, 14, 5)] {
            let mut r = Rig::new();
            r.write(reqs);
            let p = packet(&mut r);
            assert_eq!((p.frag(0).unwrap().len, p.nr_frags()), (first, frags));
            assert_eq!(p.frags().map(|f| usize::from(f.len)).sum::<usize>(), p.len());
        }
    }

    #[test]
    fn zero_length_fragments_are_legal() {
        let mut r = Rig::new();
        r.write(&[req(0, M, 0, 100), req(0, M, 1, 0), req(4096, N, 2, 0)]);
        let p = packet(&mut r);
        assert_eq!(p.frag(0).unwrap().len, 100);
        assert_eq!(p.nr_frags(), 3);
    }

    #[test]
    fn front_to_back() {
        let p = page();
        // SAFETY: test page shared by the two ends only through rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let mut f = TxFront::<HostBarriers>::new(a);
        let mut bk = TxBack::<HostBarriers>::attach(b).unwrap();
        let frags = [
            TxFrag {
                gref: 5,
                offset: 10,
                len: 1000,
            },
            TxFrag {
                gref: 6,
                offset: 0,
                len: 500,
            },
        ];
        let g = Gso {
            size: 1000,
            ty: GsoType::TCPV6,
            features: 0,
        };
        let mut ids = [0u16; 2];
        f.queue_packet(&frags, TxFlags::CSUM_BLANK, Some(g), &mut ids)
            .unwrap();
        assert!(f.push());
        let TxEvent::Packet(pkt) = bk.poll().unwrap().unwrap() else {
            panic!()
        };
        assert_eq!(pkt.frags().collect::<std::vec::Vec<_>>(), frags);
        assert_eq!(pkt.gso, Some(g));
        assert!(pkt.flags().contains(TxFlags::CSUM_BLANK));
        bk.respond(&pkt, RspStatus::OKAY).unwrap();
        assert!(bk.push());
        let mut done = std::vec::Vec::new();
        while let Some(c) = f.next_completion().unwrap() {
            done.push(c.id);
        }
        assert_eq!(done, ids);
        assert_eq!(f.ids.in_use(), 0);
    }

    #[test]
    fn front_rejects_hostile_responses() {
        let p = page();
        // SAFETY: test page shared by the two ends only through rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let mut f = TxFront::<HostBarriers>::new(a);
        let mut bk = BackRing::<TxRingKind, HostBarriers>::attach(b).unwrap();
        let frag = [TxFrag {
            gref: 1,
            offset: 0,
            len: 60,
        }];
        let mut ids = [0u16; 1];
        for _ in 0..4 {
            f.queue_packet(&frag, TxFlags(0), None, &mut ids).unwrap();
        }
        f.push();
        for _ in 0..4 {
            bk.next_request().unwrap();
        }
        bk.push_response(TxResponse::new(0, RspStatus::OKAY))
            .unwrap();
        bk.push_response(TxResponse::new(0, RspStatus::OKAY))
            .unwrap();
        bk.push_response(TxResponse::new(200, RspStatus::OKAY))
            .unwrap();
        bk.push_response(TxResponse::new(1, RspStatus(-7))).unwrap();
        bk.push_responses();
        assert!(f.next_completion().unwrap().is_some());
        assert_eq!(f.next_completion(), Err(Error::DuplicateResponse));
        assert_eq!(f.next_completion(), Err(Error::DuplicateResponse));
        assert_eq!(f.next_completion(), Err(Error::TxBadStatus));
    }

    fn mcast_slot(ty: ExtraType, addr: [u8; 6]) -> TxRequest {
        TxRequest::from_extra(&ExtraInfo::mcast(ty, ExtraFlags(0), addr))
    }

    #[test]
    fn multicast_filter_updates() {
        let g = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x07];
        let mut r = Rig::new();
        r.write(&[req(0, X, 5, 0), mcast_slot(ExtraType::MCAST_ADD, g)]);
        match r.back.poll().unwrap().unwrap() {
            TxEvent::Mcast(p) => {
                assert_eq!((p.mcast_add, p.mcast_del), (Some(g), None));
                assert_eq!(p.ring_slots(), 2);
            }
            e => panic!("{e:?}"),
        }
        // A dummy request that also carries data is refused, not fatal.
        r.write(&[req(0, X, 6, 60), mcast_slot(ExtraType::MCAST_DEL, g)]);
        assert!(matches!(
            r.back.poll().unwrap().unwrap(),
            TxEvent::Dropped(_, Error::McastWithData)
        ));
        // A unicast "group" is a malformed extra: fatal, as any bad extra.
        r.write(&[
            req(0, X, 7, 0),
            mcast_slot(ExtraType::MCAST_ADD, [2, 0, 0, 0, 0, 1]),
        ]);
        assert_eq!(r.back.poll().unwrap_err(), Error::McastNotMulticast);
    }

    #[test]
    fn frontend_writes_mcast_dummies() {
        let p = page();
        // SAFETY: test page shared by the two ends only through rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let mut front = TxFront::<HostBarriers>::new(a);
        let mut back = TxBack::<HostBarriers>::attach(b).unwrap();
        let g = [0x33, 0x33, 0, 0, 0, 1];
        assert_eq!(
            front.queue_mcast(true, [2; 6]),
            Err(Error::McastNotMulticast)
        );
        let id = front.queue_mcast(false, g).unwrap();
        front.push();
        let TxEvent::Mcast(pkt) = back.poll().unwrap().unwrap() else {
            panic!("not a filter update");
        };
        assert_eq!(pkt.mcast_del, Some(g));
        back.respond(&pkt, RspStatus::OKAY).unwrap();
        back.push();
        let c = front.next_completion().unwrap().unwrap();
        assert_eq!((c.id, c.status), (id, RspStatus::OKAY));
    }
}
