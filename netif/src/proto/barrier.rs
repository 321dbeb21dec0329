//! Memory barriers used by the shared rings.
//!
//! The ring code is generic over [`Barriers`] so the kernel can plug in
//! `virt_rmb()`/`virt_wmb()`/`virt_mb()` while host tests use atomic fences.

use core::sync::atomic::{fence, Ordering};

/// The three barriers of Xen's `ring.h` (`xen_rmb`, `xen_wmb`, `xen_mb`).
pub trait Barriers {
    /// Orders earlier loads before later loads (consumer: index, then entries).
    fn rmb();
    /// Orders earlier stores before later stores (producer: entries, then index).
    fn wmb();
    /// Full barrier: orders earlier stores before later loads (event checks).
    fn mb();
}

/// Barriers for host builds: `core::sync::atomic::fence`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostBarriers;

impl Barriers for HostBarriers {
    #[inline]
    fn rmb() {
        fence(Ordering::Acquire);
    }
    #[inline]
    fn wmb() {
        fence(Ordering::Release);
    }
    #[inline]
    fn mb() {
        fence(Ordering::SeqCst);
    }
}
