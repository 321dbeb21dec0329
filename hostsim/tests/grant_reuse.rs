//! Grant reuse between two domains, against a model: the frontend grants
//! pages and registers, unregisters and ends them in any order (including
//! hostile lists); the backend's control core and `grant_reuse` map and
//! unmap through the simulated grant table, and the data path looks grants
//! up and writes through the mappings.
//!
//! Checked after every step: the data path only ever reaches a live mapping
//! of the very grant it asked for, and only for grants the model says are
//! registered (never after their `DEL`); read-only registrations are never
//! handed out writable; the frontend cannot end a grant the backend maps.
//! At teardown every mapping is gone and every grant can be ended.
//!
//! Some uses outlast the lookup (a page posted to a NIC for DMA): such a
//! grant is in use until released. Its `DEL` is refused for that entry and
//! it stays mapped; a teardown while it is in use unmaps it only at the
//! last release.

use hostsim::{DomainGrants, GrantTable, Page, PageRef, BACKEND, FRONTEND};
use netif::{CtrlBackend, CtrlRequest, CtrlStatus, CtrlType, Error, Gref, GrefFlags};
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use zerocopy::{FromBytes, IntoBytes};

const QUEUES: usize = 2;
const LIMIT: usize = 8;
const PAGES: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    /// ADD on a queue of (page index, read-only) entries; the flag may not
    /// match how the page was granted.
    Add(u32, Vec<(usize, bool)>),
    /// ADD naming a grant that does not exist.
    AddBogus(u32),
    /// DEL of these pages on a queue (plus, maybe, a grant never added).
    Del(u32, Vec<usize>, bool),
    /// The data path writes to (or reads) the page behind a grant.
    Use(u32, usize),
    /// The frontend tries to end a grant.
    End(usize),
    /// The list page is not granted to the backend: any request fails.
    ListUngranted(u32),
    /// A use of the page that outlasts the lookup (a NIC's DMA) begins.
    Acquire(u32, usize),
    /// One such use ends.
    Release(u32, usize),
}

fn op() -> impl Strategy<Value = Op> {
    let q = 0u32..QUEUES as u32 + 1;
    let page = 0usize..PAGES;
    prop_oneof![
        3 => (q.clone(), prop::collection::vec((page.clone(), any::<bool>()), 1..6)).prop_map(|(q, l)| Op::Add(q, l)),
        1 => q.clone().prop_map(Op::AddBogus),
        2 => (q.clone(), prop::collection::vec(page.clone(), 1..4), any::<bool>()).prop_map(|(q, l, b)| Op::Del(q, l, b)),
        4 => (q.clone(), page.clone()).prop_map(|(q, p)| Op::Use(q, p)),
        1 => page.clone().prop_map(Op::End),
        1 => q.clone().prop_map(Op::ListUngranted),
        2 => (q.clone(), page.clone()).prop_map(|(q, p)| Op::Acquire(q, p)),
        2 => (q, page).prop_map(|(q, p)| Op::Release(q, p)),
    ]
}

struct World {
    gt: GrantTable,
    g: DomainGrants,
    be: CtrlBackend,
    pages: Vec<PageRef>,
    /// Each page's grant (None once ended) and whether it is read-only.
    grefs: Vec<(Option<u32>, bool)>,
    list: PageRef,
    list_ref: u32,
    /// The model: grants registered per queue, with their read-only flag.
    model: Vec<HashMap<u32, bool>>,
    /// Uses outlasting the lookup, per queue: grant -> (slot, uses).
    uses: Vec<HashMap<u32, (u16, usize)>>,
}

impl World {
    fn new() -> Self {
        let gt = GrantTable::new();
        let pages: Vec<PageRef> = (0..PAGES).map(|_| Page::new()).collect();
        let grefs = pages
            .iter()
            .enumerate()
            .map(|(i, p)| (Some(gt.grant(FRONTEND, BACKEND, p, i % 3 == 0)), i % 3 == 0))
            .collect();
        let list = Page::new();
        let list_ref = gt.grant(FRONTEND, BACKEND, &list, false);
        Self {
            g: DomainGrants::with_static_grants(gt.clone(), BACKEND, FRONTEND, QUEUES, LIMIT),
            be: CtrlBackend::new(QUEUES as u32),
            gt,
            pages,
            grefs,
            list,
            list_ref,
            model: vec![HashMap::new(); QUEUES],
            uses: vec![HashMap::new(); QUEUES],
        }
    }

