//! The backend's table of one queue's static grants: grant reference to
//! slot, with O(1) lookup for the data path.
//!
//! A slot is the unit the kernel glue attaches a mapped page to (slot `i`
//! always uses the glue's page `i`). Its life:
//!
//! ```text
//!   Free --stage--> Staged --commit--> Mapped --revoke--> Revoked --free--> Free
//!                      \--abort--> Free          (users > 0: the last release
//!                                                 hands it back for unmapping)
//! ```
//!
//! Only `Mapped` slots are found by [`GrefTable::lookup`]; `Staged` ones are
//! indexed too, so an `ADD` naming a gref twice is caught. A user
//! ([`GrefTable::acquire`]) is anything that touches the page outside the
//! table's lock (a DMA in flight, later): a revoked slot with users is
//! unmapped only when the last one releases it.
//!
//! The index is an open-addressed hash table with linear probing and
//! backward-shift deletion (no tombstones), at most half full. All-zero
//! bytes are an empty table with no room (`limit` 0), so a table can be
//! allocated zeroed.

use zerocopy_derive::FromZeros;

/// Slots a queue's table has at most (one full gref list page: 512).
pub const CAPACITY: usize = 512;
/// Index buckets: a power of two, at least twice [`CAPACITY`].
const BUCKETS: usize = 2 * CAPACITY;
const BUCKET_BITS: u32 = BUCKETS.trailing_zeros();
const MASK: usize = BUCKETS - 1;

const FREE: u8 = 0;
const STAGED: u8 = 1;
const MAPPED: u8 = 2;
const REVOKED: u8 = 3;

/// Why the table refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrefError {
    /// The grant is already in the table (mapped or staged).
    Duplicate,
    /// The table holds `limit` entries already.
    Full,
    /// No mapped entry for that grant.
    NotFound,
}

#[derive(Debug, Clone, Copy, FromZeros)]
#[repr(C)]
struct Slot {
    gref: u32,
    /// The mapping's handle (from the mapper), valid when mapped.
    handle: u32,
    users: u16,
    state: u8,
    readonly: u8,
}

/// A mapped entry found by [`GrefTable::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Its slot (the glue's page index).
    pub slot: u16,
    /// Mapped read-only: never write through it.
    pub readonly: bool,
}

/// What [`GrefTable::revoke`] left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Unmap `slot` (handle `handle`) now, then [`GrefTable::free`] it.
    Unmap { slot: u16, handle: u32 },
    /// The slot has users: the last [`GrefTable::release`] returns it.
    Deferred { slot: u16 },
}

/// One queue's static grants.
///
/// # Invariants
///
/// - every non-free slot is in `index` exactly once, except revoked ones,
///   which are in no bucket; free slots are in no bucket;
/// - `free[..free_len]` and `fresh..` (slots never used) are the free slots;
/// - `occupied` counts the non-free slots and never exceeds `limit`.
#[derive(FromZeros)]
pub struct GrefTable {
    slots: [Slot; CAPACITY],
    /// `slot + 1` per bucket; 0 is empty.
    index: [u16; BUCKETS],
    free: [u16; CAPACITY],
    free_len: u16,
    fresh: u16,
    staged: [u16; CAPACITY],
    staged_len: u16,
    occupied: u16,
    mapped: u16,
    limit: u16,
}

fn bucket_of(gref: u32) -> usize {
    // Fibonacci hashing: the top bits of the product.
    (gref.wrapping_mul(0x9E37_79B1) >> (32 - BUCKET_BITS)) as usize
}

