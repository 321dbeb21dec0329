// SPDX-License-Identifier: GPL-2.0

//! Shared rings that own their memory.
//!
//! The protocol core's rings (`netif::SharedRing` and the front and back
//! ends built over it) access a page through a raw pointer, valid only as
//! long as the page stays mapped. [`OnRing`] ties the two together: it owns
//! the page (a [`RingPage`] we granted, or a [`MappedRing`] the peer
//! granted us) and the ring end built over it, and drops the ring end
//! before the page. Safe code may still swap two ring ends (`&mut`
//! access); [`OnRing`] checks at drop that its ring end still points into
//! its own page and otherwise leaks the page rather than free memory a
//! ring end elsewhere may use.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use kernel::prelude::*;

use super::barrier::XenBarriers;
use super::netif::{
    CtrlBack, CtrlFront, CtrlRingKind, RingKind, RxBack, RxFront, RxRingKind, SharedRing, TxBack, TxFront, TxRingKind,
    PAGE_SIZE,
};
use super::xenbus::{MappedRing, RingPage};

/// Memory a shared ring can live in: one whole page, valid for reads and
/// writes for as long as the value exists, accessed only through rings.
///
/// # Safety
///
/// `base` must return the same page-aligned address of a `PAGE_SIZE` page
/// that stays mapped and is not reused until the value is dropped, and to
/// which no Rust reference is handed out.
pub(crate) unsafe trait RingMemory: Send {
    fn base(&self) -> *mut u8;
}

// SAFETY: a page we allocated and granted, freed (or handed to the grant
// layer) only on drop; only its address is exposed.
unsafe impl RingMemory for RingPage {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
}

// SAFETY: the peer's page, mapped until drop; only its address is exposed.
unsafe impl RingMemory for MappedRing {
    fn base(&self) -> *mut u8 {
        self.as_ptr()
    }
}

/// A ring end of the protocol core, built over a [`SharedRing`] by
/// [`OnRing::new`] only (nothing else can make a `SharedRing` without
/// `unsafe`), which never keeps the ring elsewhere.
pub(crate) trait RingEnd: Sized {
    type Kind: RingKind;
    /// What the constructor needs besides the ring.
    type Args;
    fn over(ring: SharedRing<Self::Kind>, args: Self::Args) -> Result<Self>;
    /// The page the ring end uses now.
    fn ring_base(&self) -> usize;
}

impl RingEnd for TxBack<XenBarriers> {
    type Kind = TxRingKind;
    type Args = ();
    fn over(ring: SharedRing<TxRingKind>, (): ()) -> Result<Self> {
        Ok(TxBack::attach(ring)?)
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

impl RingEnd for RxBack<XenBarriers> {
    type Kind = RxRingKind;
    type Args = ();
    fn over(ring: SharedRing<RxRingKind>, (): ()) -> Result<Self> {
        Ok(RxBack::attach(ring)?)
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

impl RingEnd for TxFront<XenBarriers> {
    type Kind = TxRingKind;
    type Args = ();
    fn over(ring: SharedRing<TxRingKind>, (): ()) -> Result<Self> {
        Ok(TxFront::new(ring))
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

impl RingEnd for RxFront<XenBarriers> {
    type Kind = RxRingKind;
    /// The longest chain of data slots accepted.
    type Args = usize;
    fn over(ring: SharedRing<RxRingKind>, max_slots: usize) -> Result<Self> {
        Ok(RxFront::new(ring, max_slots))
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

impl RingEnd for CtrlBack<XenBarriers> {
    type Kind = CtrlRingKind;
    /// The vif's queue count.
    type Args = u32;
    fn over(ring: SharedRing<CtrlRingKind>, queues: u32) -> Result<Self> {
        Ok(CtrlBack::attach(ring, queues)?)
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

impl RingEnd for CtrlFront<XenBarriers> {
    type Kind = CtrlRingKind;
    type Args = ();
    fn over(ring: SharedRing<CtrlRingKind>, (): ()) -> Result<Self> {
        Ok(CtrlFront::new(ring))
    }
    fn ring_base(&self) -> usize {
        self.ring.shared().base_addr()
    }
}

/// A ring end `T` (e.g. `TxBack`, `RxFront`) over memory `M` it cannot
/// outlive. Derefs to `T`.
///
/// # Invariants
///
/// `ring` was built over `mem`'s page; both are dropped only in `drop`,
/// the ring end first, and the page is freed only if the ring end then
/// still points into it.
pub(crate) struct OnRing<T: RingEnd, M: RingMemory> {
    ring: ManuallyDrop<T>,
    mem: ManuallyDrop<M>,
}

impl<T: RingEnd, M: RingMemory> OnRing<T, M> {
    /// Builds the ring end over `mem` (a malformed ring is an error).
    pub(crate) fn new(mem: M, args: T::Args) -> Result<Self> {
        // SAFETY: `mem` is a whole page that stays valid while it is owned
        // (`RingMemory`). The ring end built over it is owned, with it, by
        // the value returned here, which frees the memory only once no
        // ring end it holds points into it; on error the `SharedRing` is
        // dropped by `over` (no constructor keeps it) before `mem`.
        let shared = unsafe { SharedRing::<T::Kind>::from_raw(mem.base(), PAGE_SIZE) }?;
        let ring = T::over(shared, args)?;
        Ok(Self { ring: ManuallyDrop::new(ring), mem: ManuallyDrop::new(mem) })
    }

    /// The memory (e.g. for its grant reference).
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }
}

impl<T: RingEnd, M: RingMemory> Drop for OnRing<T, M> {
    fn drop(&mut self) {
        let ours = self.ring.ring_base() == self.mem.base() as usize;
        // SAFETY: each dropped at most once, here: the ring end first, then
        // the memory it pointed into.
        unsafe { ManuallyDrop::drop(&mut self.ring) };
        if ours {
            // SAFETY: as above; no ring end of ours uses the page any more.
            unsafe { ManuallyDrop::drop(&mut self.mem) };
        } else {
            // A ring end was swapped in from elsewhere: ours may be alive in
            // another owner, so the page stays (leaked).
            pr_err!("a ring end outlived its ring's owner; its page is leaked\n");
        }
    }
}

impl<T: RingEnd, M: RingMemory> Deref for OnRing<T, M> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.ring
    }
}

impl<T: RingEnd, M: RingMemory> DerefMut for OnRing<T, M> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.ring
    }
}
