// SPDX-License-Identifier: GPL-2.0

//! The control ring (`feature-ctrl-ring`): receive-side scaling, and the
//! static-grant requests of grant reuse.
//!
//! With several queues and a backend that offers the control ring, we pick
//! the hash ourselves: Toeplitz over addresses and TCP ports, the kernel's
//! RSS key, and an indirection table spreading hash buckets round-robin
//! over our queues. The backend then steers each flow to the queue the
//! table names and sends the hash along (an extra), which we put on the skb
//! so the stack does not hash again. The requests run once per connection,
//! from the xenbus watch thread, each answered before the next is sent.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;

use crate::netif::{CtrlFront, CtrlStatus, CtrlType, Gref, HashAlgorithm, HashTypes, GREFS_PER_PAGE};
use crate::xen_sys::grant_reuse;
use zerocopy::IntoBytes;
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::evtchn::{AckOnly, EventIrq};
use crate::xen_sys::grant::GrantedPage;
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xenbus::{Device, RingPage};

/// Entries of our indirection table (the backend accepts up to 128).
const TABLE_SIZE: u32 = 64;
/// Hash key length (the largest the backend accepts).
const KEY_LEN: usize = 40;
/// How long one control request may take (ms).
const REPLY_TIMEOUT_MS: u32 = 2000;

/// The control ring and the pages its requests point to. Field order is
/// drop order: the event channel first, then the ring and pages.
pub(crate) struct CtrlRing {
    /// Carries nothing we wait on (replies are polled): acknowledged only.
    irq: EventIrq<AckOnly>,
    port: u32,
    front: OnRing<CtrlFront<XenBarriers>, RingPage>,
    key: GrantedPage,
    table: GrantedPage,
    /// Gref lists of static-grant requests (writable: `DEL` answers in it).
    list: GrantedPage,
}

/// What the data path needs to check where hashed packets land: the
/// table's size and the queue count it spreads over (0: no RSS).
#[derive(Default)]
pub(crate) struct RssLayout {
    size: AtomicU32,
    queues: AtomicU32,
}

impl RssLayout {
    /// The queue our table sends `hash` to, if RSS is configured.
    pub(crate) fn expected_queue(&self, hash: u32) -> Option<u32> {
        let (size, queues) = (self.size.load(Ordering::Acquire), self.queues.load(Ordering::Acquire));
        let bucket = hash.checked_rem(size)?;
        bucket.checked_rem(queues)
    }

    pub(crate) fn clear(&self) {
        self.size.store(0, Ordering::Release);
        self.queues.store(0, Ordering::Release);
    }
}

impl CtrlRing {
    /// Allocates the ring, its event channel and the key and table pages.
    pub(crate) fn new(xbdev: &Device) -> Result<Self> {
        let domid = xbdev.otherend_id();
        let front = OnRing::new(RingPage::new(xbdev)?, ())?;
        let key = GrantedPage::new(domid, true)?;
        let table = GrantedPage::new(domid, true)?;
        let list = GrantedPage::new(domid, false)?;
        let port = xbdev.alloc_evtchn()?;
        let irq = EventIrq::bind(port, c"netfront_opt-ctrl", Arc::new(AckOnly, GFP_KERNEL)?)
            .inspect_err(|_| xbdev.free_evtchn(port))?;
        Ok(Self { irq, port, front, key, table, list })
    }

    /// `ctrl-ring-ref` and `event-channel-ctrl`.
    pub(crate) fn keys(&self) -> (u32, u32) {
        (self.front.memory().gref(), self.port)
    }

    /// Sends one request and waits for its reply; the reply's data, or the
    /// backend's refusal.
    fn call(&mut self, ty: CtrlType, data: [u32; 3]) -> Result<u32> {
        match self.call_status(ty, data)? {
            (CtrlStatus::SUCCESS, d) => Ok(d),
            (st, _) => {
                pr_warn!("control request {} refused (status {})\n", ty.0, st.0);
                Err(EINVAL)
            }
        }
    }

    /// Sends one request and waits for its reply: status and data.
    fn call_status(&mut self, ty: CtrlType, data: [u32; 3]) -> Result<(CtrlStatus, u32)> {
        let (id, notify) = self.front.send(ty, data)?;
        if notify {
            self.irq.notify();
        }
        let mut waited = 0;
        loop {
            match self.front.poll() {
                Ok(Some(rsp)) if rsp.id() == id => return Ok((rsp.status(), rsp.data())),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => {
                    pr_err!("control ring: {}\n", e.as_str());
                    return Err(EIO);
                }
            }
            if waited >= REPLY_TIMEOUT_MS {
                pr_warn!("control request {} not answered in {} ms\n", ty.0, REPLY_TIMEOUT_MS);
                return Err(ETIMEDOUT);
            }
            // Process context (the xenbus watch thread).
            crate::xen_sys::sleep_ms(10);
            waited += 10;
        }
    }

