//! Backend side: one queue's static grants, mapped through a [`Mapper`].
//!
//! [`QueueGrants`] does what the control ring's `ADD`/`DEL` ask of one
//! queue (the netif core parses and validates the requests and their gref
//! lists, then calls the `GrefStore` the glue builds over these), and
//! answers the data path's question: is this grant mapped, and where.
//!
//! - `ADD` is all or nothing: its entries are staged, then mapped in one
//!   batch; if any map fails, the ones that worked are unmapped and the
//!   table is as before.
//! - `DEL` revokes an entry at once (no lookup finds it afterwards) and
//!   unmaps it, or, if something still uses the page (a DMA in flight),
//!   when the last use ends.
//! - Teardown revokes and unmaps everything.
//!
//! The caller serialises access (the kernel holds the queue's lock around
//! every call, and around every use of a page it looked up).

use super::super::netif::{CtrlStatus, Error, GrantRef, Result};
use super::table::{GrefError, GrefTable, Hit, Revoked, CAPACITY};
use zerocopy_derive::FromZeros;

/// One grant to map into (or unmap from) a slot's page.
#[derive(Debug, Clone, Copy, Default, FromZeros)]
pub struct MapOp {
    /// The slot whose page receives the mapping.
    pub slot: u16,
    /// Map read-only.
    pub readonly: bool,
    /// Set by [`Mapper::map`]: the mapping worked.
    pub ok: bool,
    /// The grant.
    pub gref: GrantRef,
    /// Set by [`Mapper::map`]: the handle to unmap it with.
    pub handle: u32,
}

/// Maps and unmaps the frontend's grants into the pages of a queue's slots
/// (real grant-table operations in the kernel, a simulated hypervisor on
/// the host).
pub trait Mapper {
    /// Maps every op's grant into its slot's page, in as few hypercalls as
    /// possible; sets `ok` and `handle` of each.
    fn map(&mut self, ops: &mut [MapOp]);
    /// Unmaps mappings made by [`Mapper::map`] (`slot` and `handle` set).
    fn unmap(&mut self, ops: &[MapOp]);
}

/// Counters for `ethtool -S`.
#[derive(Debug, Clone, Copy, Default, FromZeros)]
pub struct ReuseStats {
    /// Data-path lookups that found a mapping (a copy without hypercall).
    pub hits: u64,
    /// Lookups that did not (the packet went through grant copy).
    pub misses: u64,
    /// Map operations and map hypercall batches.
    pub map_ops: u64,
    pub map_calls: u64,
    /// Unmap operations and unmap hypercall batches.
    pub unmap_ops: u64,
    pub unmap_calls: u64,
    /// `ADD` requests refused (duplicates, room, failed maps).
    pub add_refused: u64,
    /// `DEL`s refused because the page was in use (posted to a NIC queue):
    /// the frontend may ask again once the request naming it is answered.
    pub del_in_use: u64,
}

/// One queue's static grants: the table, the map batch and the counters.
/// All-zero is a queue without static grants (limit 0).
#[derive(FromZeros)]
pub struct QueueGrants {
    /// The table (grant to slot).
    pub table: GrefTable,
    /// The counters.
    pub stats: ReuseStats,
    batch: [MapOp; CAPACITY],
}

impl QueueGrants {
    /// Entries the queue may hold (`GET_GREF_MAPPING_SIZE`).
    pub fn mapping_size(&self) -> u32 {
        self.table.limit() as u32
    }

    /// Records one entry of an `ADD`.
    pub fn stage(&mut self, gref: GrantRef, readonly: bool) -> Result<()> {
        self.table.stage(gref, readonly).map(drop).map_err(|e| match e {
            GrefError::Duplicate => Error::CtrlGrefAlreadyMapped,
            _ => Error::CtrlGrefListBadSize,
        })
    }

    /// Maps every staged entry in one batch; all or nothing.
    pub fn commit<M: Mapper>(&mut self, m: &mut M) -> Result<()> {
        let n = self.table.staged().len();
        if n == 0 {
            return Ok(());
        }
        for (op, &slot) in self.batch.iter_mut().zip(self.table.staged()) {
            let (gref, readonly) = self.table.entry(slot).unwrap_or_default();
            *op = MapOp { slot, readonly, ok: false, gref, handle: 0 };
        }
        let ops = &mut self.batch[..n];
        m.map(ops);
        self.stats.map_ops += n as u64;
        self.stats.map_calls += 1;
        if ops.iter().all(|o| o.ok) {
            self.table.commit(ops.iter().map(|o| o.handle));
            return Ok(());
        }
        // Undo the maps that worked, in one batch.
        let mut undo = 0;
        for i in 0..n {
            if self.batch[i].ok {
                self.batch[undo] = self.batch[i];
                undo += 1;
            }
        }
        if undo > 0 {
            m.unmap(&self.batch[..undo]);
            self.stats.unmap_ops += undo as u64;
            self.stats.unmap_calls += 1;
        }
        self.table.abort();
        self.stats.add_refused += 1;
        Err(Error::GrantBad)
    }

