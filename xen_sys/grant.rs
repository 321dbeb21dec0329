// SPDX-License-Identifier: GPL-2.0

//! Pages granted to another domain.

use super::bindings as b;
use kernel::prelude::*;

/// A zeroed page of ours that another domain may access through a grant.
///
/// Dropping it ends the grant. If the peer still uses the grant (a buggy or
/// hostile backend keeping a mapping, XSA-396), the page is handed to the
/// grant layer, which frees it only once the peer lets go: the page is never
/// reused while the peer can reach it.
///
/// # Invariants
///
/// `page` is a page we allocated and `gref` our live grant of it to the
/// peer, both released only in `drop`.
pub(crate) struct GrantedPage {
    page: *mut b::page,
    gref: u32,
}

// SAFETY: the page is plain memory owned by this value.
unsafe impl Send for GrantedPage {}

impl GrantedPage {
    /// Allocates a zeroed page and grants `domid` access to it.
    pub(crate) fn new(domid: u16, readonly: bool) -> Result<Self> {
        // SAFETY: plain page allocation, no preconditions.
        let page = unsafe { b::xennet_shim_alloc_zeroed_page() };
        if page.is_null() {
            return Err(ENOMEM);
        }
        // SAFETY: `page` is a valid page we own.
        let gfn = unsafe { b::xennet_shim_page_to_gfn(page) };
        // SAFETY: granting a page we own; the grant layer validates `domid`.
        let rc = unsafe { b::gnttab_grant_foreign_access(domid, gfn, i32::from(readonly)) };
        if rc < 0 {
            // SAFETY: the page was never granted; it is ours to free.
            unsafe { b::xennet_shim_free_page(page) };
            return Err(Error::from_errno(rc));
        }
        Ok(Self {
            page,
            gref: rc as u32,
        })
    }

    pub(crate) fn gref(&self) -> u32 {
        self.gref
    }

    /// Copies `len` bytes of `skb` from `skb_offset` to the start of the
    /// page (a transmit buffer the peer only reads).
    pub(crate) fn copy_from_skb(&self, skb: &super::netdev::Skb, skb_offset: usize, len: usize) -> Result {
        if len > super::netif::PAGE_SIZE || skb_offset.checked_add(len).is_none_or(|e| e > skb.len()) {
            return Err(EINVAL);
        }
        // SAFETY: the skb is live and holds `skb_offset + len` bytes; the
        // page is ours and `len` fits in it.
        kernel::error::to_result(unsafe {
            b::skb_copy_bits(skb.as_raw(), skb_offset as i32, self.as_ptr().cast(), len as i32)
        })
    }

    /// Writes `value` as little-endian `u32`s from the start of the page
    /// (tables the peer reads through the grant).
    pub(crate) fn write_u32s(&self, values: impl Iterator<Item = u32>) {
        let p = self.as_ptr().cast::<u32>();
        for (i, v) in values.take(super::netif::PAGE_SIZE / 4).enumerate() {
            // SAFETY: `i` u32s fit in our page.
            unsafe { p.add(i).write_volatile(v) };
        }
    }

