// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S`: per-queue counters (rx: from the guest, tx: to it), with
//! the grant-copy operations and notifications each queue issued, and its
//! static grants (grant reuse): held, lookups, bytes copied through them,
//! map and unmap operations (for the current connection, with those of
//! the NIC path's per-buffer mappings), and the NIC path's frames.

use crate::vif::Vif;
use crate::netif::{RX_RING_SIZE, TX_RING_SIZE};
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
        ("queue_{}_static_grants", |s| s.static_mapped),
        ("queue_{}_static_hits", |s| s.static_hits),
        ("queue_{}_static_misses", |s| s.static_misses),
        ("queue_{}_static_copy_bytes", |s| s.static_bytes),
        ("queue_{}_gref_map_ops", |s| s.gref_map_ops),
        ("queue_{}_gref_unmap_ops", |s| s.gref_unmap_ops),
        ("queue_{}_static_del_in_use", |s| s.static_del_in_use),
        ("queue_{}_static_map_calls", |s| s.static_map_calls),
        ("queue_{}_static_unmap_calls", |s| s.static_unmap_calls),
        ("queue_{}_static_add_refused", |s| s.static_add_refused),
        ("tx_queue_{}_mcast_filtered", |s| s.mcast_filtered),
        ("queue_{}_nic_frames", |s| s.nic_frames),
        ("queue_{}_nic_bytes", |s| s.nic_bytes),
        ("queue_{}_nic_dropped", |s| s.nic_dropped),
        ("queue_{}_nic_posted", |s| s.nic_posted),
        ("queue_{}_nic_dma_bounces", |s| s.nic_bounces),
        ("queue_{}_nic_dma_maps", |s| s.nic_dma_maps),
        ("queue_{}_nic_redirected", |s| s.nic_redirected),
        ("queue_{}_nic_unsteered", |s| s.nic_unsteered),
        ("queue_{}_nic_group_dups", |s| s.nic_group_dups),
    ];

    // The vif receives what the guest sends (its TX ring) and sends into
    // the guest's receive buffers (its RX ring).
    const RING_ENTRIES: (u32, u32) = (TX_RING_SIZE, RX_RING_SIZE);

    fn nr_queues(&self) -> usize {
        self.queues.len()
    }

    fn queue_stats(&self, q: usize) -> Stats {
        let s = self.queues[q].state.lock_bh();
        let mut stats = s.stats;
        if let Some(st) = s.conn.as_ref().and_then(|c| c.statics.as_deref()) {
            let r = st.stats();
            stats.static_mapped = st.mapped() as u64;
            stats.static_hits = r.hits;
            stats.static_misses = r.misses;
            stats.gref_map_ops = r.map_ops;
            stats.gref_unmap_ops = r.unmap_ops;
            stats.static_del_in_use = r.del_in_use;
            stats.static_map_calls = r.map_calls;
            stats.static_unmap_calls = r.unmap_calls;
            stats.static_add_refused = r.add_refused;
        }
        if let Some(c) = s.conn.as_ref() {
            let (m, u) = c.nic_map_ops();
            stats.gref_map_ops += m;
            stats.gref_unmap_ops += u;
        }
        stats
    }
}
