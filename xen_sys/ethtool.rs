// SPDX-License-Identifier: GPL-2.0

//! The ethtool operations of both modules: `ethtool -S` (per-queue counters
//! named `<name with {} = queue number>`, in the layout the ethtool core
//! expects), `ethtool -l` (the queues in use and the most the device was
//! made with: the frontend picks the count when it connects, so neither
//! side can change it with `ethtool -L`) and `ethtool -g` (the netif rings'
//! fixed sizes), and the same per-queue counters as the netdev netlink
//! family's queue statistics (qstats, [`stat_ops`]). A driver describes its counters with [`PerQueueStats`];
//! its net device [`Registration`](super::netdev::Registration) installs
//! [`ops`].

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

    /// Requests in the receive and transmit rings (one page each).
    const RING_ENTRIES: (u32, u32);
}

/// The ethtool operations of a driver whose devices are `T`.
pub(crate) const fn ops<T: NetDriver>() -> b::ethtool_ops {
    // SAFETY: all-zero is a valid `ethtool_ops` (every callback `None`).
    let mut ops: b::ethtool_ops = unsafe { core::mem::zeroed() };
    ops.get_link = Some(b::ethtool_op_get_link);
    ops.get_sset_count = Some(get_sset_count::<T>);
    ops.get_strings = Some(get_strings::<T>);
    ops.get_ethtool_stats = Some(get_ethtool_stats::<T>);
    ops.get_channels = Some(get_channels);
    ops.get_ringparam = Some(get_ringparam::<T>);
    ops
}

/// `get_channels`: one combined channel per queue; the queues in use are
/// the device's real queue count, set at each connection.
///
/// # Safety
///
/// `netdev` must be a live net device; `ch` valid for writes.
unsafe extern "C" fn get_channels(netdev: *mut b::net_device, ch: *mut b::ethtool_channels) {
    // SAFETY: the stack calls us with a live device (its queue counts are
    // written under the RTNL lock, which the ethtool core holds) and its
    // own `ethtool_channels`.
    unsafe {
        (*ch).max_combined = b::xennet_shim_num_queues(netdev);
        (*ch).combined_count = b::xennet_shim_real_num_queues(netdev);
    }
}

/// `get_ringparam`: the netif rings have a fixed size.
///
/// # Safety
///
/// `ring` valid for writes.
unsafe extern "C" fn get_ringparam<T: NetDriver>(
    _netdev: *mut b::net_device,
    ring: *mut b::ethtool_ringparam,
    _kring: *mut b::kernel_ethtool_ringparam,
    _extack: *mut b::netlink_ext_ack,
) {
    let (rx, tx) = T::RING_ENTRIES;
    // SAFETY: the ethtool core passes its own zeroed `ethtool_ringparam`.
    unsafe {
        (*ring).rx_max_pending = rx;
        (*ring).rx_pending = rx;
        (*ring).tx_max_pending = tx;
        (*ring).tx_pending = tx;
    }
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

/// The netdev family's queue statistics (`netdev qstats-get`): each
/// queue's packets and bytes; the base holds the queues not in use now
/// (a connection with fewer queues than the last), so the totals equal
/// `ndo_get_stats64`'s, which adds up every queue.
pub(crate) const fn stat_ops<T: NetDriver>() -> b::netdev_stat_ops {
    b::netdev_stat_ops {
        get_queue_stats_rx: Some(get_queue_stats_rx::<T>),
        get_queue_stats_tx: Some(get_queue_stats_tx::<T>),
        get_base_stats: Some(get_base_stats::<T>),
    }
}

/// `T`'s queue `idx`'s counters, if it has that queue.
///
/// # Safety
///
/// `netdev` must be a live net device of `T`'s driver.
unsafe fn queue_stats_of<T: NetDriver>(netdev: *mut b::net_device, idx: c_int) -> Option<Stats> {
    // SAFETY: the caller's contract.
    let dev = unsafe { driver_of::<T>(netdev) };
    let q = usize::try_from(idx).ok().filter(|&q| q < dev.nr_queues())?;
    Some(dev.queue_stats(q))
}

/// # Safety
///
/// Called by the netdev family with a live device of `T`'s driver and its
/// own statistics structure.
unsafe extern "C" fn get_queue_stats_rx<T: NetDriver>(
    netdev: *mut b::net_device,
    idx: c_int,
    rx: *mut b::netdev_queue_stats_rx,
) {
    // SAFETY: the caller's contract.
    if let Some(s) = unsafe { queue_stats_of::<T>(netdev, idx) } {
        // SAFETY: `rx` is the caller's, valid for writes.
        unsafe {
            (*rx).packets = s.rx_packets;
            (*rx).bytes = s.rx_bytes;
        }
    }
}

/// # Safety
///
/// As [`get_queue_stats_rx`].
unsafe extern "C" fn get_queue_stats_tx<T: NetDriver>(
    netdev: *mut b::net_device,
    idx: c_int,
    tx: *mut b::netdev_queue_stats_tx,
) {
    // SAFETY: the caller's contract.
    if let Some(s) = unsafe { queue_stats_of::<T>(netdev, idx) } {
        // SAFETY: `tx` is the caller's, valid for writes.
        unsafe {
            (*tx).packets = s.tx_packets;
            (*tx).bytes = s.tx_bytes;
        }
    }
}

/// # Safety
///
/// As [`get_queue_stats_rx`].
unsafe extern "C" fn get_base_stats<T: NetDriver>(
    netdev: *mut b::net_device,
    rx: *mut b::netdev_queue_stats_rx,
    tx: *mut b::netdev_queue_stats_tx,
) {
    // SAFETY: the caller's contract.
    let (dev, in_use) = unsafe { (driver_of::<T>(netdev), b::xennet_shim_real_num_queues(netdev) as usize) };
    let mut sum = Stats::default();
    for q in in_use..dev.nr_queues() {
        let s = dev.queue_stats(q);
        sum.rx_packets += s.rx_packets;
        sum.rx_bytes += s.rx_bytes;
        sum.tx_packets += s.tx_packets;
        sum.tx_bytes += s.tx_bytes;
    }
    // SAFETY: `rx` and `tx` are the caller's, valid for writes.
    unsafe {
        (*rx).packets = sum.rx_packets;
        (*rx).bytes = sum.rx_bytes;
        (*tx).packets = sum.tx_packets;
        (*tx).bytes = sum.tx_bytes;
    }
}
