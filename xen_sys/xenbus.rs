// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over xenbus: devices, xenstore access, state switches,
//! shared ring pages and event channel allocation.

use super::bindings as b;
use core::marker::PhantomData;
use kernel::prelude::*;
use kernel::str::CString;
use kernel::types::ForeignOwnable;

/// Xenbus states (`enum xenbus_state`, from the kernel's header), as
/// plain integers: a state read from xenstore is the peer's input and may
/// be any value.
pub(crate) mod state {
    use super::b;
    pub(crate) const UNKNOWN: u32 = b::xenbus_state_XenbusStateUnknown;
    pub(crate) const INITIALISING: u32 = b::xenbus_state_XenbusStateInitialising;
    pub(crate) const INIT_WAIT: u32 = b::xenbus_state_XenbusStateInitWait;
    pub(crate) const INITIALISED: u32 = b::xenbus_state_XenbusStateInitialised;
    pub(crate) const CONNECTED: u32 = b::xenbus_state_XenbusStateConnected;
    pub(crate) const CLOSING: u32 = b::xenbus_state_XenbusStateClosing;
    pub(crate) const CLOSED: u32 = b::xenbus_state_XenbusStateClosed;
    pub(crate) const RECONFIGURING: u32 = b::xenbus_state_XenbusStateReconfiguring;
    pub(crate) const RECONFIGURED: u32 = b::xenbus_state_XenbusStateReconfigured;

    /// Name of a state for log lines.
    pub(crate) fn name(s: u32) -> &'static str {
        match s {
            INITIALISING => "Initialising",
            INIT_WAIT => "InitWait",
            INITIALISED => "Initialised",
            CONNECTED => "Connected",
            CLOSING => "Closing",
            CLOSED => "Closed",
            RECONFIGURING => "Reconfiguring",
            RECONFIGURED => "Reconfigured",
            _ => "Unknown",
        }
    }
}

/// A xenbus device, as the driver callbacks see it: borrowed for the
/// length of one callback (`&Device`), never stored by a driver.
///
/// # Invariants
///
/// A `&Device` points to a live `struct xenbus_device` bound to our driver
/// for at least as long as the borrow (the xenbus core keeps it alive from
/// `probe` until `remove` returns).
#[repr(transparent)]
pub(crate) struct Device(kernel::types::Opaque<b::xenbus_device>);

// SAFETY: the xenbus functions wrapped here may be called from any thread
// and do their own locking; the fields read directly are set at probe time
// and do not change while the device is bound.
unsafe impl Sync for Device {}

fn cstr<'a>(p: *const kernel::ffi::c_char) -> &'a CStr {
    // SAFETY: callers pass strings owned by a live xenbus device, which the
    // xenbus core keeps NUL-terminated and allocated while the device exists.
    unsafe { CStr::from_char_ptr(p) }
}

impl Device {
    /// # Safety
    ///
    /// `dev` must be a live xenbus device bound to our driver for `'a`.
    pub(super) unsafe fn from_raw<'a>(dev: *mut b::xenbus_device) -> &'a Self {
        // SAFETY: `Device` is a transparent wrapper; liveness is the caller's.
        unsafe { &*dev.cast() }
    }

    pub(crate) fn as_raw(&self) -> *mut b::xenbus_device {
        self.0.get()
    }

    /// Our xenstore directory, e.g. `device/vif/0` (fixed while bound).
    pub(crate) fn nodename(&self) -> &CStr {
        // SAFETY: the device is live (type invariant).
        cstr(unsafe { b::xennet_shim_xenbus_nodename(self.as_raw()) })
    }

    /// The other end's xenstore directory, copied: xenbus replaces it when
    /// the domain is restored, so no reference to it is handed out.
    pub(crate) fn otherend(&self) -> Result<CString> {
        // SAFETY: the device is live (type invariant); the string is copied
        // before this callback returns.
        let p = cstr(unsafe { b::xennet_shim_xenbus_otherend(self.as_raw()) });
        CString::try_from_fmt(fmt!("{}", p.to_str().map_err(|_| EINVAL)?))
    }

    /// The other end's domain id.
    pub(crate) fn otherend_id(&self) -> u16 {
        // SAFETY: the device is live (type invariant).
        unsafe { b::xennet_shim_xenbus_otherend_id(self.as_raw()) as u16 }
    }

    /// The other end's state, read from xenstore now (not from a watch).
    pub(crate) fn otherend_state(&self) -> u32 {
        let Ok(other) = self.otherend() else {
            return state::UNKNOWN;
        };
        // SAFETY: the device is live; `other` is a NUL-terminated path.
        unsafe { b::xenbus_read_driver_state(self.as_raw(), other.as_char_ptr()) }
    }

