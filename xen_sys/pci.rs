// SPDX-License-Identifier: GPL-2.0

//! MSI-X interrupts for a PCI function a driver keeps next to its other
//! per-device state.
//!
//! The kernel crate's `irq::Registration` borrows the vector allocation it
//! came from, so a driver cannot hold both in its device data; this holds
//! the allocation and one handler together, released in the right order.

use kernel::device::Bound;
use kernel::pci;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

use super::bindings as b;

/// What a hard-IRQ handler leaves to its thread.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IrqNext {
    /// All done.
    Handled,
    /// Run [`IrqHandler::thread`] (process context, may sleep).
    WakeThread,
}

/// The target of a PCI function's interrupt.
pub(crate) trait IrqHandler: Send + Sync + 'static {
    /// The vector fired (hard-IRQ context).
    fn irq(&self) -> IrqNext;
    /// The work `irq` left to the thread.
    fn thread(&self) {}
}

/// `count` MSI-X vectors of a bound PCI function, with `target` handling
/// vector `vector`.
///
/// # Invariants
///
/// `pdev` is the function the vectors were allocated for, and stays bound
/// while this lives (its owner is the function's driver data, dropped at
/// unbind before the device goes); `irq` is requested with `target`'s
/// address as cookie and `name` as name until drop.
pub(crate) struct MsixIrq<H: IrqHandler> {
    pdev: *mut b::pci_dev,
    irq: u32,
    target: Arc<H>,
    /// The IRQ layer keeps a pointer to the name while requested.
    name: CString,
}

// SAFETY: the raw pointer is only used to free what was allocated for the
// device, from whichever thread drops this; the handler is `Send + Sync`.
unsafe impl<H: IrqHandler> Send for MsixIrq<H> {}
// SAFETY: no method takes `&self` and touches the pointer.
unsafe impl<H: IrqHandler> Sync for MsixIrq<H> {}

/// # Safety
///
/// Called by the IRQ layer with the cookie of a live [`MsixIrq`].
unsafe extern "C" fn handler<H: IrqHandler>(_irq: kernel::ffi::c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the target of a live request, which holds a
    // reference to it (type invariant of `MsixIrq`).
    let target = unsafe { &*dev_id.cast::<H>() };
    match target.irq() {
        IrqNext::Handled => b::irqreturn::IRQ_HANDLED,
        IrqNext::WakeThread => b::irqreturn::IRQ_WAKE_THREAD,
    }
}

/// # Safety
///
/// As [`handler`].
unsafe extern "C" fn thread_fn<H: IrqHandler>(_irq: kernel::ffi::c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: as in `handler`.
    let target = unsafe { &*dev_id.cast::<H>() };
    target.thread();
    b::irqreturn::IRQ_HANDLED
}

impl<H: IrqHandler> MsixIrq<H> {
    /// Allocates exactly `count` MSI-X vectors for `pdev` and sends vector
    /// `vector` to `target`.
    pub(crate) fn request(pdev: &pci::Device<Bound>, count: u32, vector: u32, name: &CStr, target: Arc<H>) -> Result<Self> {
        let name = CString::try_from(name)?;
        // `pci::Device` is a transparent wrapper of `struct pci_dev`.
        let raw = core::ptr::from_ref(pdev).cast_mut().cast::<b::pci_dev>();
        // SAFETY: `raw` is a bound PCI function (the caller's reference).
        let got = unsafe { b::pci_alloc_irq_vectors(raw, count, count, b::PCI_IRQ_MSIX) };
        if got < 0 {
            return Err(Error::from_errno(got));
        }
        // SAFETY: vectors were just allocated for `raw`.
        let irq = unsafe { b::pci_irq_vector(raw, vector) };
        if irq < 0 {
            // SAFETY: as above; nothing was requested on them.
            unsafe { b::pci_free_irq_vectors(raw) };
            return Err(Error::from_errno(irq));
        }
        let cookie = Arc::as_ptr(&target).cast_mut().cast();
        // SAFETY: the name and the cookie stay valid while requested (this
        // holds both); the handler matches the cookie's type.
        let rc = unsafe {
            b::request_threaded_irq(irq as u32, Some(handler::<H>), Some(thread_fn::<H>), 0, name.as_char_ptr(), cookie)
        };
        if rc < 0 {
            // SAFETY: as above.
            unsafe { b::pci_free_irq_vectors(raw) };
            return Err(Error::from_errno(rc));
        }
        Ok(Self { pdev: raw, irq: irq as u32, target, name })
    }

