// SPDX-License-Identifier: GPL-2.0

//! Locks shared between process context and softirqs.
//!
//! A queue's lock is taken by NAPI polls, transmit and timers (softirq
//! context) and by the xenbus thread, ethtool and statistics readers
//! (process context). A plain `spin_lock` in process context can be
//! interrupted by a softirq on the same CPU that then spins on the same lock
//! forever: with one vCPU, the whole guest hangs. So these locks are always
//! taken with bottom halves disabled (`spin_lock_bh`); in softirq context
//! that costs a counter increment.

use super::bindings as b;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use kernel::sync::lock::spinlock::SpinLockGuard;
use kernel::sync::SpinLock;

/// A held lock with bottom halves disabled; both undone on drop.
///
/// # Invariants
///
/// Bottom halves were disabled (once) before `guard` was taken.
pub(crate) struct BhGuard<'a, T> {
    guard: ManuallyDrop<SpinLockGuard<'a, T>>,
}

/// `lock_bh` for the kernel crate's `SpinLock`.
pub(crate) trait LockBh<T> {
    /// Disables bottom halves, then takes the lock.
    fn lock_bh(&self) -> BhGuard<'_, T>;
}

impl<T> LockBh<T> for SpinLock<T> {
    fn lock_bh(&self) -> BhGuard<'_, T> {
        // SAFETY: no precondition; undone by the guard's drop.
        unsafe { b::xennet_shim_local_bh_disable() };
        BhGuard { guard: ManuallyDrop::new(self.lock()) }
    }
}

impl<T> Deref for BhGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: Unpin> DerefMut for BhGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for BhGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here: the lock is released before
        // bottom halves are enabled again (which may run pending softirqs
        // that take it).
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        // SAFETY: pairs with the disable in `lock_bh`.
        unsafe { b::xennet_shim_local_bh_enable() };
    }
}