    /// Polls the other end's state until `done` accepts it or `timeout_ms`
    /// passes; returns the last state seen. Usable from the xenwatch thread,
    /// which cannot wait for its own watch callbacks.
    pub(crate) fn wait_otherend(&self, timeout_ms: u32, done: impl Fn(u32) -> bool) -> u32 {
        let mut waited = 0;
        loop {
            let s = self.otherend_state();
            if done(s) || waited >= timeout_ms {
                return s;
            }
            super::sleep_ms(10);
            waited += 10;
        }
    }

    /// Our own xenbus state.
    pub(crate) fn state(&self) -> u32 {
        // SAFETY: the device is live (type invariant).
        unsafe { b::xennet_shim_xenbus_state(self.as_raw()) as u32 }
    }

    /// Publishes our state in xenstore.
    pub(crate) fn switch_state(&self, s: u32) -> Result {
        // SAFETY: the device is live (type invariant).
        to_result(unsafe { b::xenbus_switch_state(self.as_raw(), s as b::xenbus_state) })
    }

    /// The frontend is closed: `xenbus_frontend_closed`.
    pub(crate) fn frontend_closed(&self) {
        // SAFETY: the device is live (type invariant).
        unsafe { b::xenbus_frontend_closed(self.as_raw()) };
    }

    /// Reports a fatal error: logs it, records it in xenstore and closes the
    /// device.
    pub(crate) fn fatal(&self, err: Error, msg: &CStr) {
        // SAFETY: the device is live; `msg` is NUL-terminated and printed with "%s".
        unsafe { b::xennet_shim_xenbus_dev_fatal(self.as_raw(), err.to_errno(), msg.as_char_ptr()) };
    }

    /// Reads `dir/node` as an unsigned integer; `default` if missing or malformed.
    pub(crate) fn read_unsigned(dir: &CStr, node: &CStr, default: u32) -> u32 {
        // SAFETY: both strings are NUL-terminated; xenbus_read_unsigned copies them.
        unsafe { b::xenbus_read_unsigned(dir.as_char_ptr(), node.as_char_ptr(), default) }
    }

    /// Reads `dir/node` into `buf`; returns the value's length. Values longer
    /// than `buf` are an error (`EINVAL`): xenstore is the peer's input.
    pub(crate) fn read_into(dir: &CStr, node: &CStr, buf: &mut [u8]) -> Result<usize> {
        let mut len: kernel::ffi::c_uint = 0;
        let nil = b::xenbus_transaction { id: 0 };
        // SAFETY: the strings are NUL-terminated; `len` is a valid out-pointer.
        let p = kernel::error::from_err_ptr(unsafe {
            b::xenbus_read(nil, dir.as_char_ptr(), node.as_char_ptr(), &mut len)
        })?;
        let len = len as usize;
        let r = if len <= buf.len() {
            // SAFETY: xenbus_read returned a kmalloc'ed buffer of `len` bytes.
            let src = unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) };
            buf[..len].copy_from_slice(src);
            Ok(len)
        } else {
            Err(EINVAL)
        };
        // SAFETY: `p` was allocated by xenbus_read with kmalloc and is ours to free.
        unsafe { b::kfree(p) };
        r
    }

    /// Writes `node` = `value` in our own xenstore directory, outside any
    /// transaction.
    pub(crate) fn write(&self, node: &CStr, value: &CStr) -> Result {
        let nil = b::xenbus_transaction { id: 0 };
        // SAFETY: the device is live; all strings are NUL-terminated and copied.
        to_result(unsafe {
            b::xenbus_write(nil, self.nodename().as_char_ptr(), node.as_char_ptr(), value.as_char_ptr())
        })
    }

    /// Removes `node` from our own xenstore directory (missing is fine).
    pub(crate) fn remove_node(&self, node: &CStr) {
        let nil = b::xenbus_transaction { id: 0 };
        // SAFETY: the device is live; the strings are NUL-terminated.
        unsafe { b::xenbus_rm(nil, self.nodename().as_char_ptr(), node.as_char_ptr()) };
    }

    /// True while the toolstack wants the device (`online` = 1).
    pub(crate) fn is_online(&self) -> bool {
        // SAFETY: the device is live (type invariant).
        unsafe { b::xenbus_dev_is_online(self.as_raw()) != 0 }
    }

    /// Maps the other end's one-page ring `gref` into our address space.
    pub(crate) fn map_ring(&self, gref: u32) -> Result<MappedRing> {
        let mut vaddr: *mut kernel::ffi::c_void = core::ptr::null_mut();
        let mut gref = gref;
        // SAFETY: the device is live; one grant reference, valid out-pointer.
        to_result(unsafe { b::xenbus_map_ring_valloc(self.as_raw(), &mut gref, 1, &mut vaddr) })?;
        Ok(MappedRing { dev: self.as_raw(), vaddr })
    }

    /// Allocates an unbound event channel for the other end.
    pub(crate) fn alloc_evtchn(&self) -> Result<u32> {
        let mut port: b::evtchn_port_t = 0;
        // SAFETY: the device is live; `port` is a valid out-pointer.
        to_result(unsafe { b::xenbus_alloc_evtchn(self.as_raw(), &mut port) })?;
        Ok(port)
    }

    /// Frees an event channel from [`Device::alloc_evtchn`] that was never bound.
    pub(crate) fn free_evtchn(&self, port: u32) {
        // SAFETY: the device is live; the port was allocated for this device.
        unsafe { b::xenbus_free_evtchn(self.as_raw(), port) };
    }

    /// Writes the keys `write` produces in one xenstore transaction, retried
    /// while xenstore reports a conflict (`EAGAIN`); any other error aborts.
    pub(crate) fn transaction(&self, write: impl Fn(&Transaction) -> Result) -> Result {
        loop {
            let t = Transaction::start()?;
            if let Err(e) = write(&t) {
                let _ = t.end(true);
                return Err(e);
            }
            match t.end(false) {
                Err(e) if e == EAGAIN => continue,
                r => return r,
            }
        }
    }
}

