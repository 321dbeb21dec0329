// SPDX-License-Identifier: GPL-2.0

//! xen-sys: the kernel's Xen and networking interfaces for our modules.
//!
//! `bindings` is generated at build time by bindgen over `bindings_helper.h`
//! (see `Kbuild`); `shim.c` turns the static inlines and macros Rust cannot
//! call into functions. The safe wrappers in this module are the only place
//! that calls into either: driver code above it stays free of `unsafe`.

#[allow(
    dead_code,
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    improper_ctypes,
    unreachable_pub,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    clippy::ptr_as_ptr,
    clippy::ref_as_ptr,
    clippy::cast_lossless,
    clippy::as_underscore,
    clippy::ptr_cast_constness
)]
pub(crate) mod bindings {
    // Kernel types the Xen items refer to; our generated items shadow this glob.
    pub(crate) use kernel::bindings::*;
    use pin_init::MaybeZeroable;
    include!("generated/bindings.rs");
}

// The netif protocol core (no kernel dependency; host-tested in netif/),
// compiled into each module as part of this layer.
#[path = "../netif/src/proto/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
pub(crate) mod netif;

// Grant reuse's bookkeeping (no kernel dependency; host-tested in
// grant_reuse/), and its kernel glue (`reuse`).
#[path = "../grant_reuse/src/reuse/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
pub(crate) mod grant_reuse;

// The NIC receive queue's bookkeeping (no kernel dependency; host-tested
// in nic_queue/): descriptor formats, the ring, frames to netif responses,
// the igb VF mailbox.
#[path = "../nic_queue/src/nicq/mod.rs"]
#[allow(dead_code, unreachable_pub, unused_imports)]
pub(crate) mod nic_queue;

pub(crate) mod barrier;
pub(crate) mod batch;
pub(crate) mod ethtool;
pub(crate) mod evtchn;
pub(crate) mod grant;
pub(crate) mod netdev;
pub(crate) mod nicreg;
pub(crate) mod pci;
pub(crate) mod periodic;
pub(crate) mod reuse;
pub(crate) mod ring;
pub(crate) mod sync;
pub(crate) mod xdp;
pub(crate) mod xenbus;

/// Checks that the structures bindgen laid out for us have the C compiler's
/// sizes: a mismatch would make the kernel read or write past our objects.
pub(crate) fn check_layouts() -> kernel::error::Result {
    use core::mem::size_of;
    // SAFETY: the shim functions return compile-time constants.
    let c = unsafe {
        [
            ("xenbus_driver", bindings::xennet_shim_sizeof_xenbus_driver(), size_of::<bindings::xenbus_driver>()),
            ("net_device_ops", bindings::xennet_shim_sizeof_net_device_ops(), size_of::<bindings::net_device_ops>()),
            ("rtnl_link_stats64", bindings::xennet_shim_sizeof_rtnl_link_stats64(), size_of::<bindings::rtnl_link_stats64>()),
            ("xenbus_device", bindings::xennet_shim_sizeof_xenbus_device(), size_of::<bindings::xenbus_device>()),
            ("napi_struct", bindings::xennet_shim_sizeof_napi_struct(), size_of::<bindings::napi_struct>()),
            ("ethtool_ops", bindings::xennet_shim_sizeof_ethtool_ops(), size_of::<bindings::ethtool_ops>()),
            ("timer_list", bindings::xennet_shim_sizeof_timer_list(), size_of::<bindings::timer_list>()),
            ("xdp_buff", bindings::xennet_shim_sizeof_xdp_buff(), size_of::<bindings::xdp_buff>()),
            ("xdp_rxq_info", bindings::xennet_shim_sizeof_xdp_rxq_info(), size_of::<bindings::xdp_rxq_info>()),
        ]
    };
    if xdp::c_headroom() != xdp::HEADROOM {
        kernel::pr_err!("XDP_PACKET_HEADROOM is {} in C, {} in our bindings\n", xdp::c_headroom(), xdp::HEADROOM);
        return Err(kernel::error::code::EINVAL);
    }
    for (name, c_size, rust_size) in c {
        if c_size != rust_size {
            kernel::pr_err!("layout mismatch: struct {} is {} bytes in C, {} in our bindings\n", name, c_size, rust_size);
            return Err(kernel::error::code::EINVAL);
        }
    }
    Ok(())
}