    /// Forgets the staged entries (the `ADD` was refused before mapping).
    pub fn abort(&mut self) {
        if !self.table.staged().is_empty() {
            self.stats.add_refused += 1;
        }
        self.table.abort();
    }

    /// `DEL` of one entry: the status to report for it. An entry in use
    /// (its page posted to a NIC queue) is not removed, as Xen's commit
    /// adding the messages has it ("if the grefs are not in use"): that
    /// entry is answered `INVALID_PARAMETER`, not counted as unmapped, and
    /// stays usable; the frontend may ask again once the request naming
    /// the page is answered.
    pub fn remove<M: Mapper>(&mut self, gref: GrantRef, m: &mut M) -> CtrlStatus {
        if self.table.in_use(gref) {
            self.stats.del_in_use += 1;
            return CtrlStatus::INVALID_PARAMETER;
        }
        match self.table.revoke(gref) {
            Ok(Revoked::Unmap { slot, handle }) => {
                self.unmap_one(slot, handle, m);
                CtrlStatus::SUCCESS
            }
            // Not in use (checked above): cannot be deferred.
            Ok(Revoked::Deferred { .. }) => CtrlStatus::SUCCESS,
            Err(_) => CtrlStatus::INVALID_PARAMETER,
        }
    }

    /// `DEL` of several entries at once (a backend's own per-buffer
    /// mappings, done with): those not in use are unmapped in one batch,
    /// those in use when their last user is done. Returns how many were
    /// found.
    pub fn remove_batch<M: Mapper>(&mut self, grefs: &[GrantRef], m: &mut M) -> usize {
        let mut found = 0;
        let mut n = 0;
        for &gref in grefs {
            match self.table.revoke(gref) {
                Ok(Revoked::Unmap { slot, handle }) => {
                    found += 1;
                    if let Some(op) = self.batch.get_mut(n) {
                        *op = MapOp { slot, readonly: false, ok: true, gref: 0, handle };
                        n += 1;
                    } else {
                        self.unmap_one(slot, handle, m);
                    }
                }
                Ok(Revoked::Deferred { .. }) => found += 1,
                Err(_) => {}
            }
        }
        if n > 0 {
            m.unmap(&self.batch[..n]);
            self.stats.unmap_ops += n as u64;
            self.stats.unmap_calls += 1;
            for i in 0..n {
                let slot = self.batch[i].slot;
                self.table.free(slot);
            }
        }
        found
    }

    fn unmap_one<M: Mapper>(&mut self, slot: u16, handle: u32, m: &mut M) {
        m.unmap(&[MapOp { slot, readonly: false, ok: true, gref: 0, handle }]);
        self.stats.unmap_ops += 1;
        self.stats.unmap_calls += 1;
        self.table.free(slot);
    }

    /// Ends a use taken with `table.acquire`; unmaps the slot if it was
    /// revoked meanwhile and this was the last use.
    pub fn release<M: Mapper>(&mut self, slot: u16, m: &mut M) {
        if let Some((slot, handle)) = self.table.release(slot) {
            self.unmap_one(slot, handle, m);
        }
    }

    /// The data path's lookup (counted): the mapping of `gref`, if any.
    pub fn lookup(&mut self, gref: GrantRef) -> Option<Hit> {
        let hit = self.table.lookup(gref);
        if hit.is_some() {
            self.stats.hits += 1;
        } else {
            self.stats.misses += 1;
        }
        hit
    }

    /// Whether the frontend has registered anything (the data path skips
    /// lookups otherwise).
    pub fn active(&self) -> bool {
        self.table.mapped() > 0
    }

