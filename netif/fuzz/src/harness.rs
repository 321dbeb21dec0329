//! Fuzz harnesses shared by the cargo-fuzz targets and the stable-toolchain
//! random-input tests (`netif/tests/fuzz_harness.rs` includes this file).
//!
//! The input drives a hostile peer that controls the shared ring page: it
//! writes entries and indices between polls AND inside every read barrier
//! of the ring code (through [`FuzzBarriers`]), i.e. between the moment the
//! consumer reads an index and the moment it copies the entries. The side
//! under test must never panic, and whatever it accepts must be valid.

use netif::{
    Barriers, RspStatus, RxEvent, RxFront, SharedRing, TxBack, TxEvent, NR_SLOTS_MIN, PAGE_SIZE,
};
use std::cell::RefCell;
use std::sync::atomic::{fence, Ordering};

#[repr(C, align(4096))]
struct PageBuf([u8; PAGE_SIZE]);

struct Peer {
    page: *mut u8,
    input: Vec<u8>,
    pos: usize,
    /// Offset of the producer index the peer writes (0: req_prod, 8: rsp_prod).
    prod_off: usize,
    entry_size: usize,
}

thread_local! {
    static PEER: RefCell<Option<Peer>> = const { RefCell::new(None) };
}

impl Peer {
    fn byte(&mut self) -> Option<u8> {
        let b = self.input.get(self.pos).copied();
        self.pos += 1;
        b
    }
    fn poke(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let o = (off + i) % PAGE_SIZE;
            // SAFETY: `page` is the live harness page (set by `with_peer`),
            // `o < PAGE_SIZE`; byte writes are always aligned.
            unsafe { self.page.add(o).write_volatile(*b) };
        }
    }
    fn peek_u32(&self, off: usize) -> u32 {
        // SAFETY: as in `poke`; `off` is one of the 4-aligned header indices.
        unsafe { self.page.add(off).cast::<u32>().read_volatile() }
    }
    /// Applies one hostile action; returns false when the input is used up,
    /// and `Some(true)` in `poll` if the action asks the driver to poll.
    fn act(&mut self) -> Option<bool> {
        let op = self.byte()?;
        match op % 6 {
            0 => {
                let slot = self.byte()? as usize;
                let mut e = [0u8; 16];
                for b in e.iter_mut().take(self.entry_size) {
                    *b = self.byte()?;
                }
                self.poke(64 + slot * self.entry_size, &e[..self.entry_size]);
            }
            1 => {
                let p = self
                    .peek_u32(self.prod_off)
                    .wrapping_add(u32::from(self.byte()? % 32));
                self.poke(self.prod_off, &p.to_ne_bytes());
            }
            2 => {
                let v = [self.byte()?, self.byte()?, self.byte()?, self.byte()?];
                self.poke(self.prod_off, &v);
            }
            3 => {
                let off = usize::from(u16::from_ne_bytes([self.byte()?, self.byte()?]));
                let v = self.byte()?;
                self.poke(off, &[v]);
            }
            _ => return Some(true),
        }
        Some(false)
    }
}

fn with_peer<R>(f: impl FnOnce(&mut Peer) -> R) -> Option<R> {
    PEER.with(|p| p.borrow_mut().as_mut().map(f))
}

/// Barriers that let the hostile peer act inside every barrier.
pub struct FuzzBarriers;

impl Barriers for FuzzBarriers {
    fn rmb() {
        fence(Ordering::Acquire);
        with_peer(|p| p.act());
    }
    fn wmb() {
        fence(Ordering::Release);
    }
    fn mb() {
        fence(Ordering::SeqCst);
        with_peer(|p| p.act());
    }
}

fn setup(input: &[u8], prod_off: usize, entry_size: usize) -> *mut u8 {
    let page = Box::into_raw(Box::new(PageBuf([0; PAGE_SIZE]))).cast::<u8>();
    PEER.with(|p| {
        *p.borrow_mut() = Some(Peer {
            page,
            input: input.to_vec(),
            pos: 0,
            prod_off,
            entry_size,
        })
    });
    page
}

fn teardown(page: *mut u8) {
    PEER.with(|p| *p.borrow_mut() = None);
    // SAFETY: `page` came from `Box::into_raw` in `setup`; all rings over it
    // are dropped by the caller before teardown.
    drop(unsafe { Box::from_raw(page.cast::<PageBuf>()) });
}

