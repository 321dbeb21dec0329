//! A grant table shared by all simulated domains.
//!
//! Models the checks of Xen's grant table: a grant names one grantee and may
//! be read-only; map and copy check both; a grant cannot be ended while it is
//! still mapped (XSA-396 class); copies may not cross the page.

use crate::page::PageRef;
use grant_reuse::{Hit, MapOp, Mapper, QueueGrants};
use netif::{CtrlStatus, Error, GrantOps, GrantRef, GrefStore, Result, PAGE_SIZE};
use zerocopy::FromZeros;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A domain id.
pub type DomId = u16;

struct Entry {
    page: PageRef,
    grantee: DomId,
    readonly: bool,
    maps: u32,
}

struct MapEntry {
    granter: DomId,
    gref: GrantRef,
    mapper: DomId,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(DomId, GrantRef), Entry>,
    next_ref: HashMap<DomId, GrantRef>,
    maps: HashMap<u32, MapEntry>,
    next_handle: u32,
    copies: u64,
}

/// The hypervisor's grant table.
#[derive(Clone, Default)]
pub struct GrantTable(Arc<Mutex<Inner>>);

/// One side of a grant copy.
#[derive(Clone)]
pub enum CopyPtr {
    /// A page granted by `dom`.
    Gref {
        /// Granting domain.
        dom: DomId,
        /// Grant reference.
        gref: GrantRef,
        /// Offset in the page.
        offset: usize,
    },
    /// A page of the calling domain.
    Local {
        /// The page.
        page: PageRef,
        /// Offset in the page.
        offset: usize,
    },
}

/// A page mapped through a grant.
#[derive(Clone)]
pub struct Mapping {
    /// Handle for `unmap`.
    pub handle: u32,
    /// The mapped page.
    pub page: PageRef,
    /// Mapped read-only.
    pub readonly: bool,
}