    /// Configures Toeplitz hashing with the kernel's RSS key and a table
    /// spreading buckets over `queues`; publishes the layout for the data
    /// path once the backend accepted all of it.
    pub(crate) fn configure(&mut self, queues: u32, layout: &RssLayout) -> Result {
        self.call(CtrlType::SET_HASH_ALGORITHM, [HashAlgorithm::TOEPLITZ.0, 0, 0])?;
        let offered = HashTypes(self.call(CtrlType::GET_HASH_FLAGS, [0; 3])?);
        let wanted = HashTypes(offered.0 & HashTypes::ALL.0);
        self.call(CtrlType::SET_HASH_FLAGS, [wanted.0, 0, 0])?;
        self.key.fill_rss_key(KEY_LEN);
        self.call(CtrlType::SET_HASH_KEY, [self.key.gref(), KEY_LEN as u32, 0])?;
        let max = self.call(CtrlType::GET_HASH_MAPPING_SIZE, [0; 3])?;
        let size = TABLE_SIZE.min(max);
        if size == 0 {
            return Err(EOPNOTSUPP);
        }
        self.call(CtrlType::SET_HASH_MAPPING_SIZE, [size, 0, 0])?;
        // At most 128 entries: they fit in the page.
        self.table.write_u32s((0..size).map(|i| i.checked_rem(queues).unwrap_or(0)));
        self.call(CtrlType::SET_HASH_MAPPING, [self.table.gref(), size, 0])?;
        layout.size.store(size, Ordering::Release);
        layout.queues.store(queues, Ordering::Release);
        pr_info!(
            "RSS over the control ring: Toeplitz, hash types {:#x}, {} buckets over {} queues\n",
            wanted.0,
            size,
            queues
        );
        #[cfg(xennet_hostile)]
        if crate::hostile::mode() == crate::hostile::BAD_CTRL {
            self.hostile_requests(size);
        }
        Ok(())
    }

    /// Grant reuse: registers queue `queue`'s receive pages `rx` and
    /// transmit pages `tx` as static grants, as many as the backend holds
    /// (receive first). Returns how many it mapped; 0 if it offers none
    /// (the stock C netback answers `NOT_SUPPORTED`).
    pub(crate) fn register_static(&mut self, queue: u32, rx: &[u32], tx: &[u32]) -> Result<(usize, usize)> {
        let (st, size) = self.call_status(CtrlType::GET_GREF_MAPPING_SIZE, [queue, 0, 0])?;
        if st != CtrlStatus::SUCCESS {
            return Ok((0, 0));
        }
        let (nrx, ntx) = grant_reuse::plan(size, rx.len(), tx.len());
        let n = self.write_list(&rx[..nrx], &tx[..ntx])?;
        if n == 0 {
            return Ok((0, 0));
        }
        match self.call_status(CtrlType::ADD_GREF_MAPPING, [queue, self.list.gref(), n as u32])? {
            (CtrlStatus::SUCCESS, _) => Ok((nrx, ntx)),
            (st, _) => {
                pr_warn!("queue {}: the backend refused {} static grants (status {})\n", queue, n, st.0);
                Err(EINVAL)
            }
        }
    }

    /// Grant reuse: takes the pages registered by
    /// [`CtrlRing::register_static`] back (`DEL`); what the backend said.
    pub(crate) fn unregister_static(&mut self, queue: u32, rx: &[u32], tx: &[u32]) -> Result<grant_reuse::DelOutcome> {
        let n = self.write_list(rx, tx)?;
        // On the heap: a list page's worth each.
        let mut sent = KVec::from_elem(Gref::zeroed(), n, GFP_KERNEL)?;
        self.list.read(0, sent.as_mut_slice().as_mut_bytes())?;
        let (st, count) = self.call_status(CtrlType::DEL_GREF_MAPPING, [queue, self.list.gref(), n as u32])?;
        if st != CtrlStatus::SUCCESS {
            pr_warn!("queue {}: the backend refused to unmap {} static grants (status {})\n", queue, n, st.0);
            return Err(EINVAL);
        }
        let mut answered = KVec::from_elem(Gref::zeroed(), n, GFP_KERNEL)?;
        self.list.read(0, answered.as_mut_slice().as_mut_bytes())?;
        Ok(grant_reuse::check_del(&sent, &answered, count))
    }

    fn write_list(&mut self, rx: &[u32], tx: &[u32]) -> Result<usize> {
        let mut list = KVec::from_elem(Gref::zeroed(), (rx.len() + tx.len()).min(GREFS_PER_PAGE), GFP_KERNEL)?;
        let n = grant_reuse::fill_list(&mut list, rx, tx);
        self.list.write(0, list[..n].as_bytes())?;
        Ok(n)
    }