use kernel::error::to_result;

/// One page shared with the other end, granted to it: a ring page from
/// `xenbus_setup_ring`. Teardown ends the grant and frees the page (the grant
/// layer defers the free while the peer still maps it).
///
/// # Invariants
///
/// `vaddr` and `gref` are the page and grant `xenbus_setup_ring` returned,
/// released only in `drop`.
pub(crate) struct RingPage {
    vaddr: *mut kernel::ffi::c_void,
    gref: b::grant_ref_t,
}

// SAFETY: the page is plain memory owned by this value.
unsafe impl Send for RingPage {}

impl RingPage {
    /// Allocates a zeroed page and grants the other end of `dev` access to it.
    pub(crate) fn new(dev: &Device) -> Result<Self> {
        let mut vaddr: *mut kernel::ffi::c_void = core::ptr::null_mut();
        let mut gref: b::grant_ref_t = 0;
        // SAFETY: `dev` is live; out-pointers are valid; one page is requested
        // and `gref` has room for one reference.
        to_result(unsafe {
            b::xenbus_setup_ring(dev.as_raw(), b::GFP_KERNEL, &mut vaddr, 1, &mut gref)
        })?;
        Ok(Self { vaddr, gref })
    }

    pub(crate) fn gref(&self) -> u32 {
        self.gref
    }

    /// The page's address, for the shared ring built over it.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.vaddr.cast()
    }
}

impl Drop for RingPage {
    fn drop(&mut self) {
        // SAFETY: `vaddr`/`gref` came from xenbus_setup_ring for one page and
        // are released exactly once, here.
        unsafe { b::xenbus_teardown_ring(&mut self.vaddr, 1, &mut self.gref) };
    }
}

/// The other end's ring page, mapped through its grant; unmapped on drop.
///
/// # Invariants
///
/// `dev` is the xenbus device the ring was mapped for. Mappings belong to a
/// driver's per-device data, which the driver drops in (or before) its
/// `remove` callback, while the device is still live.
pub(crate) struct MappedRing {
    dev: *mut b::xenbus_device,
    vaddr: *mut kernel::ffi::c_void,
}

// SAFETY: an address mapping owned by this value; unmapping may run anywhere
// in process context.
unsafe impl Send for MappedRing {}

impl MappedRing {
    /// The mapped page, for the shared ring built over it.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.vaddr.cast()
    }
}

impl Drop for MappedRing {
    fn drop(&mut self) {
        // SAFETY: mapped by `map_ring` for this device, unmapped once here;
        // the device outlives its connections.
        unsafe { b::xenbus_unmap_ring_vfree(self.dev, self.vaddr) };
    }
}

/// A xenstore transaction.
pub(crate) struct Transaction(u32);