/// Backend parsing a TX ring written by a hostile frontend.
pub fn backend_tx(input: &[u8]) -> u64 {
    let page = setup(input, 0, 12);
    let mut accepted = 0u64;
    {
        // The frontend initialises the page (well-behaved so far).
        // SAFETY: `page` is a live, page-aligned 4096-byte allocation used only
        // via rings and the peer's volatile writes until `teardown`.
        let front = unsafe { SharedRing::<netif::TxRingKind>::from_raw(page, PAGE_SIZE) }.unwrap();
        front.init();
        // SAFETY: as above.
        let sring = unsafe { SharedRing::from_raw(page, PAGE_SIZE) }.unwrap();
        let mut back = match TxBack::<FuzzBarriers>::attach(sring) {
            Ok(b) => b,
            Err(_) => {
                teardown(page);
                return 0;
            }
        };
        'outer: while let Some(poll) = with_peer(|p| p.act()).flatten() {
            if !poll {
                continue;
            }
            for _ in 0..64 {
                match back.poll() {
                    Ok(None) => break,
                    Ok(Some(TxEvent::Packet(p))) => {
                        assert!(p.nr_frags() >= 1 && p.nr_frags() <= NR_SLOTS_MIN);
                        assert!(p.len() >= 14);
                        let sum: usize = p.frags().map(|f| usize::from(f.len)).sum();
                        assert_eq!(sum, p.len());
                        for f in p.frags() {
                            assert!(usize::from(f.offset) + usize::from(f.len) <= PAGE_SIZE);
                        }
                        if let Some(g) = p.gso {
                            assert!(g.size > 0);
                        }
                        accepted += 1;
                        let _ = back.respond(&p, RspStatus::OKAY);
                        back.push();
                    }
                    Ok(Some(TxEvent::Mcast(p))) => {
                        assert!(p.is_empty() && p.nr_frags() == 1);
                        assert!(p.mcast_add.is_some() != p.mcast_del.is_some());
                        let _ = back.respond(&p, RspStatus::OKAY);
                        back.push();
                    }
                    Ok(Some(TxEvent::Dropped(p, _))) => {
                        let _ = back.respond(&p, RspStatus::ERROR);
                        back.push();
                    }
                    Err(e) => {
                        assert_eq!(back.poll().unwrap_err(), e, "errors are sticky");
                        break 'outer;
                    }
                }
            }
            let _ = back.ring.final_check_for_requests();
        }
    }
    teardown(page);
    accepted
}

/// Frontend parsing an RX ring answered by a hostile backend.
pub fn frontend_rx(input: &[u8]) -> u64 {
    let page = setup(input, 8, 8);
    let mut accepted = 0u64;
    {
        // SAFETY: as in `backend_tx`.
        let sring = unsafe { SharedRing::from_raw(page, PAGE_SIZE) }.unwrap();
        let mut front = RxFront::<FuzzBarriers>::new(sring, NR_SLOTS_MIN);
        for i in 0..256 {
            front.post(1000 + i).unwrap();
        }
        front.push();
        'outer: while let Some(poll) = with_peer(|p| p.act()).flatten() {
            if !poll {
                continue;
            }
            for _ in 0..64 {
                match front.poll() {
                    Ok(None) => break,
                    Ok(Some(RxEvent::Packet(p))) => {
                        assert!(p.frags().len() <= NR_SLOTS_MIN);
                        assert!(p.ring_slots as usize >= p.frags().len());
                        for f in p.frags() {
                            assert!(usize::from(f.offset) + usize::from(f.len) <= PAGE_SIZE);
                            assert_eq!(f.gref, 1000 + (f.idx & 255));
                        }
                        accepted += 1;
                        for _ in 0..p.ring_slots {
                            let _ = front.post(1000 + (front.ring.req_prod_pvt() & 255));
                        }
                        front.push();
                    }
                    Ok(Some(RxEvent::Dropped(p, _))) => {
                        for _ in 0..p.ring_slots {
                            let _ = front.post(1000 + (front.ring.req_prod_pvt() & 255));
                        }
                        front.push();
                    }
                    Err(e) => {
                        assert_eq!(front.poll().unwrap_err(), e, "errors are sticky");
                        break 'outer;
                    }
                }
            }
            let _ = front.ring.final_check_for_responses();
        }
    }
    teardown(page);
    accepted
}

/// Grants for the control harness: a few pages whose bytes come from the
/// input; maps and unmaps are counted so leaks are caught.
struct FuzzGrants {
    pages: Vec<[u8; PAGE_SIZE]>,
    mapped: Vec<(u32, netif::GrantRef)>,
    staged: Vec<(netif::GrantRef, bool)>,
}