    /// Writes `bytes` at `offset` (a table the peer reads).
    pub(crate) fn write(&self, offset: usize, bytes: &[u8]) -> Result {
        if offset.checked_add(bytes.len()).is_none_or(|e| e > super::netif::PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: our page; `offset + len` within it. The peer may read it
        // meanwhile: only bytes are written.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.as_ptr().add(offset), bytes.len()) };
        Ok(())
    }

    /// Copies `buf.len()` bytes at `offset` out of the page, once (the peer
    /// may be writing it: only the copy is looked at).
    pub(crate) fn read(&self, offset: usize, buf: &mut [u8]) -> Result {
        if offset.checked_add(buf.len()).is_none_or(|e| e > super::netif::PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: our page; `offset + len` within it; `buf` is ours.
        unsafe { b::xennet_shim_copy_from_shared(buf.as_mut_ptr().cast(), self.as_ptr().add(offset).cast(), buf.len()) };
        Ok(())
    }

    /// Fills the first `len` bytes with the kernel's RSS hash key.
    pub(crate) fn fill_rss_key(&self, len: usize) {
        // SAFETY: our page; `len` clamped to what `netdev_rss_key_fill`
        // accepts (it BUGs beyond its 256-byte key) and the page holds.
        unsafe { b::netdev_rss_key_fill(self.as_ptr().cast(), len.min(RSS_KEY_MAX)) };
    }

    /// The page's kernel address. The peer may write the page at any time
    /// (unless granted read-only): access it only with copies, never through
    /// references that assume the contents are stable.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: `page` is a valid lowmem page we own.
        unsafe { b::xennet_shim_page_address(self.page).cast() }
    }
}

impl Drop for GrantedPage {
    fn drop(&mut self) {
        // SAFETY: `gref` is our live grant of `page`; ended exactly once here.
        if unsafe { b::gnttab_try_end_foreign_access(self.gref) } != 0 {
            // SAFETY: the grant is gone, the page is ours again.
            unsafe { b::xennet_shim_free_page(self.page) };
        } else {
            super::warn_ratelimited!("grant {} still in use by the backend: page freed when released\n", self.gref);
            // SAFETY: hands both the grant and the page to the grant layer,
            // which frees the page once the peer unmaps it.
            unsafe { b::gnttab_end_foreign_access(self.gref, self.page) };
        }
    }
}

/// `DOMID_SELF`: our own domain in grant operations.
const DOMID_SELF: u16 = b::DOMID_SELF as u16;

/// A page of ours used as the local side of grant copies (the heap and
/// stacks are not usable there: their frames may not be directly mapped).
/// Never granted, so only we access it.
///
/// # Invariants
///
/// The page is ours alone: never granted, mapped or handed out.
pub(crate) struct BouncePage(kernel::page::Page);

impl BouncePage {
    pub(crate) fn new() -> Result<Self> {
        Ok(Self(kernel::page::Page::alloc_page(GFP_KERNEL | __GFP_ZERO)?))
    }

    /// The page as a grant-copy frame.
    pub(crate) fn frame(&self) -> super::netif::Frame {
        // SAFETY: a valid page we own.
        super::netif::Frame::Local(unsafe { b::xennet_shim_page_to_gfn(self.0.as_ptr()) } as u64)
    }

    /// Copies the page's first `buf.len()` bytes into `buf`.
    pub(crate) fn read(&self, buf: &mut [u8]) -> Result {
        // SAFETY: `buf` is valid for writes of its length; the page checks
        // the range.
        unsafe { self.0.read_raw(buf.as_mut_ptr(), 0, buf.len()) }
    }

