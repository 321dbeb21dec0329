// SPDX-License-Identifier: GPL-2.0

//! Grant reuse in the kernel: one queue's static grants (`grant_reuse`'s
//! table) over real grant mappings, and the data path's copies through them.
//!
//! Each slot of the table has a page of its own, taken from the grant
//! layer's pool of unpopulated pages (`gnttab_alloc_pages`) when the
//! frontend first registers anything. `ADD` maps the frontend's grants into
//! those pages in one `GNTTABOP_map_grant_ref` batch; `DEL` and teardown
//! unmap them. The data path copies between an skb and a mapped page with
//! the CPU: no hypercall.
//!
//! Locking: the owner (netback_mq's queue) holds its queue lock around
//! every call, so a lookup and the copy through what it found happen under
//! the same lock as any unmap: an unmap never races a copy.

use super::bindings as b;
use super::grant_reuse::{Hit, MapOp, Mapper, QueueGrants, ReuseStats};
use super::netdev::Skb;
use super::netif::{self, CtrlStatus, GrantRef, PAGE_SIZE};
use kernel::prelude::*;

/// Pages into which a peer's grants are mapped, one per slot.
///
/// # Invariants
///
/// `pages` holds `pages.len()` pages from `gnttab_alloc_pages`, returned in
/// `drop`; `live[i]` is `handle + 1` while slot `i`'s page holds a mapping
/// (0 otherwise), and each such mapping is undone before the page is freed.
struct ForeignPages {
    pages: KVec<*mut b::page>,
    live: KVec<u64>,
    domid: u16,
    map_ops: KVec<b::gnttab_map_grant_ref>,
    unmap_ops: KVec<b::gnttab_unmap_grant_ref>,
    batch_pages: KVec<*mut b::page>,
    kept: KeptDma,
}

/// DMA mappings of the pages left in place for one device between
/// receive DMAs. The NIC path posts the same static grants again and
/// again; mapping and unmapping each for every frame costs dom0 a walk of
/// the machine-to-physical table (xen-swiotlb), or with an IOMMU a mapping
/// and an IOTLB flush. It exposes nothing more: the device reaches the
/// page only through a descriptor we post, and the page stays mapped in
/// dom0 (the static grant) whether or not it is mapped for the device.
///
/// # Invariants
///
/// `addr[i] != 0` only while `dev` is `Some` and slot `i`'s page holds a
/// grant mapping: that DMA mapping (made for `dev`) is undone before the
/// grant is unmapped, before another device's mappings are kept, and at
/// [`ForeignPages::forget_kept`].
struct KeptDma {
    dev: Option<super::pci::DmaDev>,
    addr: KVec<u64>,
}

impl ForeignPages {
    fn new(domid: u16, n: usize) -> Result<Self> {
        let mut pages = KVec::from_elem(core::ptr::null_mut(), n, GFP_KERNEL)?;
        // SAFETY: `pages` has room for `n` page pointers; the grant layer
        // fills all of them or fails having allocated none.
        kernel::error::to_result(unsafe { b::gnttab_alloc_pages(n as i32, pages.as_mut_ptr()) })?;
        Ok(Self {
            live: KVec::from_elem(0, n, GFP_KERNEL).inspect_err(|_| {
                // SAFETY: the `n` pages just allocated, unused.
                unsafe { b::gnttab_free_pages(n as i32, pages.as_mut_ptr()) }
            })?,
            pages,
            domid,
            map_ops: KVec::with_capacity(n, GFP_KERNEL)?,
            unmap_ops: KVec::with_capacity(n, GFP_KERNEL)?,
            batch_pages: KVec::with_capacity(n, GFP_KERNEL)?,
            kept: KeptDma { dev: None, addr: KVec::from_elem(0, n, GFP_KERNEL)? },
        })
    }

    /// The DMA mapping of slot `slot` kept for `dev`, if any.
    fn kept_for(&self, slot: u16, dev: &super::pci::DmaDev) -> Option<u64> {
        let a = *self.kept.addr.get(usize::from(slot))?;
        (a != 0 && self.kept.dev.as_ref().is_some_and(|d| d.is(dev))).then_some(a)
    }

