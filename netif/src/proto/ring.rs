//! Xen shared rings (`xen/io/ring.h`) over one shared page, generic over the
//! request and response types.
//!
//! The page is shared with a peer that may write anything at any time, so:
//! * every access to it is a volatile read or write through a raw pointer;
//! * a consumer copies each entry out of the page exactly once (one volatile
//!   read of the whole slot into a local) and only ever validates that copy;
//! * the peer's producer index is checked before use: it may not move
//!   backwards or claim more entries than the ring can hold;
//! * our own indices are kept privately; the copies in the page are only
//!   written, never trusted.

use super::barrier::Barriers;
use super::error::{Error, Result};
use super::wire::{
    CtrlRequest, CtrlResponse, RxRequest, RxResponse, TxRequest, TxResponse, PAGE_SIZE,
};
use super::xen_if;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Offset of the first entry in a shared ring page (`sring->ring`).
pub const SRING_HEADER_SIZE: usize = offset_of!(xen_if::netif_tx_sring, ring);
const REQ_PROD: usize = offset_of!(xen_if::netif_tx_sring, req_prod);
const REQ_EVENT: usize = offset_of!(xen_if::netif_tx_sring, req_event);
const RSP_PROD: usize = offset_of!(xen_if::netif_tx_sring, rsp_prod);
const RSP_EVENT: usize = offset_of!(xen_if::netif_tx_sring, rsp_event);
/// Required alignment of a ring page pointer.
pub const SRING_ALIGN: usize = 8;

const _: () = assert!(SRING_HEADER_SIZE == 64);
const _: () = assert!(offset_of!(xen_if::netif_rx_sring, ring) == SRING_HEADER_SIZE);
const _: () = assert!(offset_of!(xen_if::xen_netif_ctrl_sring, ring) == SRING_HEADER_SIZE);
const _: () = assert!(offset_of!(xen_if::netif_rx_sring, rsp_event) == RSP_EVENT);

/// The request/response pair carried by one kind of ring.
pub trait RingKind {
    /// Request type (frontend -> backend).
    type Req: FromBytes + IntoBytes + Immutable + Copy;
    /// Response type (backend -> frontend).
    type Rsp: FromBytes + IntoBytes + Immutable + Copy;
    /// Size of one entry: the C `union { req; rsp; }`.
    const ENTRY_SIZE: usize;
}

/// Guest TX ring.
#[derive(Debug)]
pub enum TxRingKind {}
/// Guest RX ring.
#[derive(Debug)]
pub enum RxRingKind {}
/// Control ring.
#[derive(Debug)]
pub enum CtrlRingKind {}

impl RingKind for TxRingKind {
    type Req = TxRequest;
    type Rsp = TxResponse;
    const ENTRY_SIZE: usize = size_of::<xen_if::netif_tx_sring_entry>();
}
impl RingKind for RxRingKind {
    type Req = RxRequest;
    type Rsp = RxResponse;
    const ENTRY_SIZE: usize = size_of::<xen_if::netif_rx_sring_entry>();
}
impl RingKind for CtrlRingKind {
    type Req = CtrlRequest;
    type Rsp = CtrlResponse;
    const ENTRY_SIZE: usize = size_of::<xen_if::xen_netif_ctrl_sring_entry>();
}

/// `__RING_SIZE`: the largest power of two of entries fitting after the header.
pub const fn ring_size(entry_size: usize, page_size: usize) -> u32 {
    if page_size < SRING_HEADER_SIZE || entry_size == 0 {
        return 0;
    }
    let n = (page_size - SRING_HEADER_SIZE) / entry_size;
    if n == 0 {
        0
    } else {
        let mut p: usize = 1;
        while p * 2 <= n {
            p *= 2;
        }
        p as u32
    }
}

/// Entries of a TX ring in one page.
pub const TX_RING_SIZE: u32 = ring_size(TxRingKind::ENTRY_SIZE, PAGE_SIZE);
/// Entries of an RX ring in one page.
pub const RX_RING_SIZE: u32 = ring_size(RxRingKind::ENTRY_SIZE, PAGE_SIZE);
/// Entries of a control ring in one page.
pub const CTRL_RING_SIZE: u32 = ring_size(CtrlRingKind::ENTRY_SIZE, PAGE_SIZE);
const _: () = assert!(TX_RING_SIZE == 256);
const _: () = assert!(RX_RING_SIZE == 256);
const _: () = assert!(CTRL_RING_SIZE == 128);

/// Checks a producer index read from the peer against our consumer index.
/// `limit` is the most entries the peer may legitimately have outstanding.
#[inline]
fn check_prod(prod: u32, cons: u32, limit: u32) -> Result<u32> {
    let avail = prod.wrapping_sub(cons);
    if avail <= limit {
        Ok(avail)
    } else if (avail as i32) < 0 {
        Err(Error::IndexBackwards)
    } else {
        Err(Error::RingOverflow)
    }
}

/// Raw access to a shared ring page. All accesses are volatile.
pub struct SharedRing<K: RingKind> {
    base: NonNull<u8>,
    size: u32,
    _kind: PhantomData<K>,
}

// SAFETY: `SharedRing` is a pointer to memory that, per the contract of
// `from_raw`, stays valid for the ring's lifetime and is only accessed with
// volatile operations that tolerate concurrent modification; nothing in it is
// tied to the creating thread.
unsafe impl<K: RingKind> Send for SharedRing<K> {}

impl<K: RingKind> core::fmt::Debug for SharedRing<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedRing")
            .field("base", &self.base)
            .field("size", &self.size)
            .finish()
    }
}