    /// Test-only (`BAD_STATIC`): static-grant requests a backend must
    /// refuse, a `DEL` of an unknown grant, then `DEL`/`ADD` cycles. `rx`
    /// and `tx` are queue 0's pages, all registered (512 entries: full).
    #[cfg(xennet_hostile)]
    pub(crate) fn hostile_static(&mut self, rx: &[u32], tx: &[u32]) {
        let list = self.list.gref();
        let expect_refused = |c: &mut Self, what: &str, entries: &[(u32, bool)], data: [u32; 3]| {
            let mut l = KVec::new();
            for &(g, ro) in entries {
                let f = if ro { crate::netif::GrefFlags::READONLY } else { crate::netif::GrefFlags(0) };
                let _ = l.push(Gref::new(g, f, 0), GFP_KERNEL);
            }
            let _ = c.list.write(0, l.as_slice().as_bytes());
            match c.call_status(CtrlType::ADD_GREF_MAPPING, data) {
                Ok((st, _)) if st != CtrlStatus::SUCCESS => {
                    pr_warn!("hostile: static grants ({}) refused as it must be (status {})\n", what, st.0)
                }
                r => pr_err!("hostile: static grants ({}) not refused: {:?}\n", what, r.map(|(s, d)| (s.0, d))),
            }
        };
        // Make room for 5 entries: 4 receive pages and a transmit one.
        match self.unregister_static(0, &rx[..4], &tx[..1]) {
            Ok(o) if o.removed == 5 && !o.inconsistent => {}
            r => pr_err!("hostile: DEL of 5 registered pages: {:?}\n", r.map(|o| (o.removed, o.refused))),
        }
        expect_refused(self, "grant 0xdead", &[(rx[0], false), (0xdead, false)], [0, list, 2]);
        expect_refused(self, "the same grant twice", &[(rx[0], false), (rx[0], false)], [0, list, 2]);
        expect_refused(self, "6 entries, room for 5", &[(rx[0], false); 6], [0, list, 6]);
        expect_refused(self, "513 entries, past the page", &[], [0, list, 513]);
        expect_refused(self, "list page not granted", &[], [0, 0xbeef, 1]);
        expect_refused(self, "writable entry for a read-only page", &[(rx[0], false), (tx[0], false)], [0, list, 2]);
        expect_refused(self, "a grant queue 0 already holds", &[(rx[10], false)], [0, list, 1]);
        // DEL of a grant never added: per-entry status, count 0.
        match self.unregister_static(0, &[0xdead], &[]) {
            Ok(o) if o.removed == 0 && o.refused == 1 && !o.inconsistent => {
                pr_warn!("hostile: DEL of an unknown grant answered per entry as it must be\n")
            }
            r => pr_err!("hostile: DEL of an unknown grant: {:?}\n", r.map(|o| (o.removed, o.refused))),
        }
        // A storm of ADD/DEL cycles (traffic meanwhile uses grant copy for
        // the pages out of the table).
        let mut ok = 0;
        for _ in 0..100 {
            if matches!(self.register_static(0, &rx[..4], &[]), Ok((4, 0)))
                && matches!(self.unregister_static(0, &rx[..4], &[]), Ok(o) if o.removed == 4)
            {
                ok += 1;
            }
        }
        let back = self.register_static(0, &rx[..4], &tx[..1]);
        pr_warn!("hostile: static grant storm: {} of 100 DEL/ADD cycles answered; pages back: {:?}\n", ok, back.map(|r| r.0));
    }

    /// Test-only: requests a backend must refuse, then a producer jump.
    #[cfg(xennet_hostile)]
    fn hostile_requests(&mut self, size: u32) {
        self.table.write_u32s([99].into_iter());
        let cases: [(&str, CtrlType, [u32; 3]); 5] = [
            ("mapping naming queue 99", CtrlType::SET_HASH_MAPPING, [self.table.gref(), 1, 0]),
            ("mapping beyond the table", CtrlType::SET_HASH_MAPPING, [self.table.gref(), 1, size]),
            ("41-byte key", CtrlType::SET_HASH_KEY, [self.key.gref(), 41, 0]),
            ("key in grant 0xdead", CtrlType::SET_HASH_KEY, [0xdead, 40, 0]),
            ("unknown request type 77", CtrlType(77), [0; 3]),
        ];
        for (what, ty, data) in cases {
            match self.call(ty, data) {
                Err(e) if e == EINVAL => pr_warn!("hostile: control request ({}) refused as it must be\n", what),
                r => pr_err!("hostile: control request ({}) not refused: {:?}\n", what, r),
            }
        }
        let ring = self.front.ring.shared();
        ring.fault_inject_req_prod(self.front.ring.req_prod_pvt().wrapping_add(1000));
        self.irq.notify();
        pr_warn!("hostile: control ring producer index 1000 ahead\n");
    }
}