/// The checks every module runs at load: on Xen, our bindings' layouts
/// match the C compiler's, and the protocol core (from Xen's canonical
/// header) agrees with the kernel's header on the ring sizes. Logs what it
/// found and returns the domain kind.
pub(crate) fn check_environment() -> kernel::error::Result<DomainKind> {
    let domain = DomainKind::current();
    if domain == DomainKind::NotXen {
        kernel::pr_err!("not running on Xen, refusing to load\n");
        return Err(kernel::error::code::ENODEV);
    }
    check_layouts()?;
    let (tx, rx) = netif_ring_sizes();
    let core = (netif::TX_RING_SIZE as usize, netif::RX_RING_SIZE as usize);
    if (tx, rx) != core {
        kernel::pr_err!(
            "netif ring layout mismatch: kernel tx {} rx {}, protocol core tx {} rx {}\n",
            tx,
            rx,
            core.0,
            core.1
        );
        return Err(kernel::error::code::EINVAL);
    }
    kernel::pr_info!(
        "loaded in {} ({}), netif rings: tx {} slots, rx {} slots\n",
        domain.name(),
        if is_pv_domain() { "PV" } else { "HVM/PVH" },
        tx,
        rx
    );
    Ok(domain)
}

/// A protocol error as a kernel error code, for `?` in kernel code: no
/// room on a ring as `EBUSY`, a bad grant as `EFAULT`, a page that cannot
/// hold a ring as `EINVAL`, anything else a peer got wrong as `EPROTO`.
/// Where the peer's mistake matters, log `as_str()` where it is found.
impl From<netif::Error> for kernel::error::Error {
    fn from(e: netif::Error) -> Self {
        use kernel::error::code::{EBUSY, EFAULT, EINVAL, EPROTO};
        use netif::Error as N;
        match e {
            N::RingFull | N::IdsExhausted | N::GrantStillMapped => EBUSY,
            N::GrantBad | N::GrantReadOnly | N::GrantOutOfPage => EFAULT,
            N::BadRingPage => EINVAL,
            _ => EPROTO,
        }
    }
}

/// A copy that cannot be planned: the packet does not fit the buffers
/// (`EMSGSIZE`) or a segment is malformed (`EINVAL`).
impl From<netif::PlanError> for kernel::error::Error {
    fn from(e: netif::PlanError) -> Self {
        use kernel::error::code::{EINVAL, EMSGSIZE};
        match e {
            netif::PlanError::TooManyOps | netif::PlanError::DestinationTooSmall => EMSGSIZE,
            netif::PlanError::SegmentCrossesPage => EINVAL,
        }
    }
}

/// Sleeps `ms` milliseconds (process context only).
pub(crate) fn sleep_ms(ms: u32) {
    kernel::time::delay::fsleep(kernel::time::Delta::from_millis(i64::from(ms)));
}

/// The monotonic clock in µs (rate limits, stall detection).
pub(crate) fn now_us() -> u64 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { bindings::xennet_shim_now_us() }
}

/// The monotonic clock in ns (netfront_opt's receive profile).
pub(crate) fn now_ns() -> u64 {
    // SAFETY: reads the monotonic clock; no preconditions.
    unsafe { bindings::xennet_shim_now_ns() }
}

/// CPUs online now.
pub(crate) fn num_online_cpus() -> usize {
    // SAFETY: returns a plain count.
    unsafe { bindings::xennet_shim_num_online_cpus() as usize }
}

/// True if a message may be logged now under the networking rate limit
/// (`net_ratelimit`): for events a peer can trigger at will.
pub(crate) fn net_ratelimit() -> bool {
    // SAFETY: `net_ratelimit` only updates a global rate-limit state.
    unsafe { bindings::net_ratelimit() != 0 }
}

/// `pr_warn!` under [`net_ratelimit`].
#[allow(unused_macros)]
macro_rules! warn_ratelimited {
    ($($arg:tt)*) => {
        if $crate::xen_sys::net_ratelimit() {
            kernel::pr_warn!($($arg)*);
        }
    };
}
#[allow(unused_imports)]
pub(crate) use warn_ratelimited;

/// `module!` for our drivers: the parameters given, plus the test-only
/// `hostile` parameter in the rig's fault-injection build (`--cfg
/// xennet_hostile`, see `Kbuild`), so each driver writes its module once.
macro_rules! xennet_module {
    (
        type: $t:ident,
        name: $name:tt,
        hostile_name: $hname:tt,
        description: $desc:tt,
        aliases: [$($alias:tt),* $(,)?],
        params: { $($params:tt)* } $(,)?
    ) => {
        // The aliases let udev load the module for its devices (the
        // hostile test builds have none: they are only ever insmod'ed).
        #[cfg(not(xennet_hostile))]
        ::kernel::prelude::module! {
            type: $t,
            name: $name,
            authors: ["xen-rust-net developers"],
            description: $desc,
            license: "GPL",
            alias: [$($alias),*],
            params: { $($params)* },
        }
        #[cfg(xennet_hostile)]
        ::kernel::prelude::module! {
            type: $t,
            name: $hname,
            authors: ["xen-rust-net developers"],
            description: $desc,
            license: "GPL",
            params: {
                $($params)*
                hostile: u32 {
                    default: 0,
                    description: "Test-only: the misbehaviour to inject (see hostile.rs)",
                },
            },
        }
    };
}
pub(crate) use xennet_module;