impl<K: RingKind> SharedRing<K> {
    const ENTRY_ALIGN_OK: () = assert!(
        K::ENTRY_SIZE % align_of::<K::Req>() == 0
            && K::ENTRY_SIZE % align_of::<K::Rsp>() == 0
            && size_of::<K::Req>() <= K::ENTRY_SIZE
            && size_of::<K::Rsp>() <= K::ENTRY_SIZE
            && align_of::<K::Req>() <= SRING_ALIGN
            && align_of::<K::Rsp>() <= SRING_ALIGN
    );

    /// Wraps a shared ring page of `len` bytes (netif rings are one page:
    /// `len` is at most [`PAGE_SIZE`], so a ring never has more entries than
    /// [`TX_RING_SIZE`]/[`RX_RING_SIZE`]/[`CTRL_RING_SIZE`]).
    ///
    /// Fails with [`Error::BadRingPage`] if `page` is null, not aligned to
    /// [`SRING_ALIGN`], `len` is larger than a page or holds no entry.
    ///
    /// # Safety
    ///
    /// For as long as the returned value (or a ring built from it) exists:
    /// * `page .. page + len` must be valid for reads and writes (mapped, not
    ///   freed, not unmapped or reused for anything else);
    /// * no Rust reference (`&`/`&mut`) to that memory may exist; it may only
    ///   be accessed through this value, by other `SharedRing`s over the same
    ///   page (as a peer would), or by another domain. Concurrent writes by
    ///   the peer are expected and tolerated: every access is volatile and
    ///   every entry type accepts any bit pattern.
    pub unsafe fn from_raw(page: *mut u8, len: usize) -> Result<Self> {
        let () = Self::ENTRY_ALIGN_OK;
        let base = NonNull::new(page).ok_or(Error::BadRingPage)?;
        if (page as usize) & (SRING_ALIGN - 1) != 0 {
            return Err(Error::BadRingPage);
        }
        let size = ring_size(K::ENTRY_SIZE, len);
        if size == 0 || len > PAGE_SIZE {
            return Err(Error::BadRingPage);
        }
        Ok(Self {
            base,
            size,
            _kind: PhantomData,
        })
    }

    /// Number of entries (a power of two).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The address of the page the ring lives in (to check which memory a
    /// ring end uses; never dereferenced through this).
    pub fn base_addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    #[inline]
    fn load_index(&self, off: usize) -> u32 {
        debug_assert!(off <= RSP_EVENT);
        let p = self.base.as_ptr().wrapping_add(off).cast::<u32>();
        // SAFETY: `off` is one of the four index offsets (< 16), inside the
        // page and 4-aligned since the page is `SRING_ALIGN`-aligned
        // (`from_raw`); the page is valid for reads (contract of `from_raw`).
        unsafe { p.read_volatile() }
    }

    #[inline]
    fn store_index(&self, off: usize, v: u32) {
        debug_assert!(off <= RSP_EVENT);
        let p = self.base.as_ptr().wrapping_add(off).cast::<u32>();
        // SAFETY: as in `load_index`, and the page is valid for writes.
        unsafe { p.write_volatile(v) }
    }

    #[inline]
    fn slot(&self, idx: u32) -> *mut u8 {
        let i = (idx & (self.size - 1)) as usize;
        self.base
            .as_ptr()
            .wrapping_add(SRING_HEADER_SIZE + i * K::ENTRY_SIZE)
    }

    /// Copies request `idx` out of the page: one volatile read of the slot.
    #[inline]
    pub fn read_req(&self, idx: u32) -> K::Req {
        // SAFETY: `slot` is inside the page because `size` entries fit after
        // the header (`ring_size` over the page length in `from_raw`); it is
        // aligned for `Req` (page `SRING_ALIGN`-aligned, header 64, entry size a
        // multiple of the alignment: `ENTRY_ALIGN_OK`). `Req: FromBytes`, so any
        // bytes the peer wrote form a valid value.
        unsafe { self.slot(idx).cast::<K::Req>().read_volatile() }
    }

    /// Copies response `idx` out of the page: one volatile read of the slot.
    #[inline]
    pub fn read_rsp(&self, idx: u32) -> K::Rsp {
        // SAFETY: as in `read_req`, for `Rsp`.
        unsafe { self.slot(idx).cast::<K::Rsp>().read_volatile() }
    }

    /// Writes request `idx` with one volatile write.
    #[inline]
    pub fn write_req(&self, idx: u32, req: K::Req) {
        // SAFETY: as in `read_req`; the page is valid for writes.
        unsafe { self.slot(idx).cast::<K::Req>().write_volatile(req) }
    }

    /// Writes response `idx` with one volatile write.
    #[inline]
    pub fn write_rsp(&self, idx: u32, rsp: K::Rsp) {
        // SAFETY: as in `read_req`; the page is valid for writes.
        unsafe { self.slot(idx).cast::<K::Rsp>().write_volatile(rsp) }
    }

    /// `SHARED_RING_INIT`: indices to 0, events to 1, private area cleared.
    pub fn init(&self) {
        self.store_index(REQ_PROD, 0);
        self.store_index(RSP_PROD, 0);
        self.store_index(REQ_EVENT, 1);
        self.store_index(RSP_EVENT, 1);
        let mut off = RSP_EVENT + 4;
        while off < SRING_HEADER_SIZE {
            let p = self.base.as_ptr().wrapping_add(off).cast::<u32>();
            // SAFETY: `off` is 4-aligned and below the 64-byte header, inside
            // the page (`from_raw`), which is valid for writes.
            unsafe { p.write_volatile(0) };
            off += 4;
        }
    }

