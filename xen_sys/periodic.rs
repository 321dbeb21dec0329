// SPDX-License-Identifier: GPL-2.0

//! Periodic work in process context: a watchdog a driver keeps in its
//! device data (for example a NIC queue checking whether its PF reset it).
//!
//! The kernel crate's `DelayedWork` cannot be cancelled, so a work item
//! that re-arms itself could outlive its driver; this one is stopped, and
//! waited for, when dropped (or by [`Periodic::stop`]).

use core::ptr::NonNull;
use kernel::prelude::*;
use kernel::sync::Arc;

use super::bindings as b;

/// What a [`Periodic`] calls (process context: it may sleep).
pub(crate) trait Tick: Send + Sync + Sized + 'static {
    fn tick(this: &Arc<Self>);
}

/// `owner.tick()` every `period_ms` until stopped or dropped.
///
/// # Invariants
///
/// `work` was returned by `xennet_shim_periodic_start` with a callback for
/// `T` and `owner` (from `Arc::into_raw`) as its argument, and is freed
/// only in `drop`, after which `owner`'s reference is released.
pub(crate) struct Periodic<T: Tick> {
    work: NonNull<kernel::ffi::c_void>,
    owner: *const T,
}

// SAFETY: the work item is the workqueue core's to run on any thread; the
// shim functions called through `&self` do their own synchronisation, and
// `T` is `Send + Sync`.
unsafe impl<T: Tick> Send for Periodic<T> {}
// SAFETY: as above.
unsafe impl<T: Tick> Sync for Periodic<T> {}

/// # Safety
///
/// Called by the shim with the `owner` of a live [`Periodic<T>`].
unsafe extern "C" fn run<T: Tick>(owner: *mut kernel::ffi::c_void) {
    // SAFETY: `owner` came from `Arc::into_raw`, and the `Periodic` holds
    // that reference until its work is stopped (type invariant), which
    // waits for this call to return; `ManuallyDrop` leaves it held.
    let t = core::mem::ManuallyDrop::new(unsafe { Arc::from_raw(owner.cast_const().cast::<T>()) });
    T::tick(&t);
}

impl<T: Tick> Periodic<T> {
    /// Calls `owner.tick()` in `period_ms`, then every `period_ms`.
    pub(crate) fn start(owner: Arc<T>, period_ms: u32) -> Result<Self> {
        let raw = Arc::into_raw(owner);
        // SAFETY: `run::<T>` matches `raw`'s type; `raw` stays valid until
        // `drop` has stopped the work.
        let work = unsafe { b::xennet_shim_periodic_start(Some(run::<T>), raw.cast_mut().cast(), period_ms) };
        match NonNull::new(work) {
            Some(work) => Ok(Self { work, owner: raw }),
            None => {
                // SAFETY: `raw` came from `Arc::into_raw` just above and was
                // handed to nobody.
                drop(unsafe { Arc::from_raw(raw) });
                Err(ENOMEM)
            }
        }
    }

    /// Stops the ticks; returns once none runs. Idempotent; sleeps, and
    /// must not be called from `tick` itself.
    pub(crate) fn stop(&self) {
        // SAFETY: `work` is live until `drop` (type invariant).
        unsafe { b::xennet_shim_periodic_stop(self.work.as_ptr()) };
    }
}

impl<T: Tick> Drop for Periodic<T> {
    fn drop(&mut self) {
        // SAFETY: `work` is live (type invariant) and freed only here, once
        // stopped.
        unsafe { b::xennet_shim_periodic_free(self.work.as_ptr()) };
        // SAFETY: the reference `start` took; no tick runs any more.
        drop(unsafe { Arc::from_raw(self.owner) });
    }
}