    /// Teardown: unmaps everything not in use, in one batch. Returns how
    /// many slots are still in use (unmapped by their last `release`).
    pub fn revoke_all<M: Mapper>(&mut self, m: &mut M) -> usize {
        let mut n = 0;
        let batch = &mut self.batch;
        let busy = self.table.revoke_all(|slot, handle| {
            batch[n] = MapOp { slot, readonly: false, ok: true, gref: 0, handle };
            n += 1;
        });
        if n > 0 {
            m.unmap(&self.batch[..n]);
            self.stats.unmap_ops += n as u64;
            self.stats.unmap_calls += 1;
        }
        busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::collections::HashMap;
    use zerocopy::FromZeros;

    /// Maps grants below 1000; counts live mappings.
    #[derive(Default)]
    struct Fake {
        live: HashMap<u32, u16>,
        next: u32,
        calls: usize,
        unmap_calls: usize,
    }

    impl Mapper for Fake {
        fn map(&mut self, ops: &mut [MapOp]) {
            self.calls += 1;
            for o in ops {
                o.ok = o.gref < 1000;
                if o.ok {
                    self.next += 1;
                    o.handle = self.next;
                    self.live.insert(o.handle, o.slot);
                }
            }
        }
        fn unmap(&mut self, ops: &[MapOp]) {
            self.unmap_calls += 1;
            for o in ops {
                assert_eq!(self.live.remove(&o.handle), Some(o.slot), "unmap of a handle not mapped");
            }
        }
    }

    fn queue(limit: usize) -> Box<QueueGrants> {
        let mut q = QueueGrants::new_box_zeroed().unwrap();
        q.table.set_limit(limit);
        q
    }

    #[test]
    fn add_is_one_batch_and_all_or_nothing() {
        let (mut q, mut m) = (queue(8), Fake::default());
        for g in [1, 2, 3] {
            q.stage(g, false).unwrap();
        }
        q.commit(&mut m).unwrap();
        assert_eq!(m.calls, 1);
        assert_eq!(m.live.len(), 3);
        for g in [4, 5000, 6] {
            q.stage(g, false).unwrap();
        }
        assert_eq!(q.commit(&mut m), Err(Error::GrantBad));
        assert_eq!(m.live.len(), 3, "the maps that worked were undone");
        assert!(q.lookup(4).is_none() && q.lookup(6).is_none());
        assert!(q.lookup(2).is_some());
        assert_eq!(q.stage(2, false), Err(Error::CtrlGrefAlreadyMapped));
    }

    #[test]
    fn del_unmaps_and_reports_per_entry() {
        let (mut q, mut m) = (queue(8), Fake::default());
        q.stage(1, false).unwrap();
        q.commit(&mut m).unwrap();
        assert_eq!(q.remove(9, &mut m), CtrlStatus::INVALID_PARAMETER);
        assert_eq!(q.remove(1, &mut m), CtrlStatus::SUCCESS);
        assert!(m.live.is_empty());
        assert_eq!(q.remove(1, &mut m), CtrlStatus::INVALID_PARAMETER);
    }

    #[test]
    fn del_of_a_page_in_use_is_refused_until_released() {
        let (mut q, mut m) = (queue(8), Fake::default());
        q.stage(1, false).unwrap();
        q.commit(&mut m).unwrap();
        let hit = q.lookup(1).unwrap();
        assert!(q.table.acquire(hit.slot));
        assert_eq!(q.remove(1, &mut m), CtrlStatus::INVALID_PARAMETER);
        assert_eq!(q.stats.del_in_use, 1);
        assert!(q.lookup(1).is_some(), "still registered");
        assert_eq!(m.live.len(), 1, "still mapped while in use");
        q.release(hit.slot, &mut m);
        assert_eq!(m.live.len(), 1, "a release alone unmaps nothing");
        assert_eq!(q.remove(1, &mut m), CtrlStatus::SUCCESS);
        assert!(m.live.is_empty());
        assert_eq!(q.table.occupied(), 0);
    }

    #[test]
    fn teardown_waits_for_pages_in_use() {
        let (mut q, mut m) = (queue(8), Fake::default());
        q.stage(1, false).unwrap();
        q.commit(&mut m).unwrap();
        let hit = q.lookup(1).unwrap();
        assert!(q.table.acquire(hit.slot));
        assert_eq!(q.revoke_all(&mut m), 1, "one page still in use");
        assert!(q.lookup(1).is_none(), "no use after teardown");
        assert_eq!(m.live.len(), 1);
        q.release(hit.slot, &mut m);
        assert!(m.live.is_empty());
        assert_eq!(q.table.occupied(), 0);
    }

    #[test]
    fn batched_del_unmaps_in_one_call_and_defers_pages_in_use() {
        let (mut q, mut m) = (queue(8), Fake::default());
        for g in [1, 2, 3, 4] {
            q.stage(g, false).unwrap();
        }
        q.commit(&mut m).unwrap();
        let held = q.lookup(3).unwrap();
        assert!(q.table.acquire(held.slot));
        assert_eq!(q.remove_batch(&[1, 2, 3, 77], &mut m), 3);
        assert_eq!(m.unmap_calls, 1);
        assert_eq!(m.live.len(), 2, "grant 4 still mapped, grant 3 in use");
        assert!(q.lookup(1).is_none() && q.lookup(3).is_none());
        q.release(held.slot, &mut m);
        assert_eq!(m.live.len(), 1);
        assert_eq!(q.table.occupied(), 1);
        assert_eq!(q.remove_batch(&[], &mut m), 0);
        assert_eq!(m.unmap_calls, 2, "one more for the release of grant 3, none for an empty batch");
    }

    #[test]
    fn teardown_unmaps_everything() {
        let (mut q, mut m) = (queue(CAPACITY), Fake::default());
        for g in 0..CAPACITY as u32 {
            q.stage(g, g % 2 == 0).unwrap();
        }
        q.commit(&mut m).unwrap();
        assert_eq!(q.stage(999, false), Err(Error::CtrlGrefListBadSize));
        q.abort();
        assert_eq!(q.revoke_all(&mut m), 0);
        assert!(m.live.is_empty());
        assert_eq!(q.table.occupied(), 0);
    }
}
