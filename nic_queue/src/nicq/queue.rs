//! The interface netback_mq drives a NIC receive queue through: post a
//! buffer, kick, reap completed frames, stop and reclaim, restart, count.
//! One implementation per NIC family (the igb VF in the kernel, a
//! simulated pool on the host); the guest-facing logic sits above it.
//!
//! Porting to another family (82599/X540 VFs: `ixgbevf`) means a
//! [`super::DescFormat`] for its descriptors and an implementation of
//! this trait over its registers: ring base and length, tail, queue
//! enable, and its interrupt and mailbox layout below it.

use super::ring::{Frame, RingError, RingStats};

/// A NIC receive queue whose buffers the driver supplies.
pub trait RxQueue {
    /// What the driver attaches to each buffer, handed back with it.
    type Token: Copy;

    /// Buffers that can still be posted.
    fn room(&self) -> usize;

    /// Posts a buffer at bus address `dma` (inside one 4 KB page). The NIC
    /// sees it at the next [`RxQueue::kick`].
    fn post(&mut self, dma: u64, token: Self::Token) -> Result<(), RingError>;

    /// Tells the NIC about what was posted since the last kick (one
    /// register write per batch).
    fn kick(&mut self);

    /// Hands up to `budget` completed frames to `f`, in order.
    fn reap(&mut self, budget: usize, f: &mut dyn FnMut(&Frame<Self::Token>)) -> usize;

    /// Stops the queue, so the NIC writes into none of its buffers any
    /// more, and hands every posted buffer to `f`, in order. Only after
    /// this may a buffer's page be unmapped or given back.
    fn stop_and_reclaim(&mut self, f: &mut dyn FnMut(Self::Token)) -> usize;

    /// Starts a stopped queue again, empty.
    fn restart(&mut self);

    /// Counters.
    fn stats(&self) -> RingStats;
}