impl GrantTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// `granter` grants `grantee` access to `page`.
    pub fn grant(
        &self,
        granter: DomId,
        grantee: DomId,
        page: &PageRef,
        readonly: bool,
    ) -> GrantRef {
        let mut t = self.0.lock().unwrap();
        let next = t.next_ref.entry(granter).or_insert(8); // low refs are reserved in Xen
        let gref = *next;
        *next += 1;
        t.entries.insert(
            (granter, gref),
            Entry {
                page: page.clone(),
                grantee,
                readonly,
                maps: 0,
            },
        );
        gref
    }

    /// Ends a grant; refused while the grantee still has it mapped.
    pub fn end_access(&self, granter: DomId, gref: GrantRef) -> Result<()> {
        let mut t = self.0.lock().unwrap();
        match t.entries.get(&(granter, gref)) {
            None => Err(Error::GrantBad),
            Some(e) if e.maps > 0 => Err(Error::GrantStillMapped),
            Some(_) => {
                t.entries.remove(&(granter, gref));
                Ok(())
            }
        }
    }

    /// `mapper` maps grant `gref` of `granter`.
    pub fn map(
        &self,
        mapper: DomId,
        granter: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<Mapping> {
        let mut t = self.0.lock().unwrap();
        let e = t.entries.get_mut(&(granter, gref)).ok_or(Error::GrantBad)?;
        if e.grantee != mapper {
            return Err(Error::GrantBad);
        }
        if e.readonly && !readonly {
            return Err(Error::GrantReadOnly);
        }
        e.maps += 1;
        let page = e.page.clone();
        t.next_handle += 1;
        let handle = t.next_handle;
        t.maps.insert(
            handle,
            MapEntry {
                granter,
                gref,
                mapper,
            },
        );
        Ok(Mapping {
            handle,
            page,
            readonly,
        })
    }

    /// Unmaps a handle.
    pub fn unmap(&self, mapper: DomId, handle: u32) -> Result<()> {
        let mut t = self.0.lock().unwrap();
        match t.maps.get(&handle) {
            Some(m) if m.mapper == mapper => {}
            _ => return Err(Error::GrantBad),
        }
        let m = t.maps.remove(&handle).expect("checked");
        if let Some(e) = t.entries.get_mut(&(m.granter, m.gref)) {
            e.maps -= 1;
        }
        Ok(())
    }

    fn resolve(
        t: &Inner,
        caller: DomId,
        p: &CopyPtr,
        len: usize,
        write: bool,
    ) -> Result<(PageRef, usize)> {
        let (page, offset) = match p {
            CopyPtr::Local { page, offset } => (page.clone(), *offset),
            CopyPtr::Gref { dom, gref, offset } => {
                let e = t.entries.get(&(*dom, *gref)).ok_or(Error::GrantBad)?;
                if e.grantee != caller {
                    return Err(Error::GrantBad);
                }
                if write && e.readonly {
                    return Err(Error::GrantReadOnly);
                }
                (e.page.clone(), *offset)
            }
        };
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(Error::GrantOutOfPage);
        }
        Ok((page, offset))
    }

    /// `GNTTABOP_copy` of `len` bytes by `caller`.
    pub fn copy(&self, caller: DomId, src: &CopyPtr, dst: &CopyPtr, len: usize) -> Result<()> {
        let (sp, so, dp, d_off) = {
            let mut t = self.0.lock().unwrap();
            let (sp, so) = Self::resolve(&t, caller, src, len, false)?;
            let (dp, d_off) = Self::resolve(&t, caller, dst, len, true)?;
            t.copies += 1;
            (sp, so, dp, d_off)
        };
        let mut buf = vec![0u8; len];
        sp.read(so, &mut buf);
        dp.write(d_off, &buf);
        Ok(())
    }

    /// Live grants of `granter`.
    pub fn grants_of(&self, granter: DomId) -> usize {
        self.0
            .lock()
            .unwrap()
            .entries
            .keys()
            .filter(|(d, _)| *d == granter)
            .count()
    }

    /// Whether `handle` is a live mapping of `mapper`.
    pub fn is_mapped(&self, mapper: DomId, handle: u32) -> bool {
        self.0.lock().unwrap().maps.get(&handle).is_some_and(|m| m.mapper == mapper)
    }

    /// Live mappings.
    pub fn mappings(&self) -> usize {
        self.0.lock().unwrap().maps.len()
    }

    /// Copies performed.
    pub fn copies(&self) -> u64 {
        self.0.lock().unwrap().copies
    }
}

/// [`GrantOps`] for one domain acting on grants of a peer domain.
pub struct DomainGrants {
    /// The grant table.
    pub gt: GrantTable,
    /// Acting domain.
    pub me: DomId,
    /// Domain whose grants are used.
    pub peer: DomId,
    mapped: HashMap<u32, Mapping>,
    /// Static grants per queue (`grant_reuse` over this grant table), and
    /// the mapping held in each queue's slots.
    pub statics: Vec<Box<QueueGrants>>,
    slot_maps: Vec<HashMap<u16, Mapping>>,
}

/// `grant_reuse`'s mapper over the simulated grant table: slot `i` of a
/// queue holds one [`Mapping`].
struct SimMapper<'a> {
    gt: &'a GrantTable,
    me: DomId,
    peer: DomId,
    slots: &'a mut HashMap<u16, Mapping>,
}

impl Mapper for SimMapper<'_> {
    fn map(&mut self, ops: &mut [MapOp]) {
        for o in ops {
            match self.gt.map(self.me, self.peer, o.gref, o.readonly) {
                Ok(m) => {
                    o.ok = true;
                    o.handle = m.handle;
                    assert!(self.slots.insert(o.slot, m).is_none(), "slot {} mapped twice", o.slot);
                }
                Err(_) => o.ok = false,
            }
        }
    }
    fn unmap(&mut self, ops: &[MapOp]) {
        for o in ops {
            let m = self.slots.remove(&o.slot).expect("unmap of an empty slot");
            assert_eq!(m.handle, o.handle, "slot and handle disagree");
            self.gt.unmap(self.me, o.handle).expect("unmap of a live mapping");
        }
    }
}

