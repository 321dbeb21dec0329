// SPDX-License-Identifier: GPL-2.0

//! Per-queue net device bookkeeping shared by both modules: the counters
//! behind `ndo_get_stats64` and `ethtool -S`, and the batch of skbs built
//! under a queue lock and handed to the stack after it is released.

use super::bindings as b;

/// Counters of one queue. `rx`/`tx` are from this net device's side (for
/// the backend's vif, `rx` is what the guest sent). `copy_ops` and
/// `notifies` are counted by the backend only.
#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) rx_errors: u64,
    pub(crate) rx_dropped: u64,
    pub(crate) tx_packets: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) tx_errors: u64,
    pub(crate) tx_dropped: u64,
    /// Grant-copy operations issued (both directions).
    pub(crate) copy_ops: u64,
    /// Notifications sent to the peer.
    pub(crate) notifies: u64,
    /// Multicast frames for groups the guest did not join (backend).
    pub(crate) mcast_filtered: u64,
    /// Received packets carrying the backend's hash (frontend).
    pub(crate) rx_hashed: u64,
    /// Of those, arrived on another queue than our RSS table names.
    pub(crate) rx_misrouted: u64,
}

impl Stats {
    /// Adds another queue's counters.
    pub(crate) fn add(&mut self, o: &Stats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_errors += o.rx_errors;
        self.rx_dropped += o.rx_dropped;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.tx_dropped += o.tx_dropped;
        self.copy_ops += o.copy_ops;
        self.notifies += o.notifies;
        self.mcast_filtered += o.mcast_filtered;
        self.rx_hashed += o.rx_hashed;
        self.rx_misrouted += o.rx_misrouted;
    }

    /// Sums `queues` and writes the device totals `ndo_get_stats64` reports.
    pub(crate) fn fill_link_stats(queues: impl Iterator<Item = Stats>, out: &mut b::rtnl_link_stats64) {
        let mut s = Stats::default();
        for q in queues {
            s.add(&q);
        }
        out.rx_packets = s.rx_packets;
        out.rx_bytes = s.rx_bytes;
        out.rx_errors = s.rx_errors;
        out.rx_dropped = s.rx_dropped;
        out.tx_packets = s.tx_packets;
        out.tx_bytes = s.tx_bytes;
        out.tx_errors = s.tx_errors;
        out.tx_dropped = s.tx_dropped;
    }
}

/// Skbs built under a queue lock, handed to the stack after it is released
/// (the stack may transmit in reply, which takes the lock).
pub(crate) struct SkbBatch {
    skbs: [*mut b::sk_buff; SkbBatch::MAX],
    len: usize,
}

impl SkbBatch {
    pub(crate) const MAX: usize = 64;

    pub(crate) fn new() -> Self {
        Self {
            skbs: [core::ptr::null_mut(); Self::MAX],
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == Self::MAX
    }

    pub(crate) fn skbs(&self) -> &[*mut b::sk_buff] {
        &self.skbs[..self.len]
    }

    /// Adds an skb; the caller checks `is_full` first.
    pub(crate) fn push(&mut self, skb: *mut b::sk_buff) {
        self.skbs[self.len] = skb;
        self.len += 1;
    }
}