/// What kind of Xen domain this kernel runs in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum DomainKind {
    /// Not running on Xen.
    NotXen,
    /// The initial (control) domain, dom0.
    Dom0,
    /// Any other domain: a guest or a driver domain.
    DomU,
}

impl DomainKind {
    /// Reads the domain kind the kernel detected at boot.
    pub(crate) fn current() -> Self {
        // SAFETY: the shim functions only read boot-time globals (`xen_domain_type`,
        // `xen_start_flags`); they take no arguments and have no preconditions.
        let (xen, initial) = unsafe {
            (
                bindings::xennet_shim_xen_domain(),
                bindings::xennet_shim_xen_initial_domain(),
            )
        };
        match (xen, initial) {
            (false, _) => Self::NotXen,
            (true, true) => Self::Dom0,
            (true, false) => Self::DomU,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::NotXen => "not on Xen",
            Self::Dom0 => "dom0",
            Self::DomU => "domU",
        }
    }
}

/// True if this is a paravirtualised (PV) Xen domain.
pub(crate) fn is_pv_domain() -> bool {
    // SAFETY: reads a boot-time global; no arguments, no preconditions.
    unsafe { bindings::xennet_shim_xen_pv_domain() }
}

/// The Xen page size (grant and ring granularity), 4096 on x86.
pub(crate) fn xen_page_size() -> usize {
    // SAFETY: returns a compile-time constant of the kernel build.
    unsafe { bindings::xennet_shim_xen_page_size() as usize }
}

/// Entries in a shared ring whose entries start `entries_offset` bytes into
/// the page: the largest power of two that fits, as `__RING_SIZE` in Xen's
/// `io/ring.h`.
pub(crate) fn ring_entries(page_size: usize, entries_offset: usize, entry_size: usize) -> usize {
    let fit = (page_size - entries_offset) / entry_size;
    if fit == 0 {
        0
    } else {
        1 << fit.ilog2()
    }
}

/// Ring sizes of the netif TX and RX rings, computed from the kernel's
/// `xen/interface/io/netif.h` layout as bindgen sees it.
pub(crate) fn netif_ring_sizes() -> (usize, usize) {
    use bindings::{
        xen_netif_rx_sring, xen_netif_rx_sring_entry, xen_netif_tx_sring,
        xen_netif_tx_sring_entry,
    };
    use core::mem::{offset_of, size_of};
    let page = xen_page_size();
    let tx = ring_entries(
        page,
        offset_of!(xen_netif_tx_sring, ring),
        size_of::<xen_netif_tx_sring_entry>(),
    );
    let rx = ring_entries(
        page,
        offset_of!(xen_netif_rx_sring, ring),
        size_of::<xen_netif_rx_sring_entry>(),
    );
    (tx, rx)
}

/// A heap-allocated, zero-filled `T` with one reference (for large tables
/// that must not pass through the stack on their way to the heap).
pub(crate) fn new_zeroed_arc<T: zerocopy::FromZeros>() -> kernel::error::Result<kernel::sync::UniqueArc<T>> {
    // SAFETY: the closure fully initialises the slot: `T: FromZeros` makes
    // all-zero bytes a valid `T`.
    let zeroed = unsafe {
        pin_init::init_from_closure(|slot: *mut T| {
            core::ptr::write_bytes(slot, 0, 1);
            Ok::<(), core::convert::Infallible>(())
        })
    };
    let arc = kernel::sync::UniqueArc::<T>::new_uninit(kernel::alloc::flags::GFP_KERNEL)?;
    match arc.init_with(zeroed) {
        Ok(a) => Ok(a),
        Err(never) => match never {},
    }
}

/// A heap-allocated, zero-filled `T` in a box (as [`new_zeroed_arc`]).
pub(crate) fn new_zeroed_box<T: zerocopy::FromZeros>() -> kernel::error::Result<kernel::alloc::KBox<T>> {
    let mut b = kernel::alloc::KBox::<T>::new_uninit(kernel::alloc::flags::GFP_KERNEL)?;
    // SAFETY: zero-fills the whole allocation; `T: FromZeros` makes all-zero
    // bytes a valid `T`, so it is then initialised.
    unsafe {
        core::ptr::write_bytes(b.as_mut_ptr(), 0, 1);
        Ok(b.assume_init())
    }
}
