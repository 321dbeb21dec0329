// SPDX-License-Identifier: GPL-2.0

//! Event channels bound to interrupt handlers.

use super::bindings as b;
use kernel::prelude::*;

/// Handler signature of `bind_evtchn_to_irqhandler_lateeoi`.
pub(crate) type Handler =
    unsafe extern "C" fn(irq: kernel::ffi::c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t;

/// An event channel bound to an IRQ handler in "late EOI" mode: after each
/// event, no further event is delivered until [`EventIrq::lateeoi`], so a
/// peer signalling continuously (XSA-391) cannot monopolise a CPU.
pub(crate) struct EventIrq {
    irq: u32,
    dev_id: *mut kernel::ffi::c_void,
}

// SAFETY: an IRQ number and an opaque cookie; the event channel functions
// may be called from any context.
unsafe impl Send for EventIrq {}
// SAFETY: as above.
unsafe impl Sync for EventIrq {}

impl EventIrq {
    /// Binds `port` to `handler`, which receives `dev_id`.
    ///
    /// # Safety
    ///
    /// `dev_id` must stay valid for `handler` until this value is dropped.
    pub(crate) unsafe fn bind(
        port: u32,
        handler: Handler,
        name: &'static CStr,
        dev_id: *mut kernel::ffi::c_void,
    ) -> Result<Self> {
        // SAFETY: `name` is 'static; `dev_id` validity is the caller's contract.
        let irq = unsafe {
            b::bind_evtchn_to_irqhandler_lateeoi(port, Some(handler), 0, name.as_char_ptr(), dev_id)
        };
        Self::bound(irq, dev_id)
    }

    /// Binds the other end's unbound `remote_port` (a backend connecting to
    /// the channel its frontend allocated) to `handler`, which receives
    /// `dev_id`.
    ///
    /// # Safety
    ///
    /// `dev_id` must stay valid for `handler` until this value is dropped.
    pub(crate) unsafe fn bind_interdomain(
        dev: &super::xenbus::Device,
        remote_port: u32,
        handler: Handler,
        name: &'static CStr,
        dev_id: *mut kernel::ffi::c_void,
    ) -> Result<Self> {
        // SAFETY: `dev` is live; `name` is 'static; `dev_id` validity is the
        // caller's contract.
        let irq = unsafe {
            b::bind_interdomain_evtchn_to_irqhandler_lateeoi(
                dev.as_raw(),
                remote_port,
                Some(handler),
                0,
                name.as_char_ptr(),
                dev_id,
            )
        };
        Self::bound(irq, dev_id)
    }

    /// As [`EventIrq::bind_interdomain`], but `handler` runs in a kernel
    /// thread (process context, may sleep), one event at a time.
    ///
    /// # Safety
    ///
    /// `dev_id` must stay valid for `handler` until this value is dropped.
    pub(crate) unsafe fn bind_interdomain_threaded(
        dev: &super::xenbus::Device,
        remote_port: u32,
        handler: Handler,
        name: &'static CStr,
        dev_id: *mut kernel::ffi::c_void,
    ) -> Result<Self> {
        // SAFETY: `dev` is live; `name` is 'static; `dev_id` validity is the
        // caller's contract.
        let irq = unsafe {
            b::xennet_shim_bind_interdomain_threaded(dev.as_raw(), remote_port, Some(handler), name.as_char_ptr(), dev_id)
        };
        Self::bound(irq, dev_id)
    }

    /// The result of a binding call: its IRQ, or the error it returned.
    fn bound(irq: kernel::ffi::c_int, dev_id: *mut kernel::ffi::c_void) -> Result<Self> {
        if irq < 0 {
            return Err(Error::from_errno(irq));
        }
        Ok(Self {
            irq: irq as u32,
            dev_id,
        })
    }

    /// Signals the other end.
    pub(crate) fn notify(&self) {
        // SAFETY: `irq` is bound to an event channel (type invariant).
        unsafe { b::notify_remote_via_irq(self.irq as i32) };
    }

    /// Re-enables delivery after an event. `spurious`: the event brought no
    /// work, which makes Xen delay the next one (event-storm throttling).
    pub(crate) fn lateeoi(&self, spurious: bool) {
        let flags = if spurious { b::XEN_EOI_FLAG_SPURIOUS } else { 0 };
        // SAFETY: `irq` was bound in late-EOI mode.
        unsafe { b::xen_irq_lateeoi(self.irq, flags) };
    }
}

impl Drop for EventIrq {
    fn drop(&mut self) {
        // SAFETY: unbinds what `bind` bound, once; also closes the port.
        unsafe { b::unbind_from_irqhandler(self.irq, self.dev_id) };
    }
}