    /// Peer-visible `req_prod` (raw; not validated).
    pub fn raw_req_prod(&self) -> u32 {
        self.load_index(REQ_PROD)
    }
    /// Peer-visible `rsp_prod` (raw; not validated).
    pub fn raw_rsp_prod(&self) -> u32 {
        self.load_index(RSP_PROD)
    }

    /// Peer-visible `rsp_event` (raw): the frontend sets it one past the last
    /// response it consumed when it goes idle.
    pub fn raw_rsp_event(&self) -> u32 {
        self.load_index(RSP_EVENT)
    }

    /// Publishes a raw request producer index, bypassing every check: only
    /// for fault-injection tests that play a broken or hostile frontend.
    pub fn fault_inject_req_prod(&self, v: u32) {
        self.store_index(REQ_PROD, v);
    }

    /// Publishes a raw response producer index, bypassing every check: only
    /// for fault-injection tests that play a broken or hostile backend.
    pub fn fault_inject_rsp_prod(&self, v: u32) {
        self.store_index(RSP_PROD, v);
    }
}

/// Whether to notify the peer after publishing `old..new` given its event index.
#[inline]
fn need_notify(new: u32, old: u32, event: u32) -> bool {
    new.wrapping_sub(event) < new.wrapping_sub(old)
}

/// The frontend end of a ring: produces requests, consumes responses.
pub struct FrontRing<K: RingKind, B: Barriers> {
    sring: SharedRing<K>,
    req_prod_pvt: u32,
    req_prod_published: u32,
    rsp_cons: u32,
    rsp_prod_seen: u32,
    _b: PhantomData<B>,
}

impl<K: RingKind, B: Barriers> core::fmt::Debug for FrontRing<K, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FrontRing")
            .field("req_prod_pvt", &self.req_prod_pvt)
            .field("rsp_cons", &self.rsp_cons)
            .finish()
    }
}

impl<K: RingKind, B: Barriers> FrontRing<K, B> {
    /// `SHARED_RING_INIT` + `FRONT_RING_INIT`: initialises the page.
    pub fn new(sring: SharedRing<K>) -> Self {
        sring.init();
        Self {
            sring,
            req_prod_pvt: 0,
            req_prod_published: 0,
            rsp_cons: 0,
            rsp_prod_seen: 0,
            _b: PhantomData,
        }
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.sring.size
    }
    /// Index the next request will be written at.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }
    /// The shared page, for fault-injection tests that write raw entries
    /// (a hostile frontend); normal code goes through the ring's methods.
    pub fn shared(&self) -> &SharedRing<K> {
        &self.sring
    }
    /// Index of the next response to consume.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }
    /// Requests pushed and not yet answered.
    pub fn outstanding(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }
    /// Requests published to the peer and not yet answered: the most
    /// responses it can still produce.
    pub fn published_outstanding(&self) -> u32 {
        self.req_prod_published.wrapping_sub(self.rsp_cons)
    }
    /// Requests written but not yet published (`push_requests*`).
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_published)
    }
    /// `RING_FREE_REQUESTS`.
    pub fn free_requests(&self) -> u32 {
        self.size() - self.outstanding()
    }
    /// `RING_FULL`.
    pub fn is_full(&self) -> bool {
        self.free_requests() == 0
    }

    /// Writes a request at `req_prod_pvt` (not yet visible to the peer).
    pub fn push_request(&mut self, req: K::Req) -> Result<()> {
        if self.is_full() {
            return Err(Error::RingFull);
        }
        self.sring.write_req(self.req_prod_pvt, req);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`: publishes the written requests
    /// and returns whether the backend must be notified.
    pub fn push_requests_and_check_notify(&mut self) -> bool {
        let old = self.req_prod_published;
        let new = self.req_prod_pvt;
        B::wmb(); // entries before index
        self.sring.store_index(REQ_PROD, new);
        self.req_prod_published = new;
        B::mb(); // index before reading req_event
        need_notify(new, old, self.sring.load_index(REQ_EVENT))
    }

    /// `RING_PUSH_REQUESTS`: publishes without an event check.
    pub fn push_requests(&mut self) {
        B::wmb();
        self.sring.store_index(REQ_PROD, self.req_prod_pvt);
        self.req_prod_published = self.req_prod_pvt;
    }

    fn load_rsp_prod(&mut self) -> Result<u32> {
        let prod = self.sring.load_index(RSP_PROD);
        check_prod(prod, self.rsp_cons, self.outstanding()).map_err(|e| match e {
            Error::RingOverflow => Error::ResponseOverrun,
            e => e,
        })?;
        // Responses are read only after the index that covers them.
        B::rmb();
        self.rsp_prod_seen = prod;
        Ok(prod)
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`, validating the peer's `rsp_prod`.
    pub fn unconsumed_responses(&mut self) -> Result<u32> {
        let prod = self.load_rsp_prod()?;
        Ok(prod.wrapping_sub(self.rsp_cons))
    }

    /// Consumes the next response, if one is published. The slot is copied
    /// exactly once. `rsp_cons()` before the call is the slot index.
    pub fn next_response(&mut self) -> Result<Option<K::Rsp>> {
        if self.rsp_cons == self.rsp_prod_seen && self.load_rsp_prod()? == self.rsp_cons {
            return Ok(None);
        }
        let rsp = self.sring.read_rsp(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(rsp))
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: true if responses are pending; else
    /// arms `rsp_event` so the peer notifies on the next one.
    pub fn final_check_for_responses(&mut self) -> Result<bool> {
        self.final_check_for_responses_after(1)
    }

    /// `final_check_for_responses` with event moderation: arms `rsp_event`
    /// so the peer notifies on the `after`-th next response instead of the
    /// next one. `after` is clamped to the published requests outstanding
    /// (at least 1), so the event it waits for is always one the peer will
    /// produce: a queue never waits for a response that cannot come.
    pub fn final_check_for_responses_after(&mut self, after: u32) -> Result<bool> {
        if self.unconsumed_responses()? > 0 {
            return Ok(true);
        }
        let after = after.clamp(1, self.published_outstanding().max(1));
        self.sring
            .store_index(RSP_EVENT, self.rsp_cons.wrapping_add(after));
        B::mb();
        Ok(self.unconsumed_responses()? > 0)
    }
}

/// The backend end of a ring: consumes requests, produces responses.
pub struct BackRing<K: RingKind, B: Barriers> {
    sring: SharedRing<K>,
    rsp_prod_pvt: u32,
    rsp_prod_published: u32,
    req_cons: u32,
    req_prod_seen: u32,
    _b: PhantomData<B>,
}

impl<K: RingKind, B: Barriers> core::fmt::Debug for BackRing<K, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BackRing")
            .field("rsp_prod_pvt", &self.rsp_prod_pvt)
            .field("req_cons", &self.req_cons)
            .finish()
    }
}