impl netif::GrantOps for FuzzGrants {
    fn copy_from_grant(
        &mut self,
        gref: netif::GrantRef,
        offset: usize,
        buf: &mut [u8],
    ) -> netif::Result<()> {
        let p = self
            .pages
            .get(gref as usize)
            .ok_or(netif::Error::GrantBad)?;
        let end = offset
            .checked_add(buf.len())
            .ok_or(netif::Error::GrantOutOfPage)?;
        buf.copy_from_slice(p.get(offset..end).ok_or(netif::Error::GrantOutOfPage)?);
        Ok(())
    }
    fn copy_to_grant(
        &mut self,
        gref: netif::GrantRef,
        offset: usize,
        buf: &[u8],
    ) -> netif::Result<()> {
        let p = self
            .pages
            .get_mut(gref as usize)
            .ok_or(netif::Error::GrantBad)?;
        let end = offset
            .checked_add(buf.len())
            .ok_or(netif::Error::GrantOutOfPage)?;
        p.get_mut(offset..end)
            .ok_or(netif::Error::GrantOutOfPage)?
            .copy_from_slice(buf);
        Ok(())
    }
}

/// Static grants: `STATIC_LIMIT` per queue over 8 queues, mapped if the
/// grant is one of ours or close (a model of `grant_reuse`: staging, all
/// or nothing, duplicates refused, per-entry removal).
const STATIC_LIMIT: usize = 64;

impl netif::GrefStore for FuzzGrants {
    fn mapping_size(&self, _queue: u32) -> u32 {
        STATIC_LIMIT as u32
    }
    fn room(&self, queue: u32) -> u32 {
        let held = self.mapped.iter().filter(|m| m.0 == queue).count() + self.staged.len();
        (STATIC_LIMIT - held) as u32
    }
    fn stage(&mut self, queue: u32, gref: netif::GrantRef, readonly: bool) -> netif::Result<()> {
        if self.mapped.iter().any(|m| m.0 == queue && m.1 == gref) || self.staged.iter().any(|s| s.0 == gref) {
            return Err(netif::Error::CtrlGrefAlreadyMapped);
        }
        if self.room(queue) == 0 {
            return Err(netif::Error::CtrlGrefListBadSize);
        }
        self.staged.push((gref, readonly));
        Ok(())
    }
    fn commit(&mut self, queue: u32) -> netif::Result<()> {
        if self.staged.iter().any(|s| s.0 as usize >= self.pages.len() + 100) {
            return Err(netif::Error::GrantBad);
        }
        for (g, _) in std::mem::take(&mut self.staged) {
            self.mapped.push((queue, g));
        }
        Ok(())
    }
    fn abort(&mut self, _queue: u32) {
        self.staged.clear();
    }
    fn remove(&mut self, queue: u32, gref: netif::GrantRef) -> netif::CtrlStatus {
        match self.mapped.iter().position(|m| *m == (queue, gref)) {
            Some(i) => {
                self.mapped.swap_remove(i);
                netif::CtrlStatus::SUCCESS
            }
            None => netif::CtrlStatus::INVALID_PARAMETER,
        }
    }
}

/// Backend control-ring handling of arbitrary requests and granted tables
/// (XSA-270 class): the mapping table only ever holds valid queues, and
/// every grant mapping is accounted for.
pub fn backend_ctrl(input: &[u8]) -> u64 {
    let mut g = FuzzGrants {
        pages: vec![[0u8; PAGE_SIZE]; 2],
        mapped: Vec::new(),
        staged: Vec::new(),
    };
    let queues = 1 + u32::from(input.first().copied().unwrap_or(0) % 8);
    let mut be = netif::CtrlBackend::new(queues);
    let mut ok = 0;
    let mut it = input.iter().skip(1).copied();
    let word = |it: &mut dyn Iterator<Item = u8>| -> Option<u32> {
        // Small values are the interesting ones: bias towards them.
        let tag = it.next()?;
        Some(match tag % 4 {
            0 => u32::from(it.next()?),
            1 => u32::from(u16::from_ne_bytes([it.next()?, it.next()?])),
            2 => u32::from_ne_bytes([it.next()?, it.next()?, it.next()?, it.next()?]),
            _ => u32::from(tag >> 2) % 2,
        })
    };
    while let Some(op) = it.next() {
        if op & 0x80 != 0 {
            // Rewrite bytes of a granted page.
            let Some(page) = word(&mut it) else { break };
            let Some(off) = word(&mut it) else { break };
            let Some(v) = it.next() else { break };
            let p = &mut g.pages[page as usize % 2];
            p[off as usize % PAGE_SIZE] = v;
            continue;
        }
        let (Some(a), Some(b), Some(c)) = (word(&mut it), word(&mut it), word(&mut it)) else {
            break;
        };
        let req =
            netif::CtrlRequest::new(op.into(), netif::CtrlType(u16::from(op % 12)), [a, b, c]);
        let (rsp, err) = be.handle(&req, &mut g);
        assert_eq!(rsp.id(), u16::from(op));
        assert_eq!(rsp.status() == netif::CtrlStatus::SUCCESS, err.is_none());
        assert!(rsp.status().0 <= 3);
        assert!(be.mapping().len() <= netif::MAX_HASH_MAPPING_SIZE);
        assert!(be.mapping().iter().all(|&q| q < queues));
        assert!(g.staged.is_empty(), "an ADD left entries staged");
        assert!(g.mapped.iter().all(|m| m.0 < queues));
        if err.is_none() {
            ok += 1;
        }
    }
    ok
}

