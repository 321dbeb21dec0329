//! Hostile peers: garbage in the shared pages must give typed errors (or be
//! handled as dropped packets), never a panic, hang or out-of-range state.

use hostsim::{
    Backend, ConnInfo, DomainGrants, EventChannel, GrantTable, Page, PageRef, BACKEND, FRONTEND,
};
use netif::{
    BackRing, CtrlBackend, CtrlRequest, CtrlType, Error, GrantOps, HostBarriers, RxFront,
    RxRingKind, SharedRing, TxBack, TxEvent, TxFlags, TxRequest, TxRingKind, NR_SLOTS_MIN,
    PAGE_SIZE,
};
use proptest::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ring<K: netif::RingKind>(p: &PageRef) -> SharedRing<K> {
    // SAFETY: `p` outlives the ring in every test below (held by the test),
    // and is only accessed through volatile operations.
    unsafe { SharedRing::from_raw(p.as_ptr(), PAGE_SIZE).unwrap() }
}

/// Polls a backend TX queue over a garbage page; returns the first fatal
/// error. Every packet produced is fully validated.
fn drain_tx(back: &mut TxBack<HostBarriers>) -> Option<Error> {
    for _ in 0..1000 {
        match back.poll() {
            Ok(None) => return None,
            Ok(Some(TxEvent::Packet(p))) => {
                assert!(p.nr_frags() <= NR_SLOTS_MIN);
                assert!(p.len() >= 14);
                let sum: usize = p.frags().map(|f| f.len as usize).sum();
                assert_eq!(sum, p.len());
                for f in p.frags() {
                    assert!(f.offset as usize + f.len as usize <= PAGE_SIZE);
                }
                if back.respond(&p, netif::RspStatus::OKAY).is_err() {
                    return None;
                }
                back.push();
            }
            Ok(Some(TxEvent::Mcast(p))) => {
                assert!(p.is_empty() && p.nr_frags() == 1);
                assert!(p.mcast_add.is_some() != p.mcast_del.is_some());
                let _ = back.respond(&p, netif::RspStatus::OKAY);
                back.push();
            }
            Ok(Some(TxEvent::Dropped(p, _))) => {
                let _ = back.respond(&p, netif::RspStatus::ERROR);
                back.push();
            }
            Err(e) => {
                // Sticky.
                assert_eq!(back.poll().unwrap_err(), e);
                return Some(e);
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A TX page of arbitrary bytes, then arbitrary rewrites between polls.
    #[test]
    fn backend_tx_garbage_page(
        init in prop::collection::vec(any::<u8>(), PAGE_SIZE),
        rewrites in prop::collection::vec((0usize..PAGE_SIZE, any::<u32>()), 0..64),
        prod in 0u32..300,
    ) {
        let p = Page::new();
        p.write(0, &init);
        // Start with a plausible index so parsing actually runs most cases.
        p.write(0, &prod.to_ne_bytes());
        p.write(8, &0u32.to_ne_bytes());
        let mut back = match TxBack::<HostBarriers>::attach(ring(&p)) {
            Ok(b) => b,
            Err(e) => { prop_assert_eq!(e, Error::RingOverflow); return Ok(()); }
        };
        if drain_tx(&mut back).is_some() { return Ok(()); }
        for (off, v) in rewrites {
            let off = off & !3;
            p.write(off, &v.to_ne_bytes());
            if drain_tx(&mut back).is_some() { break; }
        }
    }

    /// Frontend RX over arbitrary backend responses.
    #[test]
    fn frontend_rx_garbage(
        rsps in prop::collection::vec(any::<[u8; 8]>(), 1..256),
        prod_delta in any::<u32>(),
    ) {
        let p = Page::new();
        let mut fe = RxFront::<HostBarriers>::new(ring::<RxRingKind>(&p), NR_SLOTS_MIN);
        for i in 0..256 { fe.post(100 + i).unwrap(); }
        fe.push();
        for (i, r) in rsps.iter().enumerate() {
            p.write(64 + 8 * i, r);
        }
        p.write(8, &(rsps.len() as u32).wrapping_add(prod_delta % 4).to_ne_bytes());
        if prod_delta % 7 == 0 { p.write(8, &prod_delta.to_ne_bytes()); }
        for _ in 0..300 {
            match fe.poll() {
                Ok(None) => break,
                Ok(Some(netif::RxEvent::Packet(pk))) => {
                    prop_assert!(pk.frags().len() <= NR_SLOTS_MIN);
                    for f in pk.frags() {
                        prop_assert!(f.offset as usize + f.len as usize <= PAGE_SIZE);
                        prop_assert_eq!(f.gref, 100 + (f.idx & 255));
                    }
                }
                Ok(Some(netif::RxEvent::Dropped(..))) => {}
                Err(e) => { prop_assert_eq!(fe.poll().unwrap_err(), e); break; }
            }
        }
    }

    /// Control requests with arbitrary words; grants that may or may not exist.
    #[test]
    fn ctrl_garbage(reqs in prop::collection::vec((0u16..14, any::<[u32; 3]>(), 0u8..4), 1..40)) {
        let gt = GrantTable::new();
        let page = Page::new();
        page.write(0, &[1u8; PAGE_SIZE]);
        let real = gt.grant(FRONTEND, BACKEND, &page, false);
        let mut g = DomainGrants::with_static_grants(gt.clone(), BACKEND, FRONTEND, 4, 64);
        let mut be = CtrlBackend::new(4);
        for (ty, mut d, which) in reqs {
            if which == 0 { d[0] = real; }
            if which == 1 { d[1] = real; d[0] %= 5; d[2] %= 600; }
            if which == 2 { d[1] %= 200; d[2] %= 200; }
            let (rsp, err) = be.handle(&CtrlRequest::new(7, CtrlType(ty), d), &mut g);
            prop_assert_eq!(rsp.id(), 7);
            prop_assert_eq!(rsp.status().0 == 0, err.is_none());
            prop_assert!(be.mapping().iter().all(|&q| q < 4));
            prop_assert!(be.mapping().len() <= 128);
        }
        // Everything mapped is accounted for.
        let held: usize = g.statics.iter().map(|q| q.table.mapped()).sum();
        prop_assert_eq!(held, gt.mappings());
        g.revoke_all_static();
        prop_assert_eq!(gt.mappings(), 0);
    }
}

/// A frontend thread scribbling over the TX ring page (entries and index)
/// while the backend processes it through the grant table: grant copies of
/// junk grefs fail cleanly (XSA-362), malformed chains give typed errors.
#[test]
fn backend_vs_scribbling_frontend() {
    for round in 0..4u64 {
        let gt = GrantTable::new();
        let txp = Page::new();
        let rxp = Page::new();
        let info = ConnInfo {
            tx_ring: gt.grant(FRONTEND, BACKEND, &txp, false),
            rx_ring: gt.grant(FRONTEND, BACKEND, &rxp, false),
        };
        // A well-behaved init of both pages, then chaos on TX.
        let _ = netif::FrontRing::<TxRingKind, HostBarriers>::new(ring(&txp));
        let _ = netif::FrontRing::<RxRingKind, HostBarriers>::new(ring(&rxp));
        let data = Page::new();
        let good = gt.grant(FRONTEND, BACKEND, &data, true);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let tx2 = txp.clone();
        let scribbler = std::thread::spawn(move || {
            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ round;
            let mut prod = 0u32;
            while !s2.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slot = (x as usize >> 8) % 256;
                let r = match x % 5 {
                    0 => TxRequest::new(good, (x >> 20) as u16 % 4096, TxFlags(0), 1, 60),
                    1 => TxRequest::new(good, 0, TxFlags::MORE_DATA, 2, (x >> 30) as u16),
                    _ => TxRequest::new(
                        (x >> 40) as u32,
                        (x >> 16) as u16,
                        TxFlags((x >> 3) as u16 & 15),
                        3,
                        (x >> 48) as u16,
                    ),
                };
                let b = zerocopy::IntoBytes::as_bytes(&r).to_vec();
                tx2.write(64 + slot * 12, &b);
                if x.is_multiple_of(3) {
                    prod = if x.is_multiple_of(97) {
                        x as u32
                    } else {
                        prod.wrapping_add((x >> 5) as u32 % 8)
                    };
                    tx2.write(0, &prod.to_ne_bytes());
                }
            }
        });
        let mut be =
            Backend::connect(gt.clone(), info, EventChannel::new(), EventChannel::new()).unwrap();
        let t0 = Instant::now();
        let mut fatal = None;
        while t0.elapsed() < Duration::from_millis(300) {
            if let Err(e) = be.poll_tx() {
                fatal = Some(e);
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        scribbler.join().unwrap();
        // Either the backend survived, or it stopped on a ring-protocol
        // error; a bad grant drops one packet and is never fatal.
        if let Some(e) = fatal {
            use netif::Error::{GrantBad, GrantOutOfPage, GrantReadOnly, GrantStillMapped};
            assert!(
                !matches!(e, GrantBad | GrantReadOnly | GrantOutOfPage | GrantStillMapped),
                "a grant error stopped the backend: {e:?}"
            );
        }
        be.disconnect().unwrap();
        assert_eq!(gt.mappings(), 0);
    }
}

/// XSA-39: a producer index far beyond the ring is refused at attach and at
/// runtime, without consuming anything.
#[test]
fn producer_index_beyond_ring() {
    let p = Page::new();
    let _ = netif::FrontRing::<TxRingKind, HostBarriers>::new(ring(&p));
    let mut back = BackRing::<TxRingKind, HostBarriers>::attach(ring(&p)).unwrap();
    p.write(0, &100_000u32.to_ne_bytes());
    assert_eq!(back.next_request(), Err(Error::RingOverflow));
    assert_eq!(back.req_cons(), 0);
}

/// XSA-396: the frontend cannot end a grant the backend still maps; XSA-362:
/// a map of a grant that does not exist is a typed error.
#[test]
fn grant_lifetime_and_bad_refs() {
    let gt = GrantTable::new();
    let page = Page::new();
    let r = gt.grant(FRONTEND, BACKEND, &page, false);
    let mut g = DomainGrants::new(gt.clone(), BACKEND, FRONTEND);
    let h = g.map_grant(r, false).unwrap();
    assert_eq!(gt.end_access(FRONTEND, r), Err(Error::GrantStillMapped));
    g.unmap_grant(h).unwrap();
    gt.end_access(FRONTEND, r).unwrap();
    assert_eq!(g.map_grant(r, false), Err(Error::GrantBad));
    assert_eq!(g.map_grant(12345, true), Err(Error::GrantBad));
    let mut buf = [0u8; 8];
    assert_eq!(g.copy_from_grant(r, 0, &mut buf), Err(Error::GrantBad));
}

fn connected() -> (hostsim::Frontend, Backend, GrantTable) {
    let gt = GrantTable::new();
    let (fe, info) = hostsim::Frontend::new(gt.clone(), EventChannel::new(), EventChannel::new());
    let be = Backend::connect(gt.clone(), info, EventChannel::new(), EventChannel::new()).unwrap();
    (fe, be, gt)
}

/// XSA-362: TX requests naming grants that do not exist (or are not granted
/// to the backend) are answered with an error status; the vif keeps working.
#[test]
fn tx_with_bogus_grants_is_answered_not_fatal() {
    let (mut fe, mut be, gt) = connected();
    let other = Page::new();
    let not_ours = gt.grant(FRONTEND, 7, &other, true); // granted to another domain
    for gref in [9999, not_ours] {
        let frag = [netif::TxFrag {
            gref,
            offset: 0,
            len: 60,
        }];
        let mut ids = [0u16; 1];
        fe.tx
            .queue_packet(&frag, TxFlags(0), None, &mut ids)
            .unwrap();
        fe.tx.push();
        be.poll_tx().unwrap();
        let c = fe.tx.next_completion().unwrap().unwrap();
        assert_eq!((c.id, c.status), (ids[0], netif::RspStatus::ERROR));
    }
    assert_eq!(be.stats.tx_dropped, [Error::GrantBad, Error::GrantBad]);
    // A good packet still goes through.
    assert!(fe.send(&hostsim::TxSpec::simple(vec![1; 100])).unwrap());
    be.poll_tx().unwrap();
    let mut done = Vec::new();
    fe.poll_tx(&mut done).unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].1, netif::RspStatus::OKAY);
}

/// XSA-392: a guest that never posts RX buffers cannot make the backend
/// queue packets without bound.
#[test]
fn rx_queue_bounded_when_guest_posts_no_buffers() {
    let (mut fe, mut be, _gt) = connected();
    be.rx_queue_max = 8;
    let mut done = Vec::new();
    for i in 0..40u8 {
        while !fe.send(&hostsim::TxSpec::simple(vec![i; 64])).unwrap() {
            be.poll_tx().unwrap();
            be.flush_rx().unwrap();
            fe.poll_tx(&mut done).unwrap();
        }
    }
    be.poll_tx().unwrap();
    be.flush_rx().unwrap();
    fe.poll_tx(&mut done).unwrap();
    assert_eq!(done.len(), 40, "every TX request answered");
    assert_eq!(be.rx_queued(), 8);
    // Once buffers arrive, the queued packets are delivered.
    fe.fill_rx().unwrap();
    be.flush_rx().unwrap();
    let (mut got, mut gso, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    fe.poll_rx(&mut got, &mut gso, &mut dropped).unwrap();
    assert_eq!(got.len(), 8);
    assert_eq!(be.rx_queued(), 0);
}