    /// Copies `buf` to the start of the page.
    pub(crate) fn write(&self, buf: &[u8]) -> Result {
        // SAFETY: `buf` is valid for reads of its length; the page checks
        // the range; only we access the page.
        unsafe { self.0.write_raw(buf.as_ptr(), 0, buf.len()) }
    }
}

/// The longest key `netdev_rss_key_fill` hands out.
const RSS_KEY_MAX: usize = 256;

/// One `GNTTABOP_copy` operation.
pub(crate) type GntCopy = b::gnttab_copy;

/// Fills a `GNTTABOP_copy` operation from a planned copy between our pages
/// (by frame number) and `peer`'s (by grant reference).
pub(crate) fn copy_op(op: &super::netif::CopyOp, peer: u16) -> b::gnttab_copy {
    use super::netif::Frame;
    let mut c = b::gnttab_copy::default();
    let mut flags = 0u16;
    // Each side is a grant reference or a frame number: a union in C, which
    // bindgen lays out as one storage word with typed views.
    let mut side = |p: &mut b::gnttab_copy_gnttab_copy_ptr, frame: Frame, gref_flag: u32| match frame {
        Frame::Grant(r) => {
            // SAFETY: writes an integer into the union's storage (no
            // invalid values; the word was zeroed, so the rest reads 0).
            unsafe { *p.u.ref_.as_mut() = r };
            p.domid = peer;
            flags |= gref_flag as u16;
        }
        Frame::Local(gfn) => {
            // SAFETY: as above.
            unsafe { *p.u.gmfn.as_mut() = gfn as b::xen_pfn_t };
            p.domid = DOMID_SELF;
        }
    };
    side(&mut c.source, op.src, b::GNTCOPY_source_gref);
    side(&mut c.dest, op.dst, b::GNTCOPY_dest_gref);
    c.source.offset = op.src_offset;
    c.dest.offset = op.dst_offset;
    c.len = op.len;
    c.flags = flags;
    c
}

/// Runs a batch of grant copies in as few hypercalls as the kernel's grant
/// layer makes (it retries transient `GNTST_eagain`). Each op's `status` is
/// then `GNTST_okay` or the failure, typically a bad grant from the peer.
pub(crate) fn batch_copy(ops: &mut [b::gnttab_copy]) {
    if ops.is_empty() {
        return;
    }
    // SAFETY: `ops` is a valid, exclusively borrowed array of `len` ops.
    unsafe { b::gnttab_batch_copy(ops.as_mut_ptr(), ops.len() as u32) };
}

/// True if a completed copy succeeded.
pub(crate) fn copy_ok(op: &b::gnttab_copy) -> bool {
    i32::from(op.status) == b::GNTST_okay as i32
}

/// One page of an outgoing skb's fragments, granted read-only to the peer
/// (zero-copy transmit): `len` bytes at `offset`.
///
/// # Invariants
///
/// `gref` is our live read-only grant of `page`, a page the skb of the
/// [`LentSkb`] holding this value references (so it lives while the grant
/// does; past that, `drop` takes a reference of its own).
struct LentPage {
    page: core::ptr::NonNull<b::page>,
    gref: u32,
    offset: u16,
    len: u16,
}

// SAFETY: the page is plain memory the owning skb holds; the grant is ours.
unsafe impl Send for LentPage {}

impl LentPage {
    /// Ends the grant; false if the peer still maps the page, which is then
    /// handed to the grant layer with a reference of ours, freed once the
    /// peer lets go.
    fn end(self) -> bool {
        let this = core::mem::ManuallyDrop::new(self);
        this.release()
    }

