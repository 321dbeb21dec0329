// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S` for both modules: per-queue counters named
//! `<name with {} = queue number>`, in the layout the ethtool core expects.
//! A driver describes its counters with [`PerQueueStats`]; its net device
//! [`Registration`](super::netdev::Registration) installs [`ops`].

use core::ffi::c_int;
use kernel::prelude::*;
use kernel::str::CString;

use super::bindings as b;
use super::netdev::{driver_of, NetDriver, Stats};

/// `ETH_SS_STATS` and `ETH_GSTRING_LEN` from the ethtool UAPI.
const ETH_SS_STATS: c_int = 1;
const ETH_GSTRING_LEN: usize = 32;

/// One counter: its name (`{}` becomes the queue number) and its getter.
pub(crate) type Field = (&'static str, fn(&Stats) -> u64);

/// A net device with per-queue [`Stats`].
pub(crate) trait PerQueueStats: 'static {
    /// The counters, in output order.
    const FIELDS: &'static [Field];

    /// Queues to report.
    fn nr_queues(&self) -> usize;

    /// Counters of queue `q` (< `nr_queues`).
    fn queue_stats(&self, q: usize) -> Stats;
}

/// The ethtool operations of a driver whose devices are `T`.
pub(crate) const fn ops<T: NetDriver>() -> b::ethtool_ops {
    // SAFETY: all-zero is a valid `ethtool_ops` (every callback `None`).
    let mut ops: b::ethtool_ops = unsafe { core::mem::zeroed() };
    ops.get_link = Some(b::ethtool_op_get_link);
    ops.get_sset_count = Some(get_sset_count::<T>);
    ops.get_strings = Some(get_strings::<T>);
    ops.get_ethtool_stats = Some(get_ethtool_stats::<T>);
    ops
}

/// `get_sset_count`.
///
/// # Safety
///
/// `netdev` must be a live net device of `T`'s driver.
unsafe extern "C" fn get_sset_count<T: NetDriver>(netdev: *mut b::net_device, sset: c_int) -> c_int {
    if sset != ETH_SS_STATS {
        return EOPNOTSUPP.to_errno();
    }
    // SAFETY: the stack calls us with our live net device.
    let dev = unsafe { driver_of::<T>(netdev) };
    (dev.nr_queues() * T::FIELDS.len()) as c_int
}

/// `get_strings`.
///
/// # Safety
///
/// `netdev` as above; `data` has room for `get_sset_count` strings.
unsafe extern "C" fn get_strings<T: NetDriver>(netdev: *mut b::net_device, sset: u32, data: *mut u8) {
    if sset != ETH_SS_STATS as u32 {
        return;
    }
    // SAFETY: the stack calls us with our live net device.
    let dev = unsafe { driver_of::<T>(netdev) };
    let mut slot = 0;
    for q in 0..dev.nr_queues() {
        for (pattern, _) in T::FIELDS {
            let (pre, post) = pattern.split_once("{}").unwrap_or((pattern, ""));
            let name = CString::try_from_fmt(fmt!("{}{}{}", pre, q, post));
            // SAFETY: `slot` stays below the count `get_sset_count` sized
            // `data` for.
            let dst = unsafe { core::slice::from_raw_parts_mut(data.add(slot * ETH_GSTRING_LEN), ETH_GSTRING_LEN) };
            dst.fill(0);
            if let Ok(name) = name {
                let bytes = name.to_bytes();
                let n = bytes.len().min(ETH_GSTRING_LEN - 1);
                dst[..n].copy_from_slice(&bytes[..n]);
            }
            slot += 1;
        }
    }
}

/// `get_ethtool_stats`.
///
/// # Safety
///
/// `netdev` as above; `data` has room for `get_sset_count` values.
unsafe extern "C" fn get_ethtool_stats<T: NetDriver>(
    netdev: *mut b::net_device,
    _stats: *mut b::ethtool_stats,
    data: *mut u64,
) {
    // SAFETY: the stack calls us with our live net device.
    let dev = unsafe { driver_of::<T>(netdev) };
    let mut slot = 0;
    for q in 0..dev.nr_queues() {
        let s = dev.queue_stats(q);
        for (_, get) in T::FIELDS {
            // SAFETY: `slot` stays below the count `get_sset_count` sized
            // `data` for.
            unsafe { data.add(slot).write(get(&s)) };
            slot += 1;
        }
    }
}