    /// Keeps `addr`, slot `slot`'s page mapped for `dev`, past its DMA.
    /// Those of another device are undone first: a queue is on one device
    /// at a time, and the path that ends on one forgets its mappings
    /// (`StaticGrants::dma_forget`) before another can start, so none of
    /// them is posted any more.
    fn keep(&mut self, slot: u16, dev: &super::pci::DmaDev, addr: u64) {
        if self.kept.dev.as_ref().is_some_and(|d| !d.is(dev)) {
            self.forget_kept();
        }
        if self.kept.dev.is_none() {
            self.kept.dev = Some(dev.clone_ref());
        }
        if let Some(a) = self.kept.addr.get_mut(usize::from(slot)) {
            *a = addr;
        }
    }

    /// Undoes slot `slot`'s kept DMA mapping, if it has one.
    fn drop_kept(&mut self, slot: u16) {
        let (Some(a), Some(dev)) = (self.kept.addr.get_mut(usize::from(slot)), self.kept.dev.as_ref()) else { return };
        if *a != 0 {
            // SAFETY: mapped for `dev` by `StaticGrants::dma_acquire` and
            // not in use (no descriptor holds it: the slot's users are
            // gone, or the device's queue stopped); undone once (zeroed).
            unsafe { b::xennet_shim_dma_unmap_from_device(dev.as_raw(), *a) };
            *a = 0;
        }
    }

    /// Undoes every kept DMA mapping (the device's queue stopped and gave
    /// every buffer back, or is going).
    fn forget_kept(&mut self) {
        for slot in 0..self.kept.addr.len() {
            self.drop_kept(slot as u16);
        }
        self.kept.dev = None;
    }

    /// Slot `slot`'s page address, if it holds a mapping (writable unless
    /// the caller knows it is read-only).
    fn mapped_addr(&self, slot: u16) -> Option<*mut u8> {
        let i = usize::from(slot);
        if *self.live.get(i)? == 0 {
            return None;
        }
        // SAFETY: one of our pages (type invariant).
        Some(unsafe { b::xennet_shim_page_address(self.pages[i]) }.cast())
    }
}

impl Mapper for ForeignPages {
    fn map(&mut self, ops: &mut [MapOp]) {
        self.map_ops.clear();
        self.batch_pages.clear();
        for o in ops.iter_mut() {
            o.ok = false;
            let i = usize::from(o.slot);
            if self.live.get(i).copied() != Some(0) {
                continue;
            }
            let mut m = b::gnttab_map_grant_ref::default();
            // SAFETY: fills `m` for our page `i` (type invariant).
            unsafe { b::xennet_shim_gnttab_set_map_op(&mut m, self.pages[i], o.readonly, o.gref, self.domid) };
            // Capacity is the slot count and each slot appears once per batch.
            if self.map_ops.push_within_capacity(m).is_err() || self.batch_pages.push_within_capacity(self.pages[i]).is_err() {
                return;
            }
        }
        if self.map_ops.is_empty() {
            return;
        }
        // SAFETY: `map_ops` and `batch_pages` are parallel arrays of the
        // same length, each page ours and unmapped.
        unsafe {
            b::gnttab_map_refs(
                self.map_ops.as_mut_ptr(),
                core::ptr::null_mut(),
                self.batch_pages.as_mut_ptr(),
                self.map_ops.len() as u32,
            )
        };
        let mut k = 0;
        for o in ops.iter_mut() {
            let i = usize::from(o.slot);
            if self.live.get(i).copied() != Some(0) || k >= self.map_ops.len() {
                continue;
            }
            let m = &self.map_ops[k];
            k += 1;
            if i32::from(m.status) == b::GNTST_okay as i32 {
                o.ok = true;
                o.handle = m.handle;
                self.live[i] = u64::from(m.handle) + 1;
            }
        }
    }