impl DomainGrants {
    /// Grant operations of `me` on `peer`'s grants.
    pub fn new(gt: GrantTable, me: DomId, peer: DomId) -> Self {
        Self {
            gt,
            me,
            peer,
            mapped: HashMap::new(),
            statics: Vec::new(),
            slot_maps: Vec::new(),
        }
    }

    /// The same, offering `limit` static grants on each of `queues` queues.
    pub fn with_static_grants(gt: GrantTable, me: DomId, peer: DomId, queues: usize, limit: usize) -> Self {
        let mut g = Self::new(gt, me, peer);
        for _ in 0..queues {
            let mut q = QueueGrants::new_box_zeroed().expect("allocation");
            q.table.set_limit(limit);
            g.statics.push(q);
            g.slot_maps.push(HashMap::new());
        }
        g
    }

    fn mapper(&mut self, queue: usize) -> (&mut QueueGrants, SimMapper<'_>) {
        let m = SimMapper { gt: &self.gt, me: self.me, peer: self.peer, slots: &mut self.slot_maps[queue] };
        (&mut self.statics[queue], m)
    }

    /// The data path's use of a static grant: the page mapped for `gref` on
    /// `queue`, checked to be a live mapping of that very grant.
    pub fn static_page(&mut self, queue: usize, gref: GrantRef) -> Option<(Hit, PageRef)> {
        let hit = self.statics.get_mut(queue)?.lookup(gref)?;
        let m = &self.slot_maps[queue][&hit.slot];
        assert!(self.gt.is_mapped(self.me, m.handle), "lookup found a slot that is not mapped");
        Some((hit, m.page.clone()))
    }

    /// A use of a static grant's slot beyond the lookup (a page posted to a
    /// NIC for DMA): false if the slot is not mapped.
    pub fn acquire_static(&mut self, queue: usize, slot: u16) -> bool {
        self.statics[queue].table.acquire(slot)
    }

    /// Ends a use from [`DomainGrants::acquire_static`]; the slot is
    /// unmapped if it was revoked meanwhile and this was its last use.
    pub fn release_static(&mut self, queue: usize, slot: u16) {
        let (qg, mut m) = self.mapper(queue);
        qg.release(slot, &mut m);
    }

    /// Teardown while pages may still be in use: unmaps every idle slot;
    /// returns how many stay mapped until their last use is released.
    pub fn revoke_all_static_busy(&mut self) -> usize {
        (0..self.statics.len())
            .map(|q| {
                let (qg, mut m) = self.mapper(q);
                qg.revoke_all(&mut m)
            })
            .sum()
    }

    /// Teardown: unmaps every queue's static grants.
    pub fn revoke_all_static(&mut self) {
        for q in 0..self.statics.len() {
            let (qg, mut m) = self.mapper(q);
            assert_eq!(qg.revoke_all(&mut m), 0, "a slot still in use at teardown");
        }
    }

    /// Maps a grant (outside static grants).
    pub fn map_grant(&mut self, gref: GrantRef, readonly: bool) -> Result<u32> {
        let m = self.gt.map(self.me, self.peer, gref, readonly)?;
        let h = m.handle;
        self.mapped.insert(h, m);
        Ok(h)
    }

    /// Unmaps a handle from [`DomainGrants::map_grant`].
    pub fn unmap_grant(&mut self, handle: u32) -> Result<()> {
        self.mapped.remove(&handle);
        self.gt.unmap(self.me, handle)
    }
}

