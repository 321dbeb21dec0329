// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S`: per-queue counters (rx: from the guest, tx: to it), with
//! the grant-copy operations and notifications each queue issued.

use crate::vif::Vif;
use crate::xen_sys::ethtool::{Field, PerQueueStats};
use crate::xen_sys::netdev::Stats;
use crate::xen_sys::sync::LockBh;

impl PerQueueStats for Vif {
    const FIELDS: &'static [Field] = &[
        ("rx_queue_{}_packets", |s| s.rx_packets),
        ("rx_queue_{}_bytes", |s| s.rx_bytes),
        ("rx_queue_{}_errors", |s| s.rx_errors),
        ("rx_queue_{}_dropped", |s| s.rx_dropped),
        ("tx_queue_{}_packets", |s| s.tx_packets),
        ("tx_queue_{}_bytes", |s| s.tx_bytes),
        ("tx_queue_{}_errors", |s| s.tx_errors),
        ("tx_queue_{}_dropped", |s| s.tx_dropped),
        ("tx_queue_{}_held", |s| s.tx_held),
        ("queue_{}_grant_copy_ops", |s| s.copy_ops),
        ("queue_{}_grant_copy_calls", |s| s.copy_calls),
        ("queue_{}_grant_copy_bytes", |s| s.copy_bytes),
        ("queue_{}_notifications", |s| s.notifies),
        ("tx_queue_{}_mcast_filtered", |s| s.mcast_filtered),
    ];

    fn nr_queues(&self) -> usize {
        self.queues.len()
    }

    fn queue_stats(&self, q: usize) -> Stats {
        self.queues[q].state.lock_bh().stats
    }
}