impl Transaction {
    pub(crate) fn start() -> Result<Self> {
        let mut t = b::xenbus_transaction { id: 0 };
        // SAFETY: `t` is a valid out-pointer.
        to_result(unsafe { b::xenbus_transaction_start(&mut t) })?;
        Ok(Self(t.id))
    }

    fn raw(&self) -> b::xenbus_transaction {
        b::xenbus_transaction { id: self.0 }
    }

    /// Writes `dir/node` = `value`.
    pub(crate) fn write(&self, dir: &CStr, node: &CStr, value: &CStr) -> Result {
        // SAFETY: all strings are NUL-terminated; xenbus_write copies them.
        to_result(unsafe {
            b::xenbus_write(self.raw(), dir.as_char_ptr(), node.as_char_ptr(), value.as_char_ptr())
        })
    }

    /// Writes `dir/node` = decimal `value`.
    pub(crate) fn write_u32(&self, dir: &CStr, node: &CStr, value: u32) -> Result {
        let s = CString::try_from_fmt(fmt!("{}", value))?;
        self.write(dir, node, &s)
    }

    /// Removes `dir/node` if present (a missing node is not an error).
    pub(crate) fn remove(&self, dir: &CStr, node: &CStr) -> Result {
        // SAFETY: the strings are NUL-terminated; xenbus_rm copies them.
        let rc = unsafe { b::xenbus_rm(self.raw(), dir.as_char_ptr(), node.as_char_ptr()) };
        if rc == ENOENT.to_errno() {
            return Ok(());
        }
        to_result(rc)
    }

    /// Commits (or aborts) the transaction; `EAGAIN` means retry it.
    pub(crate) fn end(self, abort: bool) -> Result {
        // SAFETY: `self.0` is a started transaction, ended exactly once here.
        to_result(unsafe { b::xenbus_transaction_end(self.raw(), abort) })
    }
}

/// A xenbus device-type table entry from a name such as `b"vif"`.
pub(crate) const fn device_id(name: &[u8]) -> b::xenbus_device_id {
    let mut devicetype = [0; 32];
    let mut i = 0;
    while i < name.len() && i < 31 {
        devicetype[i] = name[i] as kernel::ffi::c_char;
        i += 1;
    }
    b::xenbus_device_id { devicetype }
}

/// Which side of the split driver model a driver serves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Guest side: devices under `device/`.
    Frontend,
    /// Driver-domain side: devices under `backend/`.
    Backend,
}

/// What a driver wants done once its `otherend_changed` returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// Nothing more.
    Stay,
    /// The toolstack removed the device: unregister it from the driver
    /// core, which runs `remove` (and frees the driver's data) after the
    /// callback's borrow of that data has ended.
    Unregister,
}