    fn request(&mut self, ty: CtrlType, q: u32, list: u32, entries: &[Gref]) -> (CtrlStatus, u32) {
        let bytes: Vec<u8> = entries.iter().flat_map(|e| e.as_bytes().to_vec()).collect();
        self.list.write(0, &bytes);
        let (rsp, _) = self.be.handle(&CtrlRequest::new(1, ty, [q, list, entries.len() as u32]), &mut self.g);
        (rsp.status(), rsp.data())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn backend_never_reaches_a_page_it_should_not(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        for o in ops {
            match o {
                Op::Add(q, l) => {
                    let entries: Vec<Gref> = l.iter()
                        .map(|&(p, ro)| Gref::new(w.grefs[p].0.unwrap_or(9999), if ro { GrefFlags::READONLY } else { GrefFlags(0) }, 0))
                        .collect();
                    let (st, _) = w.request(CtrlType::ADD_GREF_MAPPING, q, w.list_ref, &entries);
                    // The model's verdict: all or nothing.
                    let qi = q as usize;
                    let mut seen = HashSet::new();
                    let ok = qi < QUEUES
                        && w.model[qi].len() + l.len() <= LIMIT
                        && l.iter().all(|&(p, ro)| {
                            let (g, granted_ro) = w.grefs[p];
                            g.is_some_and(|g| !w.model[qi].contains_key(&g) && seen.insert(g))
                                && (ro || !granted_ro)
                        });
                    prop_assert_eq!(st == CtrlStatus::SUCCESS, ok, "ADD {:?} on queue {}", l, q);
                    if ok {
                        for &(p, ro) in &l {
                            w.model[qi].insert(w.grefs[p].0.unwrap(), ro);
                        }
                    }
                }
                Op::AddBogus(q) => {
                    let (st, _) = w.request(CtrlType::ADD_GREF_MAPPING, q, w.list_ref, &[Gref::new(0xdead, GrefFlags(0), 0)]);
                    prop_assert_ne!(st, CtrlStatus::SUCCESS);
                }
                Op::Del(q, l, unknown) => {
                    let mut entries: Vec<Gref> = l.iter().filter_map(|&p| w.grefs[p].0).map(|g| Gref::new(g, GrefFlags(0), 0xffff)).collect();
                    if unknown {
                        entries.push(Gref::new(4242, GrefFlags(0), 0xffff));
                    }
                    if entries.is_empty() { continue; }
                    let (st, n) = w.request(CtrlType::DEL_GREF_MAPPING, q, w.list_ref, &entries);
                    let qi = q as usize;
                    if qi >= QUEUES {
                        prop_assert_ne!(st, CtrlStatus::SUCCESS);
                        continue;
                    }
                    prop_assert_eq!(st, CtrlStatus::SUCCESS);
                    let mut out = vec![0u8; entries.len() * 8];
                    w.list.read(0, &mut out);
                    let mut removed = 0;
                    for (e, c) in entries.iter().zip(out.chunks(8)) {
                        let a = Gref::read_from_bytes(c).unwrap();
                        // A grant in use is refused and stays registered.
                        let busy = w.uses[qi].get(&e.gref()).is_some_and(|u| u.1 > 0);
                        let was = !busy && w.model[qi].remove(&e.gref()).is_some();
                        prop_assert_eq!(a.status() == 0, was, "per-entry status for {}", e.gref());
                        removed += usize::from(was);
                    }
                    prop_assert_eq!(n as usize, removed);
                }
                Op::Use(q, p) => {
                    let Some(g) = w.grefs[p].0 else { continue };
                    let found = w.g.static_page(q as usize, g);
                    let registered = w.model.get(q as usize).and_then(|m| m.get(&g)).copied();
                    prop_assert_eq!(found.is_some(), registered.is_some(), "lookup of {} on queue {}", g, q);
                    if let (Some((hit, page)), Some(ro)) = (found, registered) {
                        prop_assert_eq!(hit.readonly, ro);
                        // The mapping is of this very page.
                        prop_assert_eq!(page.as_ptr(), w.pages[p].as_ptr());
                        if !hit.readonly {
                            page.write(0, &[0x5a; 4]);
                        }
                    }
                }
                Op::End(p) => {
                    let Some(g) = w.grefs[p].0 else { continue };
                    let mapped = w.model.iter().any(|m| m.contains_key(&g));
                    let r = w.gt.end_access(FRONTEND, g);
                    prop_assert_eq!(r.is_ok(), !mapped, "ending grant {}", g);
                    if mapped {
                        prop_assert_eq!(r, Err(Error::GrantStillMapped));
                    } else {
                        w.grefs[p].0 = None;
                    }
                }
                Op::ListUngranted(q) => {
                    let g = w.grefs[1].0.unwrap_or(1);
                    let (st, _) = w.request(CtrlType::ADD_GREF_MAPPING, q, 31337, &[Gref::new(g, GrefFlags(0), 0)]);
                    prop_assert_ne!(st, CtrlStatus::SUCCESS);
                }
                Op::Acquire(q, p) => {
                    let Some(g) = w.grefs[p].0 else { continue };
                    let qi = q as usize;
                    let Some((hit, _)) = w.g.static_page(qi, g) else { continue };
                    prop_assert!(w.g.acquire_static(qi, hit.slot), "acquiring the mapped slot of {}", g);
                    w.uses[qi].entry(g).or_insert((hit.slot, 0)).1 += 1;
                }
                Op::Release(q, p) => {
                    let Some(g) = w.grefs[p].0 else { continue };
                    let Some(u) = w.uses.get_mut(q as usize).and_then(|m| m.get_mut(&g)) else { continue };
                    if u.1 == 0 { continue; }
                    u.1 -= 1;
                    let slot = u.0;
                    w.g.release_static(q as usize, slot);
                }
            }
            let held: usize = w.model.iter().map(|m| m.len()).sum();
            prop_assert_eq!(w.gt.mappings(), held, "mappings held = registrations");
        }
        // Teardown with uses outstanding: only the pages in use stay
        // mapped, each until its last use is released.
        let busy: usize = w.uses.iter().map(|m| m.values().filter(|u| u.1 > 0).count()).sum();
        prop_assert_eq!(w.g.revoke_all_static_busy(), busy);
        prop_assert_eq!(w.gt.mappings(), busy, "pages in use stay mapped past teardown");
        for (qi, m) in w.uses.iter().enumerate() {
            for &(slot, n) in m.values() {
                for _ in 0..n {
                    w.g.release_static(qi, slot);
                }
            }
        }
        prop_assert_eq!(w.gt.mappings(), 0);
        for (g, _) in &w.grefs {
            if let Some(g) = g {
                prop_assert!(w.gt.end_access(FRONTEND, *g).is_ok());
            }
        }
    }
}
