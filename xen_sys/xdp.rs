// SPDX-License-Identifier: GPL-2.0

//! Native XDP for a driver's receive path: the attached program ([`Prog`],
//! held by a [`ProgSlot`] that NAPI polls read), each queue's receive-queue
//! info ([`RxqInfo`], registered with the device by `Registration`), a
//! frame in a page of ours run through the program ([`run`]), and the
//! frames other devices' programs redirect to ours ([`XdpFrames`], handed
//! to `NetDriver::xdp_xmit`).
//!
//! The frame always lies in a page the driver owns, copied there out of
//! the shared buffer: the program never reads memory the peer can still
//! write.

use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::types::Opaque;

use super::bindings as b;
use super::netdev::{FragPage, NetDevice, NewSkb, Polling};
use super::netif::PAGE_SIZE;

/// Bytes left before a frame for its program (`XDP_PACKET_HEADROOM`,
/// checked against the C header at load).
pub(crate) const HEADROOM: usize = 256;

/// Largest frame a program runs on: a page less the headroom and the
/// `skb_shared_info` that an skb built on the page keeps at its end.
pub(crate) fn max_frame() -> usize {
    // SAFETY: returns a compile-time constant.
    PAGE_SIZE - HEADROOM - unsafe { b::xennet_shim_skb_shinfo_size() } as usize
}

/// `XDP_PACKET_HEADROOM` as the C header has it (the load-time check).
pub(super) fn c_headroom() -> usize {
    // SAFETY: returns a compile-time constant.
    unsafe { b::xennet_shim_xdp_packet_headroom() as usize }
}

// `enum xdp_action` (uapi: fixed values).
const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

/// One reference to a BPF program.
///
/// # Invariants
///
/// `0` is a live program on which we hold one reference.
pub(crate) struct Prog(NonNull<b::bpf_prog>);

// SAFETY: a program's reference count may be dropped from any thread.
unsafe impl Send for Prog {}
// SAFETY: `Prog` gives no access to the program but through the kernel's
// thread-safe functions.
unsafe impl Sync for Prog {}

impl Prog {
    /// Takes over the reference the caller holds on `raw` (null: none).
    ///
    /// # Safety
    ///
    /// `raw` is null or a live program on which the caller holds a
    /// reference that passes to the returned value.
    pub(super) unsafe fn from_raw(raw: *mut b::bpf_prog) -> Option<Self> {
        NonNull::new(raw).map(Self)
    }
}

impl Drop for Prog {
    fn drop(&mut self) {
        // SAFETY: we hold a reference (type invariant); the program is freed
        // after an RCU grace period once the last one goes, so a poll that
        // read it from a `ProgSlot` can finish with it.
        unsafe { b::bpf_prog_put(self.0.as_ptr()) };
    }
}

/// The program a device runs: installed under RTNL (`ndo_bpf`), read by
/// the NAPI polls of its queues.
///
/// # Invariants
///
/// `ptr` is null or a program on which the slot holds one reference.
pub(crate) struct ProgSlot {
    ptr: AtomicPtr<b::bpf_prog>,
}

impl ProgSlot {
    pub(crate) const fn new() -> Self {
        Self { ptr: AtomicPtr::new(core::ptr::null_mut()) }
    }

    /// Installs `prog` (`None`: detaches); returns the program it replaces,
    /// whose reference goes when the caller drops it.
    pub(crate) fn replace(&self, prog: Option<Prog>) -> Option<Prog> {
        let new = prog.map_or(core::ptr::null_mut(), |p| ManuallyDrop::new(p).0.as_ptr());
        let old = self.ptr.swap(new, Ordering::AcqRel);
        // The slot's reference on the old program passes to the caller.
        NonNull::new(old).map(Prog)
    }

    /// A program is attached.
    pub(crate) fn is_set(&self) -> bool {
        !self.ptr.load(Ordering::Acquire).is_null()
    }

    /// The program attached now, for the length of a poll.
    pub(crate) fn get<'a>(&'a self, _poll: &'a Polling<'_>) -> Option<ProgRef<'a>> {
        NonNull::new(self.ptr.load(Ordering::Acquire)).map(|p| ProgRef(p, PhantomData))
    }
}

impl Drop for ProgSlot {
    fn drop(&mut self) {
        drop(self.replace(None));
    }
}