/// Static-grant lists (`ADD`/`DEL_GREF_MAPPING`) from a hostile frontend:
/// the list page's bytes (the input's first half, up to half a page), then
/// requests naming it with arbitrary queues and counts (the rest: short
/// inputs reach the requests too). An `ADD` maps all of its entries or
/// none; a `DEL` answers one status per entry and its count agrees with
/// them; nothing stays staged.
pub fn backend_gref_list(input: &[u8]) -> u64 {
    let mut g = FuzzGrants { pages: vec![[0u8; PAGE_SIZE]; 2], mapped: Vec::new(), staged: Vec::new() };
    let split = (input.len() / 2).min(PAGE_SIZE / 2);
    g.pages[0][..split].copy_from_slice(&input[..split]);
    let mut be = netif::CtrlBackend::new(4);
    let mut ok = 0;
    for (i, c) in input[split..].chunks(3).enumerate() {
        let [op, q, n] = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&1)];
        let ty = if op & 1 == 0 { netif::CtrlType::ADD_GREF_MAPPING } else { netif::CtrlType::DEL_GREF_MAPPING };
        let count = if op & 2 == 0 { u32::from(n) % 80 } else { u32::from(n) * 4 };
        let before = g.mapped.len();
        let lp = usize::from(op >> 7);
        let list_before = g.pages[lp];
        let req = netif::CtrlRequest::new(i as u16, ty, [u32::from(q % 6), u32::from(op >> 7), count]);
        let (rsp, err) = be.handle(&req, &mut g);
        assert_eq!(rsp.status() == netif::CtrlStatus::SUCCESS, err.is_none());
        assert!(g.staged.is_empty());
        if ty == netif::CtrlType::ADD_GREF_MAPPING {
            let added = g.mapped.len() - before;
            assert!(added == 0 || (err.is_none() && added == count as usize), "ADD is all or nothing");
        } else if err.is_none() {
            let removed = before - g.mapped.len();
            assert_eq!(rsp.data() as usize, removed);
            let statuses = (0..count as usize)
                .filter(|e| {
                    let b = &g.pages[lp][e * 8 + 6..e * 8 + 8];
                    u16::from_ne_bytes([b[0], b[1]]) == 0
                })
                .count();
            assert_eq!(statuses, removed, "per-entry statuses agree with the count");
            // Only the status fields changed.
            for e in 0..count as usize {
                assert_eq!(g.pages[lp][e * 8..e * 8 + 6], list_before[e * 8..e * 8 + 6]);
            }
        }
        if err.is_none() {
            ok += 1;
        }
    }
    ok
}

/// Finishing a partial checksum (netfront_opt, before an XDP program runs)
/// in a frame whose every byte the backend chose: never a panic, and a
/// frame it does not know comes back unchanged; one it does changes in the
/// checksum field only, which then checks.
pub fn frame_checksum(input: &[u8]) -> u64 {
    let mut frame = input.to_vec();
    let found = netif::l4_checksum_at(&frame);
    let done = netif::finish_partial_checksum(&mut frame);
    assert_eq!(found.is_some(), done);
    let Some(c) = found else {
        assert_eq!(frame, input);
        return 0;
    };
    assert!(c.start < c.end && c.end <= frame.len() && c.field + 2 <= c.end);
    assert_eq!(frame[..c.field], input[..c.field]);
    assert_eq!(frame[c.field + 2..], input[c.field + 2..]);
    // The receiver's check: the L4 sum with the pseudo-header's (what the
    // field held before) is all ones, or zero (the same in one's
    // complement; a UDP 0 sent as 0xffff sums the same).
    let sum = u32::from(netif::ones_complement_sum(&frame[c.start..c.end]))
        + u32::from(u16::from_be_bytes([input[c.field], input[c.field + 1]]));
    let sum = (sum & 0xffff) + (sum >> 16);
    assert!(sum == 0xffff || sum == 0, "checksum does not check");
    1
}
