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

/// A queue's enable bit, as [`disable_and_wait`] drives it.
pub trait QueueEnable {
    /// Clears the queue's enable bit (the NIC finishes the frame in flight,
    /// then stops).
    fn clear_enable(&mut self);
    /// Whether the NIC still reports the queue enabled (a register read).
    fn reads_enabled(&mut self) -> bool;
    /// Waits 10 us without sleeping (the caller may hold a spinlock).
    fn wait_10us(&mut self);
}

/// Whether a disabled queue reported itself stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Stopped: no DMA into its buffers from now on.
    Stopped,
    /// Still enabled after [`DISABLE_POLLS`] polls: the caller must stop
    /// the function's DMA some other way (bus mastering) before any
    /// buffer's page is given back.
    Stuck,
}

/// Polls of the enable bit after a queue is disabled, 10 us apart: 1 ms,
/// ten times the 100 us a frame in flight may take on an 82599 (ixgbevf's
/// bound; igbvf sleeps 10 ms instead, which a caller holding a spinlock
/// cannot).
pub const DISABLE_POLLS: u32 = 100;

/// Disables a queue and waits until the NIC reports it stopped. A frame
/// the NIC was writing lands before this returns [`Stop::Stopped`], and
/// none after; only then may the queue's buffers be reclaimed.
pub fn disable_and_wait(q: &mut impl QueueEnable) -> Stop {
    q.clear_enable();
    for _ in 0..DISABLE_POLLS {
        if !q.reads_enabled() {
            return Stop::Stopped;
        }
        q.wait_10us();
    }
    Stop::Stuck
}