    fn unmap(&mut self, ops: &[MapOp]) {
        self.unmap_ops.clear();
        self.batch_pages.clear();
        for o in ops {
            let i = usize::from(o.slot);
            if self.live.get(i).copied() != Some(u64::from(o.handle) + 1) {
                pr_err!("grant reuse: unmap of slot {} that does not hold handle {}\n", i, o.handle);
                continue;
            }
            // Not the device's any more before it is not ours.
            self.drop_kept(o.slot);
            let mut u = b::gnttab_unmap_grant_ref::default();
            // SAFETY: fills `u` for our page `i`, mapped with `o.handle`.
            // The read-only flag only matters for mappings through PTEs.
            unsafe { b::xennet_shim_gnttab_set_unmap_op(&mut u, self.pages[i], false, o.handle) };
            if self.unmap_ops.push_within_capacity(u).is_err() || self.batch_pages.push_within_capacity(self.pages[i]).is_err() {
                break;
            }
            self.live[i] = 0;
        }
        self.unmap_all_batched();
    }
}

impl ForeignPages {
    fn unmap_all_batched(&mut self) {
        if self.unmap_ops.is_empty() {
            return;
        }
        // SAFETY: parallel arrays of the same length; each page holds the
        // mapping its op names, and no pointer into it outlives the queue
        // lock the caller holds (the pages never go to the network stack).
        let rc = unsafe {
            b::gnttab_unmap_refs(
                self.unmap_ops.as_mut_ptr(),
                core::ptr::null_mut(),
                self.batch_pages.as_mut_ptr(),
                self.unmap_ops.len() as u32,
            )
        };
        if rc != 0 || self.unmap_ops.iter().any(|u| i32::from(u.status) != b::GNTST_okay as i32) {
            pr_err!("grant reuse: unmapping {} grants failed ({})\n", self.unmap_ops.len(), rc);
        }
        self.unmap_ops.clear();
        self.batch_pages.clear();
    }
}

impl Drop for ForeignPages {
    fn drop(&mut self) {
        // The owner unmapped everything; this only guards the invariant.
        self.forget_kept();
        self.unmap_ops.clear();
        self.batch_pages.clear();
        for i in 0..self.pages.len() {
            if self.live[i] != 0 {
                let mut u = b::gnttab_unmap_grant_ref::default();
                // SAFETY: our page `i`, mapped with handle `live[i] - 1`.
                unsafe { b::xennet_shim_gnttab_set_unmap_op(&mut u, self.pages[i], false, (self.live[i] - 1) as u32) };
                let _ = self.unmap_ops.push_within_capacity(u);
                let _ = self.batch_pages.push_within_capacity(self.pages[i]);
                self.live[i] = 0;
            }
        }
        self.unmap_all_batched();
        // SAFETY: the pages from `gnttab_alloc_pages`, none mapped now.
        unsafe { b::gnttab_free_pages(self.pages.len() as i32, self.pages.as_mut_ptr()) };
    }
}

// SAFETY: the pages are ours; the raw pointers are only used by the owner
// of this value.
unsafe impl Send for ForeignPages {}

/// One queue's static grants: the table and the mapped pages.
pub(crate) struct StaticGrants {
    grants: KBox<QueueGrants>,
    pages: ForeignPages,
}

impl StaticGrants {
    /// Static grants of `domid` for a queue holding at most `limit`
    /// entries (one page each). Process context (allocates pages).
    pub(crate) fn new(domid: u16, limit: usize) -> Result<KBox<Self>> {
        let limit = limit.min(super::grant_reuse::CAPACITY);
        let mut grants = super::new_zeroed_box::<QueueGrants>()?;
        grants.table.set_limit(limit);
        let pages = ForeignPages::new(domid, limit)?;
        Ok(KBox::new(Self { grants, pages }, GFP_KERNEL)?)
    }

    pub(crate) fn mapping_size(&self) -> u32 {
        self.grants.mapping_size()
    }

    pub(crate) fn room(&self) -> u32 {
        self.grants.table.room() as u32
    }

    pub(crate) fn stage(&mut self, gref: GrantRef, readonly: bool) -> netif::Result<()> {
        self.grants.stage(gref, readonly)
    }

    /// Maps the staged entries (one hypercall). Atomic context is fine.
    pub(crate) fn commit(&mut self) -> netif::Result<()> {
        self.grants.commit(&mut self.pages)
    }

    pub(crate) fn abort(&mut self) {
        self.grants.abort()
    }

    pub(crate) fn remove(&mut self, gref: GrantRef) -> CtrlStatus {
        self.grants.remove(gref, &mut self.pages)
    }

