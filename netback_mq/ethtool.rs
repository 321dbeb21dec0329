// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S`: per-queue counters (rx: from the guest, tx: to it), with
//! the grant-copy operations and notifications each queue issued.

use core::ffi::c_int;
use kernel::prelude::*;

use crate::vif::Vif;
use crate::queue::Stats;
use crate::xen_sys::bindings as b;
use crate::xen_sys::ethtool::{write_strings, write_values, ETH_SS_STATS};

/// Reads one counter.
type Getter = fn(&Stats) -> u64;

/// The per-queue counters, in output order.
const FIELDS: [(&str, Getter); 10] = [
    ("rx_queue_{}_packets", |s| s.rx_packets),
    ("rx_queue_{}_bytes", |s| s.rx_bytes),
    ("rx_queue_{}_errors", |s| s.rx_errors),
    ("rx_queue_{}_dropped", |s| s.rx_dropped),
    ("tx_queue_{}_packets", |s| s.tx_packets),
    ("tx_queue_{}_bytes", |s| s.tx_bytes),
    ("tx_queue_{}_errors", |s| s.tx_errors),
    ("tx_queue_{}_dropped", |s| s.tx_dropped),
    ("queue_{}_grant_copy_ops", |s| s.copy_ops),
    ("queue_{}_notifications", |s| s.notifies),
];

pub(crate) static ETHTOOL_OPS: b::ethtool_ops = {
    // SAFETY: all-zero is a valid `ethtool_ops` (every callback `None`).
    let mut ops: b::ethtool_ops = unsafe { core::mem::zeroed() };
    ops.get_link = Some(b::ethtool_op_get_link);
    ops.get_sset_count = Some(get_sset_count);
    ops.get_strings = Some(get_strings);
    ops.get_ethtool_stats = Some(get_ethtool_stats);
    ops
};

/// `get_sset_count`.
///
/// # Safety
///
/// `netdev` must be a live net device created by `Vif::create`.
unsafe extern "C" fn get_sset_count(netdev: *mut b::net_device, sset: c_int) -> c_int {
    if sset != ETH_SS_STATS {
        return EOPNOTSUPP.to_errno();
    }
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    (vif.queues.len() * FIELDS.len()) as c_int
}

/// `get_strings`.
///
/// # Safety
///
/// `netdev` as above; `data` has room for `get_sset_count` strings.
unsafe extern "C" fn get_strings(netdev: *mut b::net_device, sset: u32, data: *mut u8) {
    if sset != ETH_SS_STATS as u32 {
        return;
    }
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    let names = FIELDS.map(|(n, _)| n);
    // SAFETY: `data` was sized by `get_sset_count` for these queues and fields.
    unsafe { write_strings(data, vif.queues.len(), &names) };
}

/// `get_ethtool_stats`.
///
/// # Safety
///
/// `netdev` as above; `data` has room for `get_sset_count` values.
unsafe extern "C" fn get_ethtool_stats(netdev: *mut b::net_device, _stats: *mut b::ethtool_stats, data: *mut u64) {
    // SAFETY: the stack calls us with our live net device.
    let vif = unsafe { Vif::from_netdev(netdev) };
    // SAFETY: `data` was sized by `get_sset_count` for these queues and fields.
    unsafe {
        write_values(data, vif.queues.len(), FIELDS.len(), |q, out| {
            let s = vif.queues[q].state.lock().stats;
            for (o, (_, get)) in out.iter_mut().zip(FIELDS) {
                *o = get(&s);
            }
        })
    };
}