    /// Waits for a handler running on another CPU to return.
    pub(crate) fn synchronize(&self) {
        // SAFETY: `irq` is requested (type invariant).
        unsafe { b::synchronize_irq(self.irq) };
    }
}

impl<H: IrqHandler> Drop for MsixIrq<H> {
    fn drop(&mut self) {
        // SAFETY: requested with this cookie (type invariant); free_irq
        // waits for a running handler, so none uses the target afterwards.
        unsafe { b::free_irq(self.irq, Arc::as_ptr(&self.target).cast_mut().cast()) };
        // SAFETY: allocated for `pdev`, which is still bound (invariant).
        unsafe { b::pci_free_irq_vectors(self.pdev) };
        let _ = &self.name;
    }
}

/// A PCI function's bus mastering, kept to be cut when the function does
/// not stop as asked: after [`BusMaster::cut`] it starts no DMA at all.
pub(crate) struct BusMaster {
    dev: kernel::sync::aref::ARef<pci::Device>,
    cut: core::sync::atomic::AtomicBool,
}

impl BusMaster {
    pub(crate) fn of(pdev: &pci::Device<Bound>) -> Self {
        let dev: &pci::Device = pdev;
        Self { dev: dev.into(), cut: core::sync::atomic::AtomicBool::new(false) }
    }

    /// Clears the function's bus-master bit. Any context.
    pub(crate) fn cut(&self) {
        self.cut.store(true, core::sync::atomic::Ordering::Release);
        let raw = core::ptr::from_ref::<pci::Device>(&self.dev).cast_mut().cast::<b::pci_dev>();
        // SAFETY: a live PCI function (reference counted); clearing the bit
        // is a config-space write under the PCI core's raw spinlock.
        unsafe { b::pci_clear_master(raw) };
    }

    /// Whether [`BusMaster::cut`] was called.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(core::sync::atomic::Ordering::Acquire)
    }
}

/// The ifindex of the network device of `vf`'s physical function (the PF
/// driver's netdev), if it has one.
pub(crate) fn pf_ifindex(vf: &pci::Device<Bound>) -> Option<i32> {
    let raw = core::ptr::from_ref(vf).cast_mut().cast::<b::pci_dev>();
    // SAFETY: a bound PCI function; the shim only reads under RCU.
    let idx = unsafe { b::xennet_shim_pf_ifindex(raw) };
    (idx > 0).then_some(idx)
}

/// A device that DMA mappings are made for (streaming, device to memory).
pub(crate) struct DmaDev {
    dev: kernel::sync::aref::ARef<kernel::device::Device>,
}

impl DmaDev {
    pub(crate) fn of(pdev: &pci::Device<Bound>) -> Self {
        let dev: &kernel::device::Device<Bound> = pdev.as_ref();
        let dev: &kernel::device::Device = dev;
        Self { dev: dev.into() }
    }

    pub(super) fn as_raw(&self) -> *mut b::device {
        // `device::Device` is a transparent wrapper of `struct device`.
        core::ptr::from_ref::<kernel::device::Device>(&self.dev).cast_mut().cast()
    }

    /// Another reference to the same device.
    pub(super) fn clone_ref(&self) -> Self {
        Self { dev: self.dev.clone() }
    }

    /// The same device as `other`.
    pub(super) fn is(&self, other: &DmaDev) -> bool {
        self.as_raw() == other.as_raw()
    }

    /// DMA into a page that stays mapped needs no cache maintenance
    /// between transfers (always so on x86).
    pub(super) fn coherent(&self) -> bool {
        // SAFETY: a live device (reference counted); only reads its flags.
        unsafe { b::xennet_shim_dma_coherent(self.as_raw()) }
    }
}