/// A program read from a [`ProgSlot`] during a poll.
///
/// # Invariants
///
/// `0` stays live while the poll runs: polls run with bottom halves off
/// (an RCU read-side section), and a program is freed only an RCU grace
/// period after its last reference went.
pub(crate) struct ProgRef<'a>(NonNull<b::bpf_prog>, PhantomData<&'a Polling<'a>>);

/// A queue's `xdp_rxq_info`: tells a program which device and queue a frame
/// came in on, and how its page goes back (order-0 pages: `put_page`).
#[pin_data(PinnedDrop)]
pub(crate) struct RxqInfo {
    #[pin]
    inner: Opaque<b::xdp_rxq_info>,
    registered: AtomicBool,
}

// SAFETY: registered and unregistered once each (by the registration of
// the device), read by the XDP core only.
unsafe impl Send for RxqInfo {}
// SAFETY: as above.
unsafe impl Sync for RxqInfo {}

impl RxqInfo {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { inner <- Opaque::zeroed(), registered: AtomicBool::new(false) })
    }

    /// Registers it as receive queue `queue` of `dev` (before the device
    /// is registered).
    pub(super) fn register(&self, dev: &NetDevice, queue: u32) -> Result {
        if self.registered.load(Ordering::Acquire) {
            return Err(EINVAL);
        }
        // SAFETY: `inner` is ours, pinned, and not registered; `dev` is live.
        kernel::error::to_result(unsafe { b::xennet_shim_xdp_rxq_reg(self.inner.get(), dev.as_raw(), queue) })?;
        self.registered.store(true, Ordering::Release);
        Ok(())
    }

    /// Unregisters it (once the device is unregistered: no poll runs).
    pub(super) fn unregister(&self) {
        if self.registered.swap(false, Ordering::AcqRel) {
            // SAFETY: registered above and not used any more.
            unsafe { b::xdp_rxq_info_unreg(self.inner.get()) };
        }
    }
}

#[pinned_drop]
impl PinnedDrop for RxqInfo {
    fn drop(self: Pin<&mut Self>) {
        self.unregister();
    }
}

/// A frame as a program left it, in a page of ours: `len` bytes at `off`,
/// with `meta` bytes of XDP metadata before them.
///
/// # Invariants
///
/// `meta <= off` and `off + len <= PAGE_SIZE`.
pub(crate) struct Frame {
    page: FragPage,
    off: usize,
    len: usize,
    meta: usize,
}

impl Frame {
    /// The frame's bytes.
    pub(crate) fn data(&self) -> &[u8] {
        // SAFETY: the page is ours and `off + len` lies within it (type
        // invariant); nobody else writes it while we hold it.
        unsafe { core::slice::from_raw_parts(self.page.address().add(self.off), self.len) }
    }

    /// The page, once the frame was copied elsewhere (to reuse or free).
    pub(crate) fn into_page(self) -> FragPage {
        self.page
    }

    /// Builds an skb on the page (for `XDP_PASS`): no copy. `None` if no
    /// skb could be allocated (the page is freed).
    pub(crate) fn into_skb(self, _poll: &Polling<'_>) -> Option<NewSkb> {
        let page = ManuallyDrop::new(self.page);
        // SAFETY: the page is ours and passes to the skb on success; its
        // bounds hold (type invariant) and its end leaves room for
        // `skb_shared_info` (`max_frame`, and a program cannot grow the
        // frame past the `frame_sz` it was given less that room).
        let skb = unsafe { b::xennet_shim_build_skb(page.as_raw(), self.off as u32, self.len as u32, self.meta as u32) };
        // SAFETY: a fresh skb is ours.
        let skb = unsafe { NewSkb::from_raw(skb) };
        if skb.is_none() {
            drop(ManuallyDrop::into_inner(page));
        }
        skb
    }
}

/// What a program did with a frame.
pub(crate) enum Verdict {
    /// `XDP_PASS`: up the stack.
    Pass(Frame),
    /// `XDP_TX`: back out of the device it came in on.
    Tx(Frame),
    /// `XDP_REDIRECT`, done: the page went with the frame.
    Redirected,
    /// `XDP_DROP`, or a failure (`XDP_ABORTED`, an unknown action, a
    /// redirect that failed; `aborted` then): the page, to reuse or free.
    Dropped { page: FragPage, aborted: bool },
}

