// SPDX-License-Identifier: GPL-2.0

//! Shared rings that own their memory.
//!
//! The protocol core's rings (`netif::SharedRing` and the front and back
//! ends built over it) access a page through a raw pointer, valid only as
//! long as the page stays mapped. [`OnRing`] ties the two together: it owns
//! the page (a [`RingPage`] we granted, or a [`MappedRing`] the peer
//! granted us) and the ring end built over it, and drops the ring end
//! before the page, so no ring access can outlive its memory.

use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use kernel::prelude::*;

use super::netif::{RingKind, SharedRing, PAGE_SIZE};
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

/// A ring end `T` (e.g. `TxBack`, `RxFront`) over memory `M` it cannot
/// outlive. Derefs to `T`.
///
/// # Invariants
///
/// `ring` was built over `mem`'s page; both are dropped only in `drop`,
/// the ring end first.
pub(crate) struct OnRing<T, M: RingMemory> {
    ring: ManuallyDrop<T>,
    mem: ManuallyDrop<M>,
}

impl<T, M: RingMemory> OnRing<T, M> {
    /// Builds the ring end with `build` over a [`SharedRing`] of kind `K`
    /// on `mem`.
    pub(crate) fn new<K: RingKind, E: Into<Error>>(
        mem: M,
        build: impl FnOnce(SharedRing<K>) -> core::result::Result<T, E>,
    ) -> Result<Self> {
        // SAFETY: `mem` is a whole page that stays valid while it is owned
        // (`RingMemory`), and it is owned by the value returned here, which
        // drops the ring end (and with it every `SharedRing` over the page)
        // before the memory.
        let shared = unsafe { SharedRing::<K>::from_raw(mem.base(), PAGE_SIZE) }?;
        let ring = build(shared).map_err(Into::into)?;
        Ok(Self { ring: ManuallyDrop::new(ring), mem: ManuallyDrop::new(mem) })
    }

    /// The memory (e.g. for its grant reference).
    pub(crate) fn memory(&self) -> &M {
        &self.mem
    }
}

impl<T, M: RingMemory> Drop for OnRing<T, M> {
    fn drop(&mut self) {
        // SAFETY: each dropped once, here: the ring end first, then the
        // memory it pointed into.
        unsafe {
            ManuallyDrop::drop(&mut self.ring);
            ManuallyDrop::drop(&mut self.mem);
        }
    }
}

impl<T, M: RingMemory> Deref for OnRing<T, M> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.ring
    }
}

impl<T, M: RingMemory> DerefMut for OnRing<T, M> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.ring
    }
}