    /// Removes several at once: those not in use unmapped in one batch.
    pub(crate) fn remove_batch(&mut self, grefs: &[GrantRef]) -> usize {
        self.grants.remove_batch(grefs, &mut self.pages)
    }

    /// Whether the frontend registered anything.
    pub(crate) fn active(&self) -> bool {
        self.grants.active()
    }

    /// Entries mapped now.
    pub(crate) fn mapped(&self) -> usize {
        self.grants.table.mapped()
    }

    pub(crate) fn stats(&self) -> ReuseStats {
        self.grants.stats
    }

    /// The data path's lookup (counted as a hit or a miss).
    pub(crate) fn lookup(&mut self, gref: GrantRef) -> Option<Hit> {
        self.grants.lookup(gref)
    }

    /// The mapped page of `hit`, once `offset + len` is checked to lie
    /// within it and `skb_offset + len` within the skb.
    fn copy_window(&self, hit: Hit, offset: usize, skb: &Skb, skb_offset: usize, len: usize) -> Result<*mut u8> {
        if offset.checked_add(len).is_none_or(|e| e > PAGE_SIZE) || skb_offset.checked_add(len).is_none_or(|e| e > skb.len()) {
            return Err(EINVAL);
        }
        self.pages.mapped_addr(hit.slot).ok_or(EINVAL)
    }

    /// Copies `len` bytes of `skb` from `skb_offset` into the page found as
    /// `hit`, at `offset` (guest receive). Refuses read-only mappings.
    pub(crate) fn write_from_skb(&self, hit: Hit, offset: usize, skb: &Skb, skb_offset: usize, len: usize) -> Result {
        if hit.readonly {
            return Err(EINVAL);
        }
        let dst = self.copy_window(hit, offset, skb, skb_offset, len)?;
        // SAFETY: a writable mapping of a foreign page (checked above),
        // `offset + len` within it; the skb is live and holds the range.
        // The peer may touch the page concurrently: we only write bytes.
        kernel::error::to_result(unsafe {
            b::skb_copy_bits(skb.as_raw(), skb_offset as i32, dst.add(offset).cast(), len as i32)
        })
    }

    /// Copies `len` bytes from the page found as `hit`, at `offset`, into
    /// `skb` at `skb_offset` (guest transmit; `skb` has the room).
    pub(crate) fn read_into_skb(&self, hit: Hit, offset: usize, skb: &Skb, skb_offset: usize, len: usize) -> Result {
        let src = self.copy_window(hit, offset, skb, skb_offset, len)?;
        // SAFETY: a mapping of a foreign page, `offset + len` within it;
        // the skb is ours, live, and holds the range. The peer may change
        // the page meanwhile: the bytes land in our skb, which is all that
        // is parsed afterwards (copied once).
        kernel::error::to_result(unsafe {
            b::skb_store_bits(skb.as_raw(), skb_offset as i32, src.add(offset).cast(), len as i32)
        })
    }
}

#[cfg(xennet_hostile)]
impl StaticGrants {
    /// Test-only (the hostile backend's XSA-403 check): of the pages mapped
    /// now, how many there are and how many hold 64 bytes of `byte` on a
    /// 64-byte boundary.
    pub(crate) fn pages_holding(&self, byte: u8) -> (usize, usize) {
        let pattern = u64::from_ne_bytes([byte; 8]);
        let (mut pages, mut marked) = (0, 0);
        for slot in 0..self.pages.live.len() {
            let Some(p) = self.pages.mapped_addr(slot as u16) else { continue };
            pages += 1;
            let words = p.cast::<u64>();
            let hit = (0..PAGE_SIZE / 64).any(|chunk| {
                // SAFETY: a mapping of a foreign page (readable whether
                // writable or not), page-aligned, so each u64 of it is
                // aligned and in bounds; the peer may write meanwhile: we
                // only read integers.
                (0..8).all(|w| unsafe { words.add(chunk * 8 + w).read_volatile() } == pattern)
            });
            marked += usize::from(hit);
        }
        (pages, marked)
    }