    fn release(&self) -> bool {
        // SAFETY: `gref` is our live grant, ended once (by `end` or `drop`).
        if unsafe { b::gnttab_try_end_foreign_access(self.gref) } != 0 {
            return true;
        }
        // SAFETY: the page is live (held by the skb, freed only after this);
        // the reference taken here passes, with the grant, to the grant
        // layer, which drops it once the peer unmaps the page.
        unsafe {
            b::xennet_shim_get_page(self.page.as_ptr());
            b::gnttab_end_foreign_access(self.gref, self.page.as_ptr());
        }
        false
    }
}

impl Drop for LentPage {
    fn drop(&mut self) {
        if !self.release() {
            super::warn_ratelimited!("grant {} of a sent page still in use by the backend: the page is kept until it lets go\n", self.gref);
        }
    }
}

/// Most pieces an skb's fragments are lent as.
pub(crate) const LENT_MAX: usize = 17;

/// The pages an skb lends, in order.
type LentPages = super::batch::Batch<LentPage, LENT_MAX>;

/// Ends every grant; false if the peer still mapped a page.
fn end_all(pages: &mut LentPages) -> bool {
    pages.drain().fold(true, |all, p| p.end() & all)
}

/// An outgoing skb whose fragments' pages are granted read-only to the
/// peer as they are (zero-copy transmit to a trusted backend), held until
/// the peer is done with them. Its linear area (the headers) is not lent:
/// the caller copies it. The grants end before the skb is freed (field
/// order), and a page the peer still maps outlives both (`LentPage`).
pub(crate) struct LentSkb {
    pages: LentPages,
    skb: super::netdev::Skb,
}

impl LentSkb {
    /// Grants `skb`'s fragments to `domid`, each page piece as one, up to
    /// `max` (at most `LENT_MAX`). Gives the skb back when it has no
    /// fragments, one is not in host memory (device memory has no page), it
    /// needs more pieces, its linear area and fragments are not the whole
    /// packet, or a grant fails: the caller copies it instead.
    pub(crate) fn lend(skb: super::netdev::Skb, domid: u16, max: usize) -> core::result::Result<Self, super::netdev::Skb> {
        let mut lent = LentSkb { pages: LentPages::new(), skb };
        let mut lent_bytes = 0;
        let max = max.min(LENT_MAX);
        let raw = lent.skb.as_raw();
        // SAFETY: the skb is live and ours; its layout does not change while
        // we hold it.
        let nr_frags = unsafe { b::xennet_shim_skb_nr_frags(raw) } as usize;
        if nr_frags == 0 {
            return Err(lent.into_skb());
        }
        for i in 0..nr_frags {
            // SAFETY: `i` is below the skb's fragment count.
            let (page, off, size) = unsafe {
                (
                    b::xennet_shim_skb_frag_page(raw, i as u32),
                    b::xennet_shim_skb_frag_off(raw, i as u32) as usize,
                    b::xennet_shim_skb_frag_size(raw, i as u32) as usize,
                )
            };
            let Some(page) = core::ptr::NonNull::new(page) else {
                return Err(lent.into_skb());
            };
            let mut pos = off;
            let end = off + size;
            while pos < end {
                if lent.pages.len() == max {
                    return Err(lent.into_skb());
                }
                let in_page = pos % super::netif::PAGE_SIZE;
                let chunk = (super::netif::PAGE_SIZE - in_page).min(end - pos);
                // SAFETY: a fragment lies within its (possibly compound)
                // page, so the page `pos` falls in exists.
                let sub = unsafe { b::xennet_shim_page_nth(page.as_ptr(), (pos / super::netif::PAGE_SIZE) as kernel::ffi::c_ulong) };
                // SAFETY: as above; a live page.
                let gfn = unsafe { b::xennet_shim_page_to_gfn(sub) };
                // SAFETY: granting read-only a page the skb holds; the grant
                // layer validates `domid`.
                let rc = unsafe { b::gnttab_grant_foreign_access(domid, gfn, 1) };
                let Some(sub) = core::ptr::NonNull::new(sub).filter(|_| rc >= 0) else {
                    return Err(lent.into_skb());
                };
                lent.pages.push(LentPage { page: sub, gref: rc as u32, offset: in_page as u16, len: chunk as u16 });
                lent_bytes += chunk;
                pos += chunk;
            }
        }
        // Lent pieces and the linear area must be the whole packet (an
        // skb with a fragment list is not: the stack linearizes those for
        // us, lacking NETIF_F_FRAGLIST, but the copy path takes any).
        if lent_bytes + lent.skb.headlen() != lent.skb.len() {
            return Err(lent.into_skb());
        }
        // Held until the backend completes it, the skb no longer counts
        // against its socket's send budget (TCP small queues would
        // otherwise throttle the socket on our completion events, which
        // `tx_moderation` spaces out): its pages stay referenced by it.
        // SAFETY: the skb is ours; its destructor runs now instead of at
        // free.
        unsafe { b::xennet_shim_skb_orphan(raw) };
        Ok(lent)
    }

    /// The skb.
    pub(crate) fn skb(&self) -> &super::netdev::Skb {
        &self.skb
    }

    /// The lent pieces in order: grant reference, offset in the page, length.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = (u32, u16, u16)> + '_ {
        self.pages.iter().map(|p| (p.gref, p.offset, p.len))
    }

    /// Pieces lent.
    pub(crate) fn len(&self) -> usize {
        self.pages.len()
    }

    /// Ends the grants, then frees the skb; false if the peer still mapped
    /// a page (kept until it lets go).
    pub(crate) fn end(self) -> bool {
        let LentSkb { mut pages, skb } = self;
        let all = end_all(&mut pages);
        drop(skb);
        all
    }

    /// Ends the grants (never published) and gives the skb back.
    pub(crate) fn into_skb(self) -> super::netdev::Skb {
        let LentSkb { mut pages, skb } = self;
        end_all(&mut pages);
        skb
    }
}
