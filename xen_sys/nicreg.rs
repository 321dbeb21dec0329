// SPDX-License-Identifier: GPL-2.0

//! The NIC queues a backend has, by the MAC the NIC steers into each: a
//! VF's driver registers its queue when it binds and withdraws it when it
//! unbinds; a vif whose guest has that MAC finds it there.

use core::any::Any;
use core::sync::atomic::{AtomicBool, Ordering};

use kernel::prelude::*;
use kernel::sync::Arc;

struct Entry {
    mac: [u8; 6],
    port: Arc<dyn Any + Send + Sync>,
}

kernel::sync::global_lock! {
    // SAFETY: `init` runs once, in module init (guarded by `READY`), and
    // nothing locks `PORTS` before `READY` is set.
    unsafe(uninit) static PORTS: Mutex<KVec<Entry>> = KVec::new();
}

static READY: AtomicBool = AtomicBool::new(false);

/// The registry's lifetime in the module (held by the module, dropped at
/// unload after every vif and VF went).
pub(crate) struct Registry;

/// Sets the registry up; module init calls it before anything registers.
pub(crate) fn init() -> Registry {
    if !READY.swap(true, Ordering::AcqRel) {
        // SAFETY: the first and only call (the swap above), before any use.
        unsafe { PORTS.init() };
    }
    Registry
}

/// Registers `port` as the queue the NIC steers `mac` into.
pub(crate) fn register<T: Any + Send + Sync>(mac: [u8; 6], port: Arc<T>) -> Result {
    if !READY.load(Ordering::Acquire) {
        return Err(EINVAL);
    }
    let mut ports = PORTS.lock();
    if ports.iter().any(|e| e.mac == mac) {
        return Err(EEXIST);
    }
    ports.push(Entry { mac, port }, GFP_KERNEL)?;
    Ok(())
}

/// Withdraws `port` (whatever MAC it was registered under).
pub(crate) fn unregister<T: Any + Send + Sync>(port: &Arc<T>) {
    if !READY.load(Ordering::Acquire) {
        return;
    }
    let target = Arc::as_ptr(port).cast::<u8>();
    PORTS.lock().retain(|e| !core::ptr::eq(Arc::as_ptr(&e.port).cast::<u8>(), target));
}

/// The queue of type `T` steered by `mac`, if one is registered.
pub(crate) fn find<T: Any + Send + Sync>(mac: [u8; 6]) -> Option<Arc<T>> {
    if !READY.load(Ordering::Acquire) {
        return None;
    }
    let ports = PORTS.lock();
    let port = ports.iter().find(|e| e.mac == mac)?.port.clone();
    drop(ports);
    port.downcast::<T>().ok()
}

/// How many queues are registered.
pub(crate) fn count() -> usize {
    if !READY.load(Ordering::Acquire) {
        return 0;
    }
    PORTS.lock().len()
}