    /// Test-only (the hostile backend's late write): fills the writable page
    /// mapped for `gref` with `byte`; false if there is none.
    pub(crate) fn fill(&mut self, gref: GrantRef, byte: u8) -> bool {
        let Some(hit) = self.grants.lookup(gref).filter(|h| !h.readonly) else { return false };
        let Some(p) = self.pages.mapped_addr(hit.slot) else { return false };
        let pattern = u64::from_ne_bytes([byte; 8]);
        for w in 0..PAGE_SIZE / 8 {
            // SAFETY: a writable mapping of a foreign page (checked above),
            // page-aligned, so each u64 of it is aligned and in bounds; the
            // peer may use the page meanwhile: we only write integers.
            unsafe { p.cast::<u64>().add(w).write_volatile(pattern) };
        }
        true
    }
}

/// A static grant's page lent to a device for DMA: the slot is in use (a
/// `DEL` of it waits) until [`StaticGrants::dma_release`], which takes it:
/// neither `Copy` nor `Clone`, so it is released once.
pub(crate) struct DmaBuf {
    slot: u16,
    /// The bus address the device writes to.
    pub(crate) addr: u64,
    /// xen-swiotlb gave a bounce buffer, not the page: a hidden copy.
    pub(crate) bounced: bool,
    /// Mapped for the device by this acquire (not a mapping kept from an
    /// earlier one).
    pub(crate) fresh: bool,
    /// The mapping outlives the DMA (kept for the page's next one).
    kept: bool,
}

impl StaticGrants {
    /// Lends the writable page found as `hit` to `dev` for one receive DMA:
    /// takes a use of its slot and maps the page for the device, or reuses
    /// the mapping an earlier DMA left (see `KeptDma`).
    pub(crate) fn dma_acquire(&mut self, hit: Hit, dev: &super::pci::DmaDev) -> Result<DmaBuf> {
        if hit.readonly || !self.grants.table.acquire(hit.slot) {
            return Err(EINVAL);
        }
        if let Some(addr) = self.pages.kept_for(hit.slot, dev) {
            return Ok(DmaBuf { slot: hit.slot, addr, bounced: false, fresh: false, kept: true });
        }
        let page = self.pages.pages[usize::from(hit.slot)];
        // SAFETY: one of our pages, mapped from the frontend (the slot is
        // mapped and now held); `dev` is live (reference counted).
        let (addr, bus) = unsafe {
            (b::xennet_shim_dma_map_from_device(dev.as_raw(), page), b::xennet_shim_page_bus_addr(page))
        };
        if addr == 0 {
            self.grants.release(hit.slot, &mut self.pages);
            return Err(ENOMEM);
        }
        // A bounce buffer is copied back at each unmap, and a device that
        // is not coherent needs syncs between DMAs: neither is kept.
        let bounced = addr != bus;
        let kept = !bounced && dev.coherent();
        if kept {
            self.pages.keep(hit.slot, dev, addr);
        }
        Ok(DmaBuf { slot: hit.slot, addr, bounced, fresh: true, kept })
    }

    /// Ends a [`StaticGrants::dma_acquire`] once the device is done with the
    /// page (its DMA completed, or its queue stopped): unmaps it for the
    /// device unless kept, and unmaps the grant if a `DEL` came meanwhile
    /// (a kept mapping goes first).
    pub(crate) fn dma_release(&mut self, buf: DmaBuf, dev: &super::pci::DmaDev) {
        if !buf.kept {
            // SAFETY: mapped for `dev` by `dma_acquire`; released once
            // (this takes the only `DmaBuf` for the mapping).
            unsafe { b::xennet_shim_dma_unmap_from_device(dev.as_raw(), buf.addr) };
        }
        self.grants.release(buf.slot, &mut self.pages);
    }

    /// Undoes the DMA mappings kept for the device: once its queue stopped
    /// and every buffer it held was released (the NIC path ended).
    pub(crate) fn dma_forget(&mut self) {
        self.pages.forget_kept();
    }
}

impl Drop for StaticGrants {
    fn drop(&mut self) {
        let held = self.grants.table.mapped();
        let busy = self.grants.revoke_all(&mut self.pages);
        if held > 0 {
            pr_info!("grant reuse: {} static grants of domain {} unmapped\n", held - busy, self.pages.domid);
        }
        if busy != 0 {
            // Nothing holds a slot beyond the queue lock today; the pages'
            // own drop unmaps whatever is left.
            pr_err!("grant reuse: {} static grants still in use at teardown\n", busy);
        }
    }
}
