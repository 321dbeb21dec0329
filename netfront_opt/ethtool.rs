// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S`: per-queue counters.

use crate::device::Frontend;
use crate::netif::{RX_RING_SIZE, TX_RING_SIZE};
use crate::xen_sys::ethtool::{Field, PerQueueStats};
use crate::xen_sys::netdev::Stats;

impl PerQueueStats for Frontend {
    const FIELDS: &'static [Field] = &[
        ("rx_queue_{}_packets", |s| s.rx_packets),
        ("rx_queue_{}_bytes", |s| s.rx_bytes),
        ("rx_queue_{}_errors", |s| s.rx_errors),
        ("rx_queue_{}_dropped", |s| s.rx_dropped),
        ("tx_queue_{}_packets", |s| s.tx_packets),
        ("tx_queue_{}_bytes", |s| s.tx_bytes),
        ("tx_queue_{}_errors", |s| s.tx_errors),
        ("tx_queue_{}_dropped", |s| s.tx_dropped),
        ("rx_queue_{}_hashed", |s| s.rx_hashed),
        ("rx_queue_{}_misrouted", |s| s.rx_misrouted),
        ("queue_{}_static_grants", |s| s.static_mapped),
        ("rx_queue_{}_xdp_pass", |s| s.xdp_pass),
        ("rx_queue_{}_xdp_drop", |s| s.xdp_drop),
        ("rx_queue_{}_xdp_tx", |s| s.xdp_tx),
        ("rx_queue_{}_xdp_redirect", |s| s.xdp_redirect),
        ("rx_queue_{}_xdp_aborted", |s| s.xdp_aborted),
        ("rx_queue_{}_xdp_oversize", |s| s.xdp_oversize),
        ("tx_queue_{}_xdp_xmit", |s| s.xdp_xmit),
        ("tx_queue_{}_lent", |s| s.tx_lent),
        ("tx_queue_{}_lent_pieces", |s| s.tx_lent_pieces),
        ("queue_{}_prof_polls", |s| s.prof_polls),
        ("queue_{}_prof_reap_ns", |s| s.prof_reap_ns),
        ("rx_queue_{}_prof_pass_ns", |s| s.prof_rx_ns),
        ("rx_queue_{}_prof_alloc_ns", |s| s.prof_alloc_ns),
        ("rx_queue_{}_prof_copy_ns", |s| s.prof_copy_ns),
        ("rx_queue_{}_prof_finish_ns", |s| s.prof_finish_ns),
        ("rx_queue_{}_prof_deliver_ns", |s| s.prof_deliver_ns),
        ("tx_queue_{}_prof_xmit_ns", |s| s.prof_xmit_ns),
    ];

    const RING_ENTRIES: (u32, u32) = (RX_RING_SIZE, TX_RING_SIZE);

    fn nr_queues(&self) -> usize {
        Frontend::nr_queues(self)
    }

    fn queue_stats(&self, q: usize) -> Stats {
        Frontend::queue_stats(self, q)
    }
}