impl GrefTable {
    /// Sets how many entries the queue may hold (the `GET_GREF_MAPPING_SIZE`
    /// answer), clamped to [`CAPACITY`]; never below what it holds.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(usize::from(self.occupied), CAPACITY) as u16;
    }

    /// Entries the queue may hold.
    pub fn limit(&self) -> usize {
        usize::from(self.limit)
    }

    /// Entries held: staged, mapped or revoked but not yet unmapped.
    pub fn occupied(&self) -> usize {
        usize::from(self.occupied)
    }

    /// Entries mapped (the data path can use them).
    pub fn mapped(&self) -> usize {
        usize::from(self.mapped)
    }

    /// Entries an `ADD` may still stage.
    pub fn room(&self) -> usize {
        usize::from(self.limit - self.occupied)
    }

    fn find_bucket(&self, gref: u32) -> Option<usize> {
        let mut b = bucket_of(gref);
        // Terminates: the index is at most half full, so an empty bucket
        // follows every run.
        loop {
            let e = self.index[b];
            if e == 0 {
                return None;
            }
            if self.slots[usize::from(e - 1)].gref == gref {
                return Some(b);
            }
            b = (b + 1) & MASK;
        }
    }

    fn unindex(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & MASK;
            let e = self.index[j];
            if e == 0 {
                break;
            }
            let home = bucket_of(self.slots[usize::from(e - 1)].gref);
            // The entry at `j` may move back to `hole` unless its home lies
            // cyclically in (hole, j].
            if (j.wrapping_sub(home) & MASK) >= (j.wrapping_sub(hole) & MASK) {
                self.index[hole] = e;
                hole = j;
            }
        }
        self.index[hole] = 0;
    }

    fn take_free_slot(&mut self) -> Option<u16> {
        if self.free_len > 0 {
            self.free_len -= 1;
            Some(self.free[usize::from(self.free_len)])
        } else if usize::from(self.fresh) < CAPACITY {
            self.fresh += 1;
            Some(self.fresh - 1)
        } else {
            None
        }
    }

    /// Records one entry of an `ADD`; it is not found by [`Self::lookup`]
    /// until [`Self::commit`].
    pub fn stage(&mut self, gref: u32, readonly: bool) -> Result<u16, GrefError> {
        if self.find_bucket(gref).is_some() {
            return Err(GrefError::Duplicate);
        }
        if self.occupied >= self.limit {
            return Err(GrefError::Full);
        }
        let slot = self.take_free_slot().ok_or(GrefError::Full)?;
        self.slots[usize::from(slot)] = Slot { gref, handle: 0, users: 0, state: STAGED, readonly: u8::from(readonly) };
        let mut b = bucket_of(gref);
        while self.index[b] != 0 {
            b = (b + 1) & MASK;
        }
        self.index[b] = slot + 1;
        self.staged[usize::from(self.staged_len)] = slot;
        self.staged_len += 1;
        self.occupied += 1;
        Ok(slot)
    }

    /// The staged slots, in the order they were staged.
    pub fn staged(&self) -> &[u16] {
        &self.staged[..usize::from(self.staged_len)]
    }

    /// The grant and read-only flag of a slot that is not free.
    pub fn entry(&self, slot: u16) -> Option<(u32, bool)> {
        let s = self.slots.get(usize::from(slot))?;
        (s.state != FREE).then_some((s.gref, s.readonly != 0))
    }

    /// Makes the staged slots usable, each with its mapping handle
    /// (`handles` in the order of [`Self::staged`]).
    pub fn commit(&mut self, handles: impl IntoIterator<Item = u32>) {
        let mut h = handles.into_iter();
        for i in 0..usize::from(self.staged_len) {
            let s = &mut self.slots[usize::from(self.staged[i])];
            s.handle = h.next().unwrap_or(0);
            s.state = MAPPED;
        }
        self.mapped += self.staged_len;
        self.staged_len = 0;
    }

    /// Forgets the staged slots (the `ADD` failed; the caller unmapped
    /// whatever it had mapped of them).
    pub fn abort(&mut self) {
        for i in 0..usize::from(self.staged_len) {
            let slot = self.staged[i];
            if let Some(b) = self.find_bucket(self.slots[usize::from(slot)].gref) {
                self.unindex(b);
            }
            self.release_slot(slot);
        }
        self.staged_len = 0;
    }

    fn release_slot(&mut self, slot: u16) {
        self.slots[usize::from(slot)] = Slot { gref: 0, handle: 0, users: 0, state: FREE, readonly: 0 };
        self.free[usize::from(self.free_len)] = slot;
        self.free_len += 1;
        self.occupied -= 1;
    }

    /// The mapped entry for `gref` (the data path's question).
    pub fn lookup(&self, gref: u32) -> Option<Hit> {
        let b = self.find_bucket(gref)?;
        let slot = self.index[b] - 1;
        let s = &self.slots[usize::from(slot)];
        (s.state == MAPPED).then_some(Hit { slot, readonly: s.readonly != 0 })
    }

    /// Whether `gref` is mapped and its slot in use (see [`Self::acquire`]).
    pub fn in_use(&self, gref: u32) -> bool {
        self.find_bucket(gref)
            .is_some_and(|b| self.slots[usize::from(self.index[b] - 1)].users > 0)
    }

    /// Takes a use of a mapped slot beyond the table's lock; false if the
    /// slot is not mapped (or has 65535 users already).
    pub fn acquire(&mut self, slot: u16) -> bool {
        match self.slots.get_mut(usize::from(slot)) {
            Some(s) if s.state == MAPPED && s.users < u16::MAX => {
                s.users += 1;
                true
            }
            _ => false,
        }
    }

    /// Ends a use from [`Self::acquire`]. If the slot was revoked meanwhile
    /// and this was its last user, returns it with its handle: the caller
    /// unmaps it, then [`Self::free`]s it.
    pub fn release(&mut self, slot: u16) -> Option<(u16, u32)> {
        let s = self.slots.get_mut(usize::from(slot))?;
        if s.users == 0 || !(s.state == MAPPED || s.state == REVOKED) {
            return None;
        }
        s.users -= 1;
        (s.state == REVOKED && s.users == 0).then_some((slot, s.handle))
    }

    /// Takes `gref` out of use (`DEL`): no lookup finds it from now on.
    pub fn revoke(&mut self, gref: u32) -> Result<Revoked, GrefError> {
        let b = self.find_bucket(gref).ok_or(GrefError::NotFound)?;
        let slot = self.index[b] - 1;
        let s = self.slots[usize::from(slot)];
        if s.state != MAPPED {
            return Err(GrefError::NotFound);
        }
        self.unindex(b);
        self.slots[usize::from(slot)].state = REVOKED;
        self.mapped -= 1;
        Ok(if s.users == 0 {
            Revoked::Unmap { slot, handle: s.handle }
        } else {
            Revoked::Deferred { slot }
        })
    }

    /// Returns a revoked slot without users (unmapped by the caller) to the
    /// free slots; false (and nothing done) for any other slot.
    pub fn free(&mut self, slot: u16) -> bool {
        match self.slots.get(usize::from(slot)) {
            Some(s) if s.state == REVOKED && s.users == 0 => {
                self.release_slot(slot);
                true
            }
            _ => false,
        }
    }

    /// Revokes every mapped entry (teardown) and calls `unmap(slot, handle)`
    /// for each one without users, which is then freed. Returns how many
    /// slots still have users (they come back through [`Self::release`]).
    pub fn revoke_all(&mut self, mut unmap: impl FnMut(u16, u32)) -> usize {
        self.abort();
        for slot in 0..self.fresh {
            let s = self.slots[usize::from(slot)];
            if s.state == MAPPED {
                if let Ok(Revoked::Unmap { slot, handle }) = self.revoke(s.gref) {
                    unmap(slot, handle);
                    self.free(slot);
                }
            } else if s.state == REVOKED && s.users == 0 {
                unmap(slot, s.handle);
                self.free(slot);
            }
        }
        self.occupied()
    }

    /// Mapped slots with their grant and handle (for checks and teardown).
    pub fn mapped_slots(&self) -> impl Iterator<Item = (u16, u32, u32)> + '_ {
        (0..self.fresh).filter_map(|i| {
            let s = &self.slots[usize::from(i)];
            (s.state == MAPPED).then_some((i, s.gref, s.handle))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::boxed::Box;
    use std::collections::HashMap;
    use zerocopy::FromZeros;

    fn table(limit: usize) -> Box<GrefTable> {
        let mut t = GrefTable::new_box_zeroed().unwrap();
        t.set_limit(limit);
        t
    }

    #[test]
    fn zeroed_table_has_no_room() {
        let mut t = GrefTable::new_box_zeroed().unwrap();
        assert_eq!(t.stage(1, false), Err(GrefError::Full));
        assert_eq!(t.lookup(1), None);
    }

    #[test]
    fn staged_entries_are_not_found_until_committed() {
        let mut t = table(4);
        let s = t.stage(7, true).unwrap();
        assert_eq!(t.lookup(7), None);
        assert_eq!(t.stage(7, false), Err(GrefError::Duplicate));
        t.commit([99]);
        assert_eq!(t.lookup(7), Some(Hit { slot: s, readonly: true }));
        assert_eq!(t.revoke(7), Ok(Revoked::Unmap { slot: s, handle: 99 }));
        assert_eq!(t.lookup(7), None);
        assert!(t.free(s));
        assert_eq!(t.occupied(), 0);
    }

    #[test]
    fn abort_frees_everything_staged() {
        let mut t = table(3);
        t.stage(1, false).unwrap();
        t.stage(2, false).unwrap();
        t.stage(3, false).unwrap();
        assert_eq!(t.stage(4, false), Err(GrefError::Full));
        t.abort();
        assert_eq!(t.occupied(), 0);
        assert_eq!(t.lookup(1), None);
        for g in 4..7 {
            t.stage(g, false).unwrap();
        }
        t.commit([1, 2, 3]);
        assert_eq!(t.mapped(), 3);
    }

    #[test]
    fn revoking_a_slot_in_use_defers_the_unmap() {
        let mut t = table(2);
        let s = t.stage(5, false).unwrap();
        t.commit([50]);
        assert!(t.acquire(s));
        assert_eq!(t.revoke(5), Ok(Revoked::Deferred { slot: s }));
        assert!(!t.acquire(s), "no new use after revoke");
        assert!(!t.free(s), "cannot free while in use");
        assert_eq!(t.revoke(5), Err(GrefError::NotFound));
        // The grant may be added again meanwhile: the revoked slot is apart.
        let s2 = t.stage(5, false).unwrap();
        assert_ne!(s, s2);
        t.commit([51]);
        assert_eq!(t.release(s), Some((s, 50)));
        assert!(t.free(s));
        assert_eq!(t.lookup(5), Some(Hit { slot: s2, readonly: false }));
    }

    #[test]
    fn revoke_all_leaves_slots_in_use() {
        let mut t = table(8);
        for g in 0..5 {
            t.stage(g * 1024, false).unwrap();
        }
        t.commit(10..15);
        t.stage(77, false).unwrap();
        let busy = t.lookup(1024).unwrap().slot;
        assert!(t.acquire(busy));
        let mut unmapped = std::vec::Vec::new();
        assert_eq!(t.revoke_all(|s, h| unmapped.push((s, h))), 1);
        assert_eq!(unmapped.len(), 4);
        assert_eq!(t.release(busy), Some((busy, 11)));
        assert!(t.free(busy));
        assert_eq!(t.occupied(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Stage(u32, bool),
        Commit,
        Abort,
        Revoke(u32),
        Acquire(u32),
        Release(u32),
    }

    /// Grants whose home buckets are the last two and the first two: long
    /// probe runs that wrap around the end, which exercises probing and the
    /// backward shift.
    fn colliding() -> std::vec::Vec<u32> {
        (0u32..).filter(|&g| matches!(bucket_of(g), 0 | 1 | 1022 | 1023)).take(40).collect()
    }

    fn op() -> impl Strategy<Value = Op> {
        let c = colliding();
        let g = prop_oneof![0u32..40, (0usize..40).prop_map(move |i| c[i])];
        prop_oneof![
            4 => (g.clone(), any::<bool>()).prop_map(|(g, r)| Op::Stage(g, r)),
            2 => Just(Op::Commit),
            1 => Just(Op::Abort),
            2 => g.clone().prop_map(Op::Revoke),
            1 => g.clone().prop_map(Op::Acquire),
            1 => g.prop_map(Op::Release),
        ]
    }

    proptest! {
        /// Against a model: lookups find exactly the committed, unrevoked
        /// grants; a slot is never handed out twice; every mapping comes
        /// back for unmapping exactly once; the limit holds.
        #[test]
        fn behaves_like_the_model(limit in 1usize..24, ops in proptest::collection::vec(op(), 1..300)) {
            let mut t = table(limit);
            let mut mapped: HashMap<u32, (u16, bool, u32)> = HashMap::new();
            let mut staged: std::vec::Vec<(u32, bool)> = std::vec::Vec::new();
            let mut users: HashMap<u16, u32> = HashMap::new();
            let mut revoked_busy: HashMap<u16, u32> = HashMap::new();
            let mut next_handle = 1000u32;
            let mut live_handles = std::collections::HashSet::new();
            for o in ops {
                match o {
                    Op::Stage(g, r) => {
                        let dup = mapped.contains_key(&g) || staged.iter().any(|s| s.0 == g);
                        let held = mapped.len() + staged.len() + revoked_busy.len();
                        let res = t.stage(g, r);
                        if dup { prop_assert_eq!(res, Err(GrefError::Duplicate)); }
                        else if held >= limit { prop_assert_eq!(res, Err(GrefError::Full)); }
                        else { prop_assert!(res.is_ok()); staged.push((g, r)); }
                    }
                    Op::Commit => {
                        let slots: std::vec::Vec<u16> = t.staged().to_vec();
                        let hs: std::vec::Vec<u32> = slots.iter().map(|_| { next_handle += 1; next_handle }).collect();
                        for h in &hs { live_handles.insert(*h); }
                        t.commit(hs.iter().copied());
                        for ((g, r), (s, h)) in staged.drain(..).zip(slots.into_iter().zip(hs)) {
                            mapped.insert(g, (s, r, h));
                        }
                    }
                    Op::Abort => { t.abort(); staged.clear(); }
                    Op::Revoke(g) => {
                        let res = t.revoke(g);
                        match mapped.remove(&g) {
                            None => prop_assert_eq!(res, Err(GrefError::NotFound)),
                            Some((s, _, h)) => {
                                if users.get(&s).copied().unwrap_or(0) == 0 {
                                    prop_assert_eq!(res, Ok(Revoked::Unmap { slot: s, handle: h }));
                                    prop_assert!(live_handles.remove(&h), "unmapped twice");
                                    prop_assert!(t.free(s));
                                } else {
                                    prop_assert_eq!(res, Ok(Revoked::Deferred { slot: s }));
                                    revoked_busy.insert(s, h);
                                }
                            }
                        }
                    }
                    Op::Acquire(g) => {
                        if let Some(&(s, _, _)) = mapped.get(&g) {
                            prop_assert!(t.acquire(s));
                            *users.entry(s).or_default() += 1;
                        }
                    }
                    Op::Release(g) => {
                        // Release one use of whichever slot `g` picks among
                        // those in use.
                        let mut busy: std::vec::Vec<u16> = users.iter().filter(|e| *e.1 > 0).map(|e| *e.0).collect();
                        busy.sort();
                        if busy.is_empty() { continue; }
                        let s = busy[g as usize % busy.len()];
                        let n = users.get_mut(&s).unwrap();
                        *n -= 1;
                        let res = t.release(s);
                        match (revoked_busy.get(&s).copied(), *n) {
                            (Some(h), 0) => {
                                prop_assert_eq!(res, Some((s, h)));
                                prop_assert!(live_handles.remove(&h));
                                prop_assert!(t.free(s));
                                revoked_busy.remove(&s);
                            }
                            _ => prop_assert_eq!(res, None),
                        }
                    }
                }
                for (g, (s, r, _)) in &mapped {
                    prop_assert_eq!(t.lookup(*g), Some(Hit { slot: *s, readonly: *r }));
                }
                for (g, _) in &staged {
                    prop_assert_eq!(t.lookup(*g), None);
                }
                prop_assert_eq!(t.mapped(), mapped.len());
                prop_assert_eq!(t.occupied(), mapped.len() + staged.len() + revoked_busy.len());
                prop_assert!(t.occupied() <= limit);
                let mut seen = std::collections::HashSet::new();
                for (s, _, _) in mapped.values() { prop_assert!(seen.insert(*s), "slot shared"); }
                for s in revoked_busy.keys() { prop_assert!(seen.insert(*s), "slot shared"); }
            }
            // Teardown returns every mapping not in use, once.
            t.abort();
            let mut back = std::vec::Vec::new();
            let busy = t.revoke_all(|s, h| back.push((s, h)));
            prop_assert_eq!(busy, revoked_busy.len() + mapped.values().filter(|m| users.get(&m.0).copied().unwrap_or(0) > 0).count());
            for (_, h) in back { prop_assert!(live_handles.remove(&h), "unmapped twice at teardown"); }
        }
    }
}
