// SPDX-License-Identifier: GPL-2.0

//! Event channels bound to interrupt handlers.
//!
//! A binding owns a reference to its handler's target ([`Arc`]), so the
//! target outlives every event delivered to it, whoever ends up dropping
//! the binding.

use super::bindings as b;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::sync::Arc;

/// Which of a queue's event channels a binding is, for its IRQ name.
#[derive(Clone, Copy)]
pub(crate) enum QueueChannel {
    /// One channel for both directions.
    Shared,
    /// Split channels: transmit, receive.
    Tx,
    Rx,
}

/// The IRQ name of queue `queue`'s channel as `/proc/interrupts` shows it:
/// `PREFIX-qN`, `PREFIX-qN-tx`, `PREFIX-qN-rx` (PREFIX: the vif or the driver).
pub(crate) fn queue_irq_name(prefix: &str, queue: usize, ch: QueueChannel) -> Result<CString> {
    let suffix = match ch {
        QueueChannel::Shared => "",
        QueueChannel::Tx => "-tx",
        QueueChannel::Rx => "-rx",
    };
    CString::try_from_fmt(fmt!("{}-q{}{}", prefix, queue, suffix))
}

/// The bound channel, as a handler sees it: signal the other end, or
/// acknowledge the event (late EOI). It borrows its binding (or lives for
/// one handler call), so it cannot outlive the IRQ it names: an IRQ number
/// kept past the unbind could be another guest's channel by then.
pub(crate) struct Channel<'a> {
    irq: u32,
    _binding: core::marker::PhantomData<&'a ()>,
}

impl Channel<'_> {
    /// Signals the other end.
    pub(crate) fn notify(&self) {
        // SAFETY: `irq` is bound to an event channel while a binding (and so
        // any `Channel` handed out for it) exists.
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

/// The target of an event channel's events.
pub(crate) trait EventHandler: Send + Sync + 'static {
    /// An event arrived on `ch`: hard-IRQ context for [`EventIrq::bind`]
    /// and [`EventIrq::bind_interdomain`], a kernel thread (may sleep) for
    /// [`EventIrq::bind_interdomain_threaded`]. `tag` is the binding's
    /// `TAG` (which of a target's channels fired). The handler (or work it
    /// schedules) must call [`Channel::lateeoi`] once done.
    fn event(&self, ch: Channel<'_>, tag: u32);
}

/// A handler that only acknowledges: for a channel whose events carry
/// nothing the driver waits on.
pub(crate) struct AckOnly;

impl EventHandler for AckOnly {
    fn event(&self, ch: Channel<'_>, _tag: u32) {
        ch.lateeoi(false);
    }
}

/// An event channel bound to an IRQ handler in "late EOI" mode: after each
/// event, no further event is delivered until [`Channel::lateeoi`], so a
/// peer signalling continuously (XSA-391) cannot monopolise a CPU.
///
/// # Invariants
///
/// `irq` is bound, with `target`'s address as its cookie and `name` as its
/// name, until drop.
pub(crate) struct EventIrq<H: EventHandler, const TAG: u32 = 0> {
    irq: u32,
    target: Arc<H>,
    /// The IRQ layer keeps a pointer to the name while bound.
    name: CString,
}

/// # Safety
///
/// Called by the IRQ layer with the cookie of a live [`EventIrq`] binding.
unsafe extern "C" fn handler<H: EventHandler, const TAG: u32>(irq: kernel::ffi::c_int, dev_id: *mut kernel::ffi::c_void) -> b::irqreturn_t {
    // SAFETY: `dev_id` is the target of a live binding, which holds a
    // reference to it (type invariant of `EventIrq`).
    let target = unsafe { &*dev_id.cast::<H>() };
    // The channel lives for this call only (the binding outlives it).
    target.event(Channel { irq: irq as u32, _binding: core::marker::PhantomData }, TAG);
    b::irqreturn::IRQ_HANDLED
}

impl<H: EventHandler, const TAG: u32> EventIrq<H, TAG> {
    fn cookie(target: &Arc<H>) -> *mut kernel::ffi::c_void {
        Arc::as_ptr(target).cast_mut().cast()
    }

    /// Binds our own unbound `port` (a frontend's channel) to `target`.
    pub(crate) fn bind(port: u32, name: &CStr, target: Arc<H>) -> Result<Self> {
        let name = CString::try_from(name)?;
        // SAFETY: the name and the cookie stay valid while bound (the
        // binding holds both).
        let irq = unsafe {
            b::bind_evtchn_to_irqhandler_lateeoi(port, Some(handler::<H, TAG>), 0, name.as_char_ptr(), Self::cookie(&target))
        };
        Self::bound(irq, target, name)
    }

    /// Binds the other end's unbound `remote_port` (a backend connecting to
    /// the channel its frontend allocated) to `target`.
    pub(crate) fn bind_interdomain(
        dev: &super::xenbus::Device,
        remote_port: u32,
        name: &CStr,
        target: Arc<H>,
    ) -> Result<Self> {
        let name = CString::try_from(name)?;
        // SAFETY: `dev` is live; the name and the cookie stay valid while
        // bound (the binding holds both).
        let irq = unsafe {
            b::bind_interdomain_evtchn_to_irqhandler_lateeoi(
                dev.as_raw(),
                remote_port,
                Some(handler::<H, TAG>),
                0,
                name.as_char_ptr(),
                Self::cookie(&target),
            )
        };
        Self::bound(irq, target, name)
    }

    /// As [`EventIrq::bind_interdomain`], but the handler runs in a kernel
    /// thread (process context, may sleep), one event at a time.
    pub(crate) fn bind_interdomain_threaded(
        dev: &super::xenbus::Device,
        remote_port: u32,
        name: &CStr,
        target: Arc<H>,
    ) -> Result<Self> {
        let name = CString::try_from(name)?;
        // SAFETY: as above.
        let irq = unsafe {
            b::xennet_shim_bind_interdomain_threaded(
                dev.as_raw(),
                remote_port,
                Some(handler::<H, TAG>),
                name.as_char_ptr(),
                Self::cookie(&target),
            )
        };
        Self::bound(irq, target, name)
    }

    /// The result of a binding call: its IRQ, or the error it returned.
    fn bound(irq: kernel::ffi::c_int, target: Arc<H>, name: CString) -> Result<Self> {
        if irq < 0 {
            return Err(Error::from_errno(irq));
        }
        Ok(Self { irq: irq as u32, target, name })
    }

    /// The channel, to signal or acknowledge.
    pub(crate) fn channel(&self) -> Channel<'_> {
        Channel { irq: self.irq, _binding: core::marker::PhantomData }
    }

    /// Signals the other end.
    pub(crate) fn notify(&self) {
        self.channel().notify();
    }

    /// See [`Channel::lateeoi`].
    pub(crate) fn lateeoi(&self, spurious: bool) {
        self.channel().lateeoi(spurious);
    }
}

impl<H: EventHandler, const TAG: u32> Drop for EventIrq<H, TAG> {
    fn drop(&mut self) {
        // SAFETY: unbinds what was bound, once; waits for a running handler
        // and closes the port. `target` and `name` are released after this.
        unsafe { b::unbind_from_irqhandler(self.irq, Self::cookie(&self.target)) };
    }
}