impl<K: RingKind, B: Barriers> BackRing<K, B> {
    /// `BACK_RING_ATTACH` to a page the frontend initialised: starts at the
    /// page's `rsp_prod`, refusing a `req_prod` more than a ring ahead of it.
    pub fn attach(sring: SharedRing<K>) -> Result<Self> {
        let rsp_prod = sring.load_index(RSP_PROD);
        let req_prod = sring.load_index(REQ_PROD);
        check_prod(req_prod, rsp_prod, sring.size)?;
        Ok(Self {
            sring,
            rsp_prod_pvt: rsp_prod,
            rsp_prod_published: rsp_prod,
            req_cons: rsp_prod,
            req_prod_seen: rsp_prod,
            _b: PhantomData,
        })
    }

    /// Number of entries.
    pub fn size(&self) -> u32 {
        self.sring.size
    }
    /// Index of the next request to consume.
    pub fn req_cons(&self) -> u32 {
        self.req_cons
    }
    /// The shared page, for fault-injection tests that write raw entries
    /// (a hostile backend); normal code goes through the ring's methods.
    pub fn shared(&self) -> &SharedRing<K> {
        &self.sring
    }
    /// Index the next response will be written at.
    pub fn rsp_prod_pvt(&self) -> u32 {
        self.rsp_prod_pvt
    }
    /// Requests consumed and not yet answered.
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    fn load_req_prod(&mut self) -> Result<u32> {
        let prod = self.sring.load_index(REQ_PROD);
        check_prod(prod, self.req_cons, self.size())?;
        B::rmb();
        self.req_prod_seen = prod;
        Ok(prod)
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`: requests that may be consumed now
    /// (bounded by free response slots), validating the peer's `req_prod`.
    pub fn unconsumed_requests(&mut self) -> Result<u32> {
        let prod = self.load_req_prod()?;
        let req = prod.wrapping_sub(self.req_cons);
        let rsp = self.size() - self.unanswered();
        Ok(req.min(rsp))
    }

    /// Consumes the next request, if one is published and a response slot is
    /// free for it. The slot is copied exactly once.
    pub fn next_request(&mut self) -> Result<Option<K::Req>> {
        if self.unanswered() >= self.size() {
            return Ok(None); // RING_REQUEST_CONS_OVERFLOW
        }
        if self.req_cons == self.req_prod_seen && self.load_req_prod()? == self.req_cons {
            return Ok(None);
        }
        let req = self.sring.read_req(self.req_cons);
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(req))
    }

    /// Writes a response at `rsp_prod_pvt` (not yet visible to the peer).
    pub fn push_response(&mut self, rsp: K::Rsp) -> Result<()> {
        if self.unanswered() == 0 {
            return Err(Error::RingFull);
        }
        self.sring.write_rsp(self.rsp_prod_pvt, rsp);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`: publishes the written
    /// responses and returns whether the frontend must be notified.
    pub fn push_responses_and_check_notify(&mut self) -> bool {
        let old = self.rsp_prod_published;
        let new = self.rsp_prod_pvt;
        B::wmb();
        self.sring.store_index(RSP_PROD, new);
        self.rsp_prod_published = new;
        B::mb();
        need_notify(new, old, self.sring.load_index(RSP_EVENT))
    }

    /// `RING_PUSH_RESPONSES`: publishes without an event check.
    pub fn push_responses(&mut self) {
        B::wmb();
        self.sring.store_index(RSP_PROD, self.rsp_prod_pvt);
        self.rsp_prod_published = self.rsp_prod_pvt;
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: true if requests are pending; else
    /// arms `req_event` so the peer notifies on the next one.
    pub fn final_check_for_requests(&mut self) -> Result<bool> {
        if self.unconsumed_requests()? > 0 {
            return Ok(true);
        }
        self.sring
            .store_index(REQ_EVENT, self.req_cons.wrapping_add(1));
        B::mb();
        Ok(self.unconsumed_requests()? > 0)
    }

    /// True if at least `needed` requests are published; otherwise arms
    /// `req_event` just past the current `req_prod`, so the peer notifies on
    /// its next push, and checks again (the C netback's wait for RX slots).
    /// Unlike [`Self::final_check_for_requests`] this never waits for an
    /// event that already went by while fewer than `needed` were posted.
    pub fn wait_for_requests(&mut self, needed: u32) -> Result<bool> {
        loop {
            let prod = self.load_req_prod()?;
            if prod.wrapping_sub(self.req_cons) >= needed {
                return Ok(true);
            }
            self.sring.store_index(REQ_EVENT, prod.wrapping_add(1));
            B::mb();
            if self.sring.load_index(REQ_PROD) == prod {
                return Ok(false);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::barrier::HostBarriers;
    use super::super::wire::{RspStatus, TxFlags};
    use super::*;
    use std::boxed::Box;

    #[repr(C, align(4096))]
    pub(crate) struct Page(pub [u8; PAGE_SIZE]);

    pub(crate) fn page() -> *mut u8 {
        Box::into_raw(Box::new(Page([0; PAGE_SIZE]))).cast()
    }

    type Front = FrontRing<TxRingKind, HostBarriers>;
    type Back = BackRing<TxRingKind, HostBarriers>;

    #[test]
    fn wait_for_requests_arms_event_past_prod() {
        let (mut f, mut b, _p) = pair();
        let req = |id| super::super::wire::TxRequest::new(1, 0, TxFlags(0), id, 60);
        f.push_request(req(0)).unwrap();
        f.push_request(req(1)).unwrap();
        f.push_requests();
        assert_eq!(b.wait_for_requests(2), Ok(true));
        assert_eq!(b.wait_for_requests(3), Ok(false));
        // The event is armed one past the published producer: the next push
        // notifies even though requests were already pending.
        f.push_request(req(2)).unwrap();
        assert!(f.push_requests_and_check_notify());
        assert_eq!(b.wait_for_requests(3), Ok(true));
    }

    fn pair() -> (Front, Back, *mut u8) {
        let p = page();
        // SAFETY: `p` is a leaked, page-aligned 4096-byte allocation never
        // referenced except through these rings.
        let (a, b) = unsafe {
            (
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
                SharedRing::from_raw(p, PAGE_SIZE).unwrap(),
            )
        };
        let f = Front::new(a);
        let b = Back::attach(b).unwrap();
        (f, b, p)
    }

    fn poke(p: *mut u8, off: usize, v: u32) {
        // SAFETY: test page from `page()`, `off` is a 4-aligned header offset.
        unsafe { p.add(off).cast::<u32>().write_volatile(v) }
    }

    /// Moderated response events: the peer notifies on the `after`-th
    /// response, never past the last request it was given.
    #[test]
    fn moderated_response_event() {
        let (mut f, mut b, _p) = pair();
        for i in 0..8u16 {
            f.push_request(TxRequest::new(1, 0, TxFlags(0), i, 60)).unwrap();
        }
        f.push_requests();
        assert_eq!(f.published_outstanding(), 8);
        assert_eq!(f.final_check_for_responses_after(4), Ok(false));
        let mut notified = [false; 8];
        for (i, n) in notified.iter_mut().enumerate() {
            let r = b.next_request().unwrap().unwrap();
            assert_eq!(usize::from(r.id()), i);
            b.push_response(TxResponse::new(r.id(), RspStatus::OKAY)).unwrap();
            *n = b.push_responses_and_check_notify();
        }
        assert_eq!(notified, [false, false, false, true, false, false, false, false]);
        while f.next_response().unwrap().is_some() {}
        // Two requests outstanding and 100 asked for: armed on the 2nd.
        f.push_request(TxRequest::new(1, 0, TxFlags(0), 0, 60)).unwrap();
        f.push_request(TxRequest::new(1, 0, TxFlags(0), 1, 60)).unwrap();
        // One more written but not published: the peer cannot answer it.
        f.push_request(TxRequest::new(1, 0, TxFlags(0), 2, 60)).unwrap();
        assert_eq!(f.unpublished(), 3);
        f.push_requests();
        f.push_request(TxRequest::new(1, 0, TxFlags(0), 3, 60)).unwrap();
        assert_eq!((f.published_outstanding(), f.unpublished()), (3, 1));
        assert_eq!(f.final_check_for_responses_after(100), Ok(false));
        let mut last = false;
        for _ in 0..3 {
            let r = b.next_request().unwrap().unwrap();
            b.push_response(TxResponse::new(r.id(), RspStatus::OKAY)).unwrap();
            last = b.push_responses_and_check_notify();
        }
        assert!(last, "the event must come with the last published request's response");
        // Nothing outstanding: armed on the next response, as unmoderated.
        while f.next_response().unwrap().is_some() {}
        f.push_requests();
        let r = b.next_request().unwrap().unwrap();
        assert_eq!(f.final_check_for_responses_after(0), Ok(false));
        b.push_response(TxResponse::new(r.id(), RspStatus::OKAY)).unwrap();
        assert!(b.push_responses_and_check_notify());
    }

    #[test]
    fn sizes() {
        assert_eq!(ring_size(12, 4096), 256);
        assert_eq!(ring_size(8, 4096), 256);
        assert_eq!(ring_size(16, 4096), 128);
        assert_eq!(ring_size(12, 64), 0);
    }

    #[test]
    fn request_response_roundtrip_and_notify() {
        let (mut f, mut b, _p) = pair();
        for i in 0..3u16 {
            f.push_request(TxRequest::new(1, 0, TxFlags(0), i, 60))
                .unwrap();
        }
        // req_event starts at 1: the first publish must notify.
        assert!(f.push_requests_and_check_notify());
        assert_eq!(b.unconsumed_requests(), Ok(3));
        for i in 0..3u16 {
            let r = b.next_request().unwrap().unwrap();
            assert_eq!(r.id(), i);
            b.push_response(TxResponse::new(i, RspStatus::OKAY))
                .unwrap();
        }
        assert_eq!(b.next_request(), Ok(None));
        assert!(!b.final_check_for_requests().unwrap());
        assert!(b.push_responses_and_check_notify());
        for i in 0..3u16 {
            assert_eq!(f.next_response().unwrap().unwrap().id(), i);
        }
        assert_eq!(f.next_response(), Ok(None));
        // Backend armed req_event = req_cons + 1, so the next push notifies...
        f.push_request(TxRequest::zeroed()).unwrap();
        assert!(f.push_requests_and_check_notify());
        // ...but a second batch before the backend re-arms does not.
        f.push_request(TxRequest::zeroed()).unwrap();
        assert!(!f.push_requests_and_check_notify());
    }

    #[test]
    fn ring_full_and_wrap() {
        let (mut f, mut b, _p) = pair();
        for round in 0..5u32 {
            for i in 0..256 {
                f.push_request(TxRequest::new(round, 0, TxFlags(0), i as u16, 1))
                    .unwrap();
            }
            assert_eq!(f.push_request(TxRequest::zeroed()), Err(Error::RingFull));
            f.push_requests();
            while let Some(r) = b.next_request().unwrap() {
                assert_eq!(r.gref(), round);
                b.push_response(TxResponse::new(r.id(), RspStatus::OKAY))
                    .unwrap();
            }
            assert_eq!(b.push_response(TxResponse::zeroed()), Err(Error::RingFull));
            b.push_responses();
            let mut n = 0;
            while f.next_response().unwrap().is_some() {
                n += 1;
            }
            assert_eq!(n, 256);
        }
    }

    #[test]
    fn hostile_req_prod() {
        let (_f, mut b, p) = pair();
        poke(p, REQ_PROD, 257);
        assert_eq!(b.unconsumed_requests(), Err(Error::RingOverflow));
        assert_eq!(b.next_request(), Err(Error::RingOverflow));
        poke(p, REQ_PROD, u32::MAX);
        assert_eq!(b.next_request(), Err(Error::IndexBackwards));
        poke(p, REQ_PROD, 256);
        assert_eq!(b.unconsumed_requests(), Ok(256));
    }

    /// The hostile suite's `req_prod` moved back to one below requests the
    /// backend has already consumed (netfront_opt hostile mode 19).
    #[test]
    fn req_prod_back_by_one_after_consumption() {
        let (mut f, mut b, p) = pair();
        for _ in 0..3 {
            f.push_request(TxRequest::zeroed()).unwrap();
        }
        f.push_requests();
        while b.next_request().unwrap().is_some() {}
        poke(p, REQ_PROD, 2);
        assert_eq!(b.next_request(), Err(Error::IndexBackwards));
        assert_eq!(b.final_check_for_requests(), Err(Error::IndexBackwards));
    }

    #[test]
    fn attach_refuses_overflowed_page() {
        let p = page();
        poke(p, REQ_PROD, 1000);
        // SAFETY: test page from `page()`.
        let s = unsafe { SharedRing::<TxRingKind>::from_raw(p, PAGE_SIZE).unwrap() };
        assert_eq!(
            BackRing::<TxRingKind, HostBarriers>::attach(s).err(),
            Some(Error::RingOverflow)
        );
    }

    #[test]
    fn hostile_rsp_prod() {
        let (mut f, _b, p) = pair();
        f.push_request(TxRequest::zeroed()).unwrap();
        f.push_requests();
        poke(p, RSP_PROD, 2);
        assert_eq!(f.next_response(), Err(Error::ResponseOverrun));
        poke(p, RSP_PROD, u32::MAX - 3);
        assert_eq!(f.next_response(), Err(Error::IndexBackwards));
        poke(p, RSP_PROD, 1);
        assert!(f.next_response().unwrap().is_some());
    }

    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Push(u8),
        Publish,
        Consume(u8),
        Respond(u8),
        PublishRsp,
        Reap(u8),
        FinalCheckReq,
        FinalCheckRsp,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..40).prop_map(Op::Push),
            Just(Op::Publish),
            (1u8..40).prop_map(Op::Consume),
            (1u8..40).prop_map(Op::Respond),
            Just(Op::PublishRsp),
            (1u8..40).prop_map(Op::Reap),
            Just(Op::FinalCheckReq),
            Just(Op::FinalCheckRsp),
        ]
    }

    proptest! {
        /// Random interleavings against a FIFO model: every request is
        /// consumed once and in order, every response reaped once and in
        /// order, and no wakeup is lost: once a side armed its event index
        /// and went idle, the peer's next publish says "notify".
        #[test]
        fn ring_matches_model(ops in prop::collection::vec(op(), 1..400)) {
            let (mut f, mut b, _p) = pair();
            let mut next_id = 0u16;
            let mut unpublished = 0u32;
            let mut reqs: VecDeque<u16> = VecDeque::new(); // published, unconsumed
            let mut pend: VecDeque<u16> = VecDeque::new(); // consumed, unanswered
            let mut rsps: VecDeque<u16> = VecDeque::new(); // answered (published or not)
            let mut rsp_unpublished = 0usize;
            let mut back_sleeping = false;
            let mut front_sleeping = false;
            for op in ops {
                match op {
                    Op::Push(n) => for _ in 0..n {
                        if f.push_request(TxRequest::new(0, 0, TxFlags(0), next_id, 1)).is_err() {
                            prop_assert_eq!(f.outstanding(), 256);
                            break;
                        }
                        next_id = next_id.wrapping_add(1);
                        unpublished += 1;
                    },
                    Op::Publish => {
                        let notify = f.push_requests_and_check_notify();
                        if back_sleeping && unpublished > 0 {
                            prop_assert!(notify, "lost wakeup of the backend");
                            back_sleeping = false;
                        }
                        let first = next_id.wrapping_sub(unpublished as u16);
                        for k in 0..unpublished as u16 {
                            reqs.push_back(first.wrapping_add(k));
                        }
                        unpublished = 0;
                    }
                    Op::Consume(n) => for _ in 0..n {
                        match b.next_request().unwrap() {
                            Some(r) => {
                                prop_assert_eq!(Some(r.id()), reqs.pop_front());
                                pend.push_back(r.id());
                            }
                            None => {
                                prop_assert!(reqs.is_empty() || b.unanswered() == 256);
                                break;
                            }
                        }
                    },
                    Op::Respond(n) => for _ in 0..n {
                        let Some(id) = pend.pop_front() else { break };
                        b.push_response(TxResponse::new(id, RspStatus::OKAY)).unwrap();
                        rsps.push_back(id);
                        rsp_unpublished += 1;
                    },
                    Op::PublishRsp => {
                        let notify = b.push_responses_and_check_notify();
                        if front_sleeping && rsp_unpublished > 0 {
                            prop_assert!(notify, "lost wakeup of the frontend");
                            front_sleeping = false;
                        }
                        rsp_unpublished = 0;
                    }
                    Op::Reap(n) => for _ in 0..n {
                        let published = rsps.len() - rsp_unpublished;
                        match f.next_response().unwrap() {
                            Some(r) => {
                                prop_assert!(published > 0);
                                prop_assert_eq!(Some(r.id()), rsps.pop_front());
                            }
                            None => {
                                prop_assert_eq!(published, 0);
                                break;
                            }
                        }
                    },
                    Op::FinalCheckReq => {
                        let more = b.final_check_for_requests().unwrap();
                        let can = !reqs.is_empty() && b.unanswered() < 256;
                        prop_assert_eq!(more, can);
                        back_sleeping = !more;
                    }
                    Op::FinalCheckRsp => {
                        let more = f.final_check_for_responses().unwrap();
                        prop_assert_eq!(more, rsps.len() > rsp_unpublished);
                        front_sleeping = !more;
                    }
                }
            }
        }
    }

    #[test]
    fn bad_pages() {
        // SAFETY: the calls fail before any access.
        unsafe {
            assert!(SharedRing::<TxRingKind>::from_raw(core::ptr::null_mut(), 4096).is_err());
            let p = page();
            assert!(SharedRing::<TxRingKind>::from_raw(p.add(4), 4000).is_err());
            assert!(SharedRing::<TxRingKind>::from_raw(p, 70).is_err());
            assert!(SharedRing::<TxRingKind>::from_raw(p, 8192).is_err());
        }
    }

    /// One state of the exhaustive check below: both ends' private
    /// indices, the shared page, and the FIFO model of what is in flight.
    #[derive(Clone, PartialEq, Eq, Hash)]
    struct Explored {
        front: [u32; 4],
        back: [u32; 4],
        page: std::vec::Vec<u8>,
        pushed: u32,
        unpublished: u32,
        reqs: VecDeque<u16>,
        pend: VecDeque<u16>,
        rsps: VecDeque<u16>,
        rsp_unpublished: usize,
        back_sleeping: bool,
        front_sleeping: bool,
    }

    fn snapshot(p: *mut u8, len: usize) -> std::vec::Vec<u8> {
        // SAFETY: test page from `page()`, `len` within it; no reference to it exists.
        (0..len).map(|i| unsafe { p.add(i).read_volatile() }).collect()
    }

    fn restore(p: *mut u8, bytes: &[u8]) {
        for (i, v) in bytes.iter().enumerate() {
            // SAFETY: as in `snapshot`.
            unsafe { p.add(i).write_volatile(*v) }
        }
    }

    /// Exhaustive bounded check of the index arithmetic: a 4-entry ring
    /// started just before each wrap point of the 32-bit indices (0, 2^31,
    /// 2^32, and 2^32 minus more than a ring), so producer, consumer and
    /// event indices cross the wrap at every ring position. Every sequence
    /// of single steps (push, publish, consume, respond, publish responses,
    /// reap, final checks) is explored until 10 requests were pushed (two
    /// and a half laps), each distinct state once, with the checks of
    /// `ring_matches_model`: each request consumed once and in order, each
    /// response reaped once and in order, no error between honest peers,
    /// and no lost wakeup.
    #[test]
    fn small_ring_exhaustive_at_every_wrap_point() {
        const SIZE: u32 = 4;
        const LIMIT: u32 = 10;
        let len = SRING_HEADER_SIZE + SIZE as usize * TxRingKind::ENTRY_SIZE;
        let mut total = 0usize;
        for base in [0u32, (1 << 31) - 3, u32::MAX - 2, u32::MAX - 6] {
            let p = page();
            // SAFETY: `p` is a leaked, page-aligned page only used through these rings.
            let (a, b) = unsafe { (SharedRing::from_raw(p, len).unwrap(), SharedRing::from_raw(p, len).unwrap()) };
            let mut f = Front::new(a);
            assert_eq!(f.size(), SIZE);
            // Both ends start at `base`, as after `base` requests went by.
            poke(p, REQ_PROD, base);
            poke(p, RSP_PROD, base);
            poke(p, REQ_EVENT, base.wrapping_add(1));
            poke(p, RSP_EVENT, base.wrapping_add(1));
            let mut b = Back::attach(b).unwrap();
            f.req_prod_pvt = base;
            f.req_prod_published = base;
            f.rsp_cons = base;
            f.rsp_prod_seen = base;
            let start = Explored {
                front: [base; 4],
                back: [base; 4],
                page: snapshot(p, len),
                pushed: 0,
                unpublished: 0,
                reqs: VecDeque::new(),
                pend: VecDeque::new(),
                rsps: VecDeque::new(),
                rsp_unpublished: 0,
                back_sleeping: false,
                front_sleeping: false,
            };
            let mut seen = std::collections::HashSet::new();
            let mut todo = std::vec![start];
            while let Some(st) = todo.pop() {
                if !seen.insert(st.clone()) {
                    continue;
                }
                for op in 0..8 {
                    // Load the state into the rings.
                    restore(p, &st.page);
                    [f.req_prod_pvt, f.req_prod_published, f.rsp_cons, f.rsp_prod_seen] = st.front;
                    [b.rsp_prod_pvt, b.rsp_prod_published, b.req_cons, b.req_prod_seen] = st.back;
                    let mut n = st.clone();
                    let id = |i: u32| (i.wrapping_sub(base) & 0xffff) as u16;
                    match op {
                        0 => {
                            if n.pushed == LIMIT {
                                continue;
                            }
                            let r = f.push_request(TxRequest::new(0, 0, TxFlags(0), id(f.req_prod_pvt), 1));
                            if f.outstanding() == SIZE && r.is_err() {
                                assert_eq!(r, Err(Error::RingFull));
                                continue;
                            }
                            r.unwrap();
                            n.pushed += 1;
                            n.unpublished += 1;
                        }
                        1 => {
                            let notify = f.push_requests_and_check_notify();
                            if n.back_sleeping && n.unpublished > 0 {
                                assert!(notify, "lost wakeup of the backend (base {base:#x})");
                                n.back_sleeping = false;
                            }
                            let first = (n.pushed - n.unpublished) as u16;
                            for k in 0..n.unpublished as u16 {
                                n.reqs.push_back(first + k);
                            }
                            n.unpublished = 0;
                        }
                        2 => match b.next_request().unwrap() {
                            Some(r) => {
                                assert_eq!(Some(r.id()), n.reqs.pop_front());
                                n.pend.push_back(r.id());
                            }
                            None => {
                                assert!(n.reqs.is_empty() || b.unanswered() == SIZE);
                                continue;
                            }
                        },
                        3 => {
                            let Some(i) = n.pend.pop_front() else { continue };
                            b.push_response(TxResponse::new(i, RspStatus::OKAY)).unwrap();
                            n.rsps.push_back(i);
                            n.rsp_unpublished += 1;
                        }
                        4 => {
                            let notify = b.push_responses_and_check_notify();
                            if n.front_sleeping && n.rsp_unpublished > 0 {
                                assert!(notify, "lost wakeup of the frontend (base {base:#x})");
                                n.front_sleeping = false;
                            }
                            n.rsp_unpublished = 0;
                        }
                        5 => {
                            let published = n.rsps.len() - n.rsp_unpublished;
                            match f.next_response().unwrap() {
                                Some(r) => {
                                    assert!(published > 0);
                                    assert_eq!(Some(r.id()), n.rsps.pop_front());
                                }
                                None => {
                                    assert_eq!(published, 0);
                                    continue;
                                }
                            }
                        }
                        6 => {
                            let more = b.final_check_for_requests().unwrap();
                            assert_eq!(more, !n.reqs.is_empty() && b.unanswered() < SIZE);
                            n.back_sleeping = !more;
                        }
                        _ => {
                            let more = f.final_check_for_responses().unwrap();
                            assert_eq!(more, n.rsps.len() > n.rsp_unpublished);
                            n.front_sleeping = !more;
                        }
                    }
                    assert!(f.outstanding() <= SIZE && b.unanswered() <= SIZE);
                    n.front = [f.req_prod_pvt, f.req_prod_published, f.rsp_cons, f.rsp_prod_seen];
                    n.back = [b.rsp_prod_pvt, b.rsp_prod_published, b.req_cons, b.req_prod_seen];
                    n.page = snapshot(p, len);
                    todo.push(n);
                }
            }
            total += seen.len();
        }
        // The exploration is not vacuous: every run reaches many states.
        assert!(total > 10_000, "only {total} states explored");
    }

    /// The index checks on their own, at and around every wrap point: a
    /// producer `d` entries past the consumer is accepted exactly when
    /// `0 <= d <= limit`, refused as backwards below and as an overflow
    /// above; a publish from `old` to `new` notifies exactly when the
    /// peer's event index lies in `(old, new]`.
    #[test]
    fn index_checks_at_every_wrap_point() {
        let points = [0u32, 1 << 31, u32::MAX];
        for p in points {
            for c in -8i64..=8 {
                let cons = (i64::from(p) + c) as u32;
                for limit in [1u32, 4, 256] {
                    for d in -40i64..=300 {
                        let prod = cons.wrapping_add(d as u32);
                        let want = if d < 0 {
                            Err(Error::IndexBackwards)
                        } else if d as u32 <= limit {
                            Ok(d as u32)
                        } else {
                            Err(Error::RingOverflow)
                        };
                        assert_eq!(check_prod(prod, cons, limit), want, "cons {cons:#x} d {d} limit {limit}");
                    }
                }
                let old = cons;
                for k in 0u32..=8 {
                    let new = old.wrapping_add(k);
                    for j in -10i64..=12 {
                        let event = old.wrapping_add(j as u32);
                        let want = j >= 1 && j <= i64::from(k);
                        assert_eq!(need_notify(new, old, event), want, "old {old:#x} +{k} event {j}");
                    }
                }
            }
        }
    }
}