/// Runs `prog` on the `len`-byte frame at [`HEADROOM`] in `page`, which
/// came in on `rxq` of `dev`. Called from the queue's poll.
pub(crate) fn run(prog: &ProgRef<'_>, rxq: &RxqInfo, dev: &NetDevice, page: FragPage, len: usize) -> Verdict {
    if len > max_frame() {
        return Verdict::Dropped { page, aborted: true };
    }
    let mut xdp = MaybeUninit::<b::xdp_buff>::uninit();
    let p = prog.0.as_ptr();
    // SAFETY: `xdp` is ours and the shim initialises it; the page is ours
    // with the frame at `HEADROOM` (`len <= max_frame()`); `rxq` is
    // registered (`Registration` does so for every queue of an XDP
    // driver); the program is live for the poll (`ProgRef`).
    let act = unsafe {
        b::xennet_shim_xdp_prepare(xdp.as_mut_ptr(), rxq.inner.get(), page.as_raw(), HEADROOM as u32, len as u32);
        b::xennet_shim_bpf_prog_run_xdp(p, xdp.as_mut_ptr())
    };
    match act {
        XDP_PASS | XDP_TX => {
            let (mut off, mut len, mut meta) = (0u32, 0u32, 0u32);
            // SAFETY: initialised above.
            unsafe { b::xennet_shim_xdp_bounds(xdp.as_ptr(), &mut off, &mut len, &mut meta) };
            let (off, len, meta) = (off as usize, len as usize, meta as usize);
            // The XDP core keeps these within the page; checked anyway.
            if meta > off || off + len > PAGE_SIZE {
                return Verdict::Dropped { page, aborted: true };
            }
            let frame = Frame { page, off, len, meta };
            if act == XDP_PASS { Verdict::Pass(frame) } else { Verdict::Tx(frame) }
        }
        XDP_REDIRECT => {
            // SAFETY: as above; on success the page passes with the frame
            // (returned with `put_page`, the queue's memory model).
            let err = unsafe { b::xdp_do_redirect(dev.as_raw(), xdp.as_mut_ptr(), p) };
            if err == 0 {
                let _ = ManuallyDrop::new(page);
                Verdict::Redirected
            } else {
                // SAFETY: live device and program.
                unsafe { b::xennet_shim_trace_xdp_exception(dev.as_raw(), p, act) };
                Verdict::Dropped { page, aborted: true }
            }
        }
        XDP_DROP => Verdict::Dropped { page, aborted: false },
        _ => {
            // SAFETY: live device and program.
            unsafe {
                if act != XDP_ABORTED {
                    b::bpf_warn_invalid_xdp_action(dev.as_raw(), p, act);
                }
                b::xennet_shim_trace_xdp_exception(dev.as_raw(), p, act);
            }
            Verdict::Dropped { page, aborted: true }
        }
    }
}

/// Sends on the frames this poll redirected (`xdp_do_flush`): once per
/// poll that redirected any, before it ends.
pub(crate) fn flush_redirects(_poll: &Polling<'_>) {
    // SAFETY: called from a NAPI poll, as the XDP core requires.
    unsafe { b::xdp_do_flush() };
}

/// The CPU we run on (picks a transmit queue for redirected frames).
pub(crate) fn this_cpu() -> usize {
    // SAFETY: no precondition (a hint: the caller may migrate after).
    unsafe { b::xennet_shim_smp_processor_id() as usize }
}

/// Frames other devices' programs redirected to ours (`ndo_xdp_xmit`).
pub(crate) struct XdpFrames<'a> {
    frames: &'a [*mut b::xdp_frame],
}

impl<'a> XdpFrames<'a> {
    /// # Safety
    ///
    /// Each entry of `frames` is a live frame the caller holds while this
    /// value lives.
    pub(super) unsafe fn new(frames: &'a [*mut b::xdp_frame]) -> Self {
        Self { frames }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Frame `i`'s bytes (empty past the end).
    pub(crate) fn data(&self, i: usize) -> &[u8] {
        let Some(&f) = self.frames.get(i) else { return &[] };
        let mut len = 0u32;
        // SAFETY: a live frame (constructor's contract); its data is `len`
        // bytes, ours to read until we return it.
        unsafe {
            let data = b::xennet_shim_xdp_frame_data(f, &mut len);
            core::slice::from_raw_parts(data.cast::<u8>(), len as usize)
        }
    }
}
