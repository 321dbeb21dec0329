//! The control ring between two domains: hash configuration and static
//! grant mappings through the simulated grant table.

use hostsim::{DomainGrants, GrantTable, Page, BACKEND, FRONTEND};
use netif::{
    CtrlBack, CtrlFront, CtrlRequest, CtrlResponse, CtrlStatus, CtrlType, Error, Gref, GrefFlags,
    HashAlgorithm, HostBarriers, SharedRing, PAGE_SIZE,
};
use zerocopy::{FromBytes, IntoBytes};

struct Rig {
    gt: GrantTable,
    front: CtrlFront<HostBarriers>,
    back: CtrlBack<HostBarriers>,
    grants: DomainGrants,
    _page: hostsim::PageRef,
}

impl Rig {
    fn new() -> Self {
        let gt = GrantTable::new();
        let page = Page::new();
        let gref = gt.grant(FRONTEND, BACKEND, &page, false);
        // SAFETY: `page` lives in the rig as long as both rings.
        let fs = unsafe { SharedRing::from_raw(page.as_ptr(), PAGE_SIZE) }.unwrap();
        let front = CtrlFront::new(fs);
        let m = gt.map(BACKEND, FRONTEND, gref, false).unwrap();
        // SAFETY: the mapping's page is the same live page.
        let bs = unsafe { SharedRing::from_raw(m.page.as_ptr(), PAGE_SIZE) }.unwrap();
        let back = CtrlBack::attach(bs, 4).unwrap();
        Self {
            grants: DomainGrants::with_static_grants(gt.clone(), BACKEND, FRONTEND, 4, 16),
            gt,
            front,
            back,
            _page: page,
        }
    }

    /// Sends one request, lets the backend process it, returns the response
    /// and the backend's logged reason.
    fn call(&mut self, ty: CtrlType, data: [u32; 3]) -> (CtrlResponse, Option<Error>) {
        let (id, _notify) = self.front.send(ty, data).unwrap();
        let err = self.back.process_one(&mut self.grants).unwrap().unwrap();
        self.back.push();
        let rsp = self.front.poll().unwrap().unwrap();
        assert_eq!((rsp.id(), rsp.ty()), (id, ty));
        (rsp, err)
    }
}

#[test]
fn hash_setup_over_the_ring() {
    let mut r = Rig::new();
    let (rsp, _) = r.call(
        CtrlType::SET_HASH_ALGORITHM,
        [HashAlgorithm::TOEPLITZ.0, 0, 0],
    );
    assert_eq!(rsp.status(), CtrlStatus::SUCCESS);
    let (rsp, _) = r.call(CtrlType::GET_HASH_FLAGS, [0; 3]);
    assert_eq!(rsp.data(), 0xf);
    let key = Page::new();
    key.write(0, &[0x6d, 0x5a, 0x56, 0xda]);
    let kref = r.gt.grant(FRONTEND, BACKEND, &key, true);
    let (rsp, _) = r.call(CtrlType::SET_HASH_KEY, [kref, 4, 0]);
    assert_eq!(rsp.status(), CtrlStatus::SUCCESS);
    assert_eq!(&r.back.state.key()[..5], &[0x6d, 0x5a, 0x56, 0xda, 0]);
    let (rsp, _) = r.call(CtrlType::SET_HASH_MAPPING_SIZE, [64, 0, 0]);
    assert_eq!(rsp.status(), CtrlStatus::SUCCESS);
    let table = Page::new();
    let entries: Vec<u32> = (0..64).map(|i| i % 4).collect();
    table.write(0, entries.as_bytes());
    let tref = r.gt.grant(FRONTEND, BACKEND, &table, true);
    let (rsp, _) = r.call(CtrlType::SET_HASH_MAPPING, [tref, 64, 0]);
    assert_eq!(rsp.status(), CtrlStatus::SUCCESS);
    assert_eq!(r.back.state.mapping(), &entries[..]);
    // XSA-270 class: offset/size beyond the table, and a bad queue number.
    let (rsp, e) = r.call(CtrlType::SET_HASH_MAPPING, [tref, 64, 1]);
    assert_eq!(
        (rsp.status(), e),
        (
            CtrlStatus::INVALID_PARAMETER,
            Some(Error::CtrlMappingOutOfRange)
        )
    );
    table.write(0, &9u32.to_ne_bytes());
    let (rsp, e) = r.call(CtrlType::SET_HASH_MAPPING, [tref, 1, 0]);
    assert_eq!(
        (rsp.status(), e),
        (
            CtrlStatus::INVALID_PARAMETER,
            Some(Error::CtrlMappingBadQueue)
        )
    );
    // A key grant not granted to the backend (XSA-362 class).
    let (rsp, e) = r.call(CtrlType::SET_HASH_KEY, [4242, 4, 0]);
    assert_eq!(
        (rsp.status(), e),
        (CtrlStatus::INVALID_PARAMETER, Some(Error::GrantBad))
    );
}