impl GrefStore for DomainGrants {
    fn mapping_size(&self, queue: u32) -> u32 {
        self.statics.get(queue as usize).map_or(0, |q| q.mapping_size())
    }
    fn room(&self, queue: u32) -> u32 {
        self.statics.get(queue as usize).map_or(0, |q| q.table.room() as u32)
    }
    fn stage(&mut self, queue: u32, gref: GrantRef, readonly: bool) -> Result<()> {
        self.statics.get_mut(queue as usize).ok_or(Error::CtrlBadQueue)?.stage(gref, readonly)
    }
    fn commit(&mut self, queue: u32) -> Result<()> {
        let (q, mut m) = self.mapper(queue as usize);
        q.commit(&mut m)
    }
    fn abort(&mut self, queue: u32) {
        if let Some(q) = self.statics.get_mut(queue as usize) {
            q.abort();
        }
    }
    fn remove(&mut self, queue: u32, gref: GrantRef) -> CtrlStatus {
        let (q, mut m) = self.mapper(queue as usize);
        q.remove(gref, &mut m)
    }
}

impl GrantOps for DomainGrants {
    fn copy_from_grant(&mut self, gref: GrantRef, offset: usize, buf: &mut [u8]) -> Result<()> {
        let local = crate::page::Page::new();
        self.gt.copy(
            self.me,
            &CopyPtr::Gref {
                dom: self.peer,
                gref,
                offset,
            },
            &CopyPtr::Local {
                page: local.clone(),
                offset: 0,
            },
            buf.len(),
        )?;
        local.read(0, buf);
        Ok(())
    }

    fn copy_to_grant(&mut self, gref: GrantRef, offset: usize, buf: &[u8]) -> Result<()> {
        if buf.len() > PAGE_SIZE {
            return Err(Error::GrantOutOfPage);
        }
        let local = crate::page::Page::new();
        local.write(0, buf);
        self.gt.copy(
            self.me,
            &CopyPtr::Local {
                page: local,
                offset: 0,
            },
            &CopyPtr::Gref {
                dom: self.peer,
                gref,
                offset,
            },
            buf.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page::Page;

    #[test]
    fn grant_checks() {
        let gt = GrantTable::new();
        let p = Page::new();
        let r = gt.grant(1, 0, &p, true);
        assert_eq!(gt.map(2, 1, r, true).err(), Some(Error::GrantBad));
        assert_eq!(gt.map(0, 1, r, false).err(), Some(Error::GrantReadOnly));
        assert_eq!(gt.map(0, 1, 999, true).err(), Some(Error::GrantBad));
        let m = gt.map(0, 1, r, true).unwrap();
        assert_eq!(gt.end_access(1, r), Err(Error::GrantStillMapped));
        assert_eq!(gt.unmap(2, m.handle), Err(Error::GrantBad));
        gt.unmap(0, m.handle).unwrap();
        gt.end_access(1, r).unwrap();
        assert_eq!(gt.end_access(1, r), Err(Error::GrantBad));
    }

    #[test]
    fn copy_checks() {
        let gt = GrantTable::new();
        let src = Page::new();
        src.write(100, b"hello");
        let r = gt.grant(1, 0, &src, true);
        let dst = Page::new();
        let s = CopyPtr::Gref {
            dom: 1,
            gref: r,
            offset: 100,
        };
        let d = CopyPtr::Local {
            page: dst.clone(),
            offset: 0,
        };
        gt.copy(0, &s, &d, 5).unwrap();
        let mut b = [0u8; 5];
        dst.read(0, &mut b);
        assert_eq!(&b, b"hello");
        assert_eq!(gt.copy(0, &d, &s, 5), Err(Error::GrantReadOnly));
        assert_eq!(gt.copy(2, &s, &d, 5), Err(Error::GrantBad));
        let far = CopyPtr::Gref {
            dom: 1,
            gref: r,
            offset: 4000,
        };
        assert_eq!(gt.copy(0, &far, &d, 200), Err(Error::GrantOutOfPage));
        let huge = CopyPtr::Gref {
            dom: 1,
            gref: r,
            offset: usize::MAX,
        };
        assert_eq!(gt.copy(0, &huge, &d, 2), Err(Error::GrantOutOfPage));
    }
}