/// A xenbus driver: its per-device data (`Self`) and callbacks. The
/// [`Registration`] owns the C callbacks; the data lives in a pinned box
/// from `probe` until `remove`, borrowed by every callback in between.
#[vtable]
pub(crate) trait XenbusDriver: Send + Sync + Sized + 'static {
    /// Creates the per-device data for a newly bound device.
    fn probe(dev: &Device) -> Result<Pin<KBox<Self>>>;

    /// The other end's state changed.
    fn otherend_changed(&self, dev: &Device, other_state: u32) -> Then;

    /// The device is being unbound: tear down and drop the data.
    fn remove(this: Pin<KBox<Self>>, dev: &Device);

    /// The domain was restored (xl restore, migration).
    fn resume(&self, _dev: &Device) -> Result {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// The driver data of a bound device, borrowed.
///
/// # Safety
///
/// `dev` must be a live device bound to `T`'s driver, not yet removed.
unsafe fn data_of<'a, T: XenbusDriver>(dev: *mut b::xenbus_device) -> Option<Pin<&'a T>> {
    // SAFETY: the device is live (caller's contract).
    let p = unsafe { b::xennet_shim_get_drvdata(dev) };
    if p.is_null() {
        return None;
    }
    // SAFETY: `probe_callback` stored a `Pin<KBox<T>>` here with
    // `into_foreign`; it is taken back only in `remove_callback`, which the
    // driver core does not run concurrently with the other callbacks.
    Some(unsafe { <Pin<KBox<T>> as ForeignOwnable>::borrow(p) })
}

/// # Safety
///
/// Called by xenbus with a live device matching the driver's table.
unsafe extern "C" fn probe_callback<T: XenbusDriver>(
    dev: *mut b::xenbus_device,
    _id: *const b::xenbus_device_id,
) -> kernel::ffi::c_int {
    // SAFETY: xenbus calls probe with a live device, bound to us from now on.
    let d = unsafe { Device::from_raw(dev) };
    match T::probe(d) {
        Ok(data) => {
            // SAFETY: the device is live; the pointer is taken back in
            // `remove_callback`.
            unsafe { b::xennet_shim_set_drvdata(dev, data.into_foreign()) };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// Called by xenbus for a device probed successfully and not yet removed.
unsafe extern "C" fn otherend_changed_callback<T: XenbusDriver>(dev: *mut b::xenbus_device, s: b::xenbus_state) {
    // SAFETY: xenbus calls this for a device probed successfully, before remove.
    let then = match unsafe { data_of::<T>(dev) } {
        // SAFETY: as above.
        Some(data) => data.otherend_changed(unsafe { Device::from_raw(dev) }, s),
        None => Then::Stay,
    };
    // The borrow of the driver data has ended: `remove` may free it now.
    if then == Then::Unregister {
        // SAFETY: the device is live; the xenbus core frees it when its
        // last reference goes, after `remove`.
        unsafe { b::xennet_shim_xenbus_device_unregister(dev) };
    }
}

/// # Safety
///
/// Called by xenbus once for a device, after a successful probe.
unsafe extern "C" fn remove_callback<T: XenbusDriver>(dev: *mut b::xenbus_device) {
    // SAFETY: xenbus calls remove once, for a device probed successfully.
    let p = unsafe { b::xennet_shim_get_drvdata(dev) };
    if p.is_null() {
        return;
    }
    // SAFETY: the device is live; the pointer is ours (stored in probe) and
    // cleared before it is taken back, once.
    let data = unsafe {
        b::xennet_shim_set_drvdata(dev, core::ptr::null_mut());
        <Pin<KBox<T>> as ForeignOwnable>::from_foreign(p)
    };
    // SAFETY: the device is live until remove returns.
    T::remove(data, unsafe { Device::from_raw(dev) });
}

/// # Safety
///
/// Called by xenbus for a device probed successfully and not yet removed.
unsafe extern "C" fn resume_callback<T: XenbusDriver>(dev: *mut b::xenbus_device) -> kernel::ffi::c_int {
    // SAFETY: xenbus calls resume for a device probed successfully, before remove.
    let Some(data) = (unsafe { data_of::<T>(dev) }) else {
        return 0;
    };
    // SAFETY: as above.
    match data.resume(unsafe { Device::from_raw(dev) }) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A registered xenbus driver for `T`'s devices; unregistered (removing
/// every bound device) when dropped.
pub(crate) struct Registration<T: XenbusDriver> {
    drv: Pin<KBox<kernel::types::Opaque<b::xenbus_driver>>>,
    _data: PhantomData<T>,
}

// SAFETY: after registration the driver structure belongs to the driver core,
// which serialises access to it; we only pass its address to unregister.
unsafe impl<T: XenbusDriver> Send for Registration<T> {}
// SAFETY: as above; `&Registration` gives no access to the structure.
unsafe impl<T: XenbusDriver> Sync for Registration<T> {}

impl<T: XenbusDriver> Registration<T> {
    /// Registers `T` as the driver named `name` for the device types in
    /// `ids` (terminated by an all-zero entry) on `side`'s bus.
    pub(crate) fn register(side: Side, name: &'static CStr, ids: &'static [b::xenbus_device_id]) -> Result<Self> {
        if ids.last().is_none_or(|id| id.devicetype[0] != 0) {
            return Err(EINVAL);
        }
        let drv = KBox::pin(kernel::types::Opaque::<b::xenbus_driver>::zeroed(), GFP_KERNEL)?;
        let p = drv.get();
        // SAFETY: `p` is a zeroed driver structure we own, pinned until
        // unregistered in `drop`; the name and table are 'static and the table
        // is terminated; the callbacks have xenbus's signatures.
        to_result(unsafe {
            (*p).name = name.as_char_ptr();
            (*p).ids = ids.as_ptr();
            (*p).probe = Some(probe_callback::<T>);
            (*p).otherend_changed = Some(otherend_changed_callback::<T>);
            (*p).remove = Some(remove_callback::<T>);
            (*p).resume = if T::HAS_RESUME { Some(resume_callback::<T>) } else { None };
            match side {
                Side::Frontend => b::xennet_shim_xenbus_register_frontend(p),
                Side::Backend => b::xennet_shim_xenbus_register_backend(p),
            }
        })?;
        Ok(Self { drv, _data: PhantomData })
    }
}

impl<T: XenbusDriver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: registered in `register`, unregistered once here.
        unsafe { b::xenbus_unregister_driver(self.drv.get()) };
    }
}