#[test]
fn static_gref_mappings_over_the_ring() {
    let mut r = Rig::new();
    let (rsp, _) = r.call(CtrlType::GET_GREF_MAPPING_SIZE, [0, 0, 0]);
    assert_eq!(rsp.data(), 16);
    let pages: Vec<_> = (0..3).map(|_| Page::new()).collect();
    let refs: Vec<u32> = pages
        .iter()
        .map(|p| r.gt.grant(FRONTEND, BACKEND, p, false))
        .collect();
    let list = Page::new();
    let mut bytes = Vec::new();
    for (i, &g) in refs.iter().enumerate() {
        let fl = if i == 1 {
            GrefFlags::READONLY
        } else {
            GrefFlags(0)
        };
        bytes.extend_from_slice(Gref::new(g, fl, 0xffff).as_bytes());
    }
    list.write(0, &bytes);
    let lref = r.gt.grant(FRONTEND, BACKEND, &list, false);
    let (rsp, e) = r.call(CtrlType::ADD_GREF_MAPPING, [0, lref, 3]);
    assert_eq!((rsp.status(), e), (CtrlStatus::SUCCESS, None));
    assert_eq!(r.gt.mappings(), 1 + 3);
    // XSA-396 class: the frontend cannot revoke a grant still mapped.
    assert_eq!(
        r.gt.end_access(FRONTEND, refs[0]),
        Err(Error::GrantStillMapped)
    );
    let (rsp, e) = r.call(CtrlType::ADD_GREF_MAPPING, [9, lref, 3]);
    assert_eq!(
        (rsp.status(), e),
        (CtrlStatus::INVALID_PARAMETER, Some(Error::CtrlBadQueue))
    );
    // Past the announced size (16, 3 held): BUFFER_OVERFLOW, nothing mapped.
    let (rsp, e) = r.call(CtrlType::ADD_GREF_MAPPING, [0, lref, 14]);
    assert_eq!(
        (rsp.status(), e),
        (
            CtrlStatus::BUFFER_OVERFLOW,
            Some(Error::CtrlGrefListBadSize)
        )
    );
    assert_eq!(r.gt.mappings(), 1 + 3);
    // Delete two of them plus one never added.
    let mut del = Vec::new();
    for g in [refs[0], 777, refs[2]] {
        del.extend_from_slice(Gref::new(g, GrefFlags(0), 0xffff).as_bytes());
    }
    list.write(0, &del);
    let (rsp, e) = r.call(CtrlType::DEL_GREF_MAPPING, [0, lref, 3]);
    assert_eq!(
        (rsp.status(), rsp.data(), e),
        (CtrlStatus::SUCCESS, 2, None)
    );
    let mut out = [0u8; 24];
    list.read(0, &mut out);
    let st: Vec<u16> = out
        .chunks(8)
        .map(|c| Gref::read_from_bytes(c).unwrap().status())
        .collect();
    assert_eq!(st, [0, 2, 0]);
    r.gt.end_access(FRONTEND, refs[0]).unwrap();
    assert_eq!(r.gt.mappings(), 1 + 1);
}

/// Sends one request and lets a hostile backend answer it with `answer`;
/// returns the frontend's verdict.
fn hostile_answer(answer: impl Fn(&CtrlRequest) -> CtrlResponse) -> Error {
    let mut r = Rig::new();
    r.front
        .send(CtrlType::GET_HASH_MAPPING_SIZE, [0; 3])
        .unwrap();
    let req = r.back.ring.next_request().unwrap().unwrap();
    r.back.ring.push_response(answer(&req)).unwrap();
    r.back.push();
    r.front.poll().unwrap_err()
}

#[test]
fn frontend_rejects_mismatched_responses() {
    // Wrong id.
    assert_eq!(
        hostile_answer(|req| CtrlResponse::new(req.id() ^ 1, req.ty(), CtrlStatus::SUCCESS, 0)),
        Error::CtrlResponseMismatch
    );
    // Unknown status.
    assert_eq!(
        hostile_answer(|req| CtrlResponse::new(req.id(), req.ty(), CtrlStatus(77), 0)),
        Error::CtrlBadStatus
    );
}
