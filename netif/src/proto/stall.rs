//! Guest-receive stall tracking (backend).
//!
//! A guest that stops posting receive buffers stalls its queue: the backend
//! takes the carrier down while any queue is stalled (so the stack stops
//! queueing packets it cannot deliver) and brings it back once none is.
//!
//! [`RxStallClock`] (one per queue, under the queue's lock) turns "guest
//! receive found too few / enough buffers" into [`StallChange`]s;
//! [`StalledQueues`] (one per vif, shared by queues running concurrently)
//! turns those into [`CarrierChange`]s. It holds the stalled queues as a
//! bit set rather than a count: marking a stalled queue stalled again, or
//! a ready queue ready, changes nothing, so a change that went missing (a
//! stall recorded without being counted, then its recovery) cannot make it
//! underflow and stop following stalls.

use core::sync::atomic::{AtomicU32, Ordering};

/// A queue's guest-receive stall state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallChange {
    /// The guest posted no buffers for the stall timeout.
    Stalled,
    /// A stalled guest posted buffers again.
    Recovered,
}

/// What to do with the vif's carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierChange {
    /// The first queue stalled: carrier off.
    Off,
    /// The last stalled queue recovered (or went away): carrier on.
    On,
}

/// One queue's stall clock: since when guest receive has found too few
/// buffers, and whether that lasted long enough to count as a stall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxStallClock {
    short_since: Option<u64>,
    stalled: bool,
}

impl RxStallClock {
    /// Not short, not stalled.
    pub const fn new() -> Self {
        Self {
            short_since: None,
            stalled: false,
        }
    }

    /// Guest receive found too few buffers at `now_us`. Starts the clock if
    /// it is not running; [`StallChange::Stalled`] once it has run for
    /// `timeout_us` (reported once per stall).
    #[must_use]
    pub fn short(&mut self, now_us: u64, timeout_us: u64) -> Option<StallChange> {
        let since = *self.short_since.get_or_insert(now_us);
        if !self.stalled && now_us.saturating_sub(since) >= timeout_us {
            self.stalled = true;
            return Some(StallChange::Stalled);
        }
        None
    }

    /// Guest receive found enough buffers: stops the clock;
    /// [`StallChange::Recovered`] if the queue was stalled.
    #[must_use]
    pub fn ready(&mut self) -> Option<StallChange> {
        self.short_since = None;
        core::mem::replace(&mut self.stalled, false).then_some(StallChange::Recovered)
    }

    /// True between a [`StallChange::Stalled`] and the next
    /// [`StallChange::Recovered`].
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Since when (µs) guest receive has found too few buffers, if it has.
    pub fn short_since(&self) -> Option<u64> {
        self.short_since
    }

    /// How long (µs) from `now_us` until [`RxStallClock::short`] would
    /// report a stall (0: due now); `None` if the clock is not running or
    /// the queue is already stalled. For arming a timer.
    pub fn due_in_us(&self, now_us: u64, timeout_us: u64) -> Option<u64> {
        match self.short_since {
            Some(since) if !self.stalled => {
                Some(timeout_us.saturating_sub(now_us.saturating_sub(since)))
            }
            _ => None,
        }
    }
}

/// The stalled queues of one vif, as a bit set (queue indices below
/// [`StalledQueues::MAX_QUEUES`]; others are not tracked and change
/// nothing).
///
/// Each update is one atomic read-modify-write, and a [`CarrierChange`]
/// comes back only for the update that took the set from empty to
/// non-empty ([`CarrierChange::Off`]) or back ([`CarrierChange::On`]).
/// Those alternate in the order of the updates, but two queues on two CPUs
/// may apply theirs to the carrier in the other order (queue A's `On`
/// computed first, applied after queue B's `Off`). So after applying a
/// change, check it still holds with [`StalledQueues::recheck`] and apply
/// what that returns, until `None`; [`StalledQueues::drive`] does that.
/// The last carrier update then always agrees with the final set.
#[derive(Debug, Default)]
pub struct StalledQueues(AtomicU32);

impl StalledQueues {
    /// Queues tracked (bits of the set).
    pub const MAX_QUEUES: usize = 32;

    /// No queue stalled.
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Records `change` for `queue`.
    #[must_use]
    pub fn apply(&self, queue: usize, change: StallChange) -> Option<CarrierChange> {
        self.set(queue, change == StallChange::Stalled)
    }

    /// Marks `queue` stalled or not (idempotent).
    #[must_use]
    pub fn set(&self, queue: usize, stalled: bool) -> Option<CarrierChange> {
        let bit = Self::bit(queue)?;
        if stalled {
            let old = self.0.fetch_or(bit, Ordering::SeqCst);
            (old == 0).then_some(CarrierChange::Off)
        } else {
            let old = self.0.fetch_and(!bit, Ordering::SeqCst);
            (old == bit).then_some(CarrierChange::On)
        }
    }

    /// Forgets `queue` (disconnected, possibly while stalled).
    #[must_use]
    pub fn clear(&self, queue: usize) -> Option<CarrierChange> {
        self.set(queue, false)
    }

    /// After applying `applied` to the carrier: the change to apply now if
    /// another queue's update crossed it, else `None`.
    #[must_use]
    pub fn recheck(&self, applied: CarrierChange) -> Option<CarrierChange> {
        let want = if self.any() {
            CarrierChange::Off
        } else {
            CarrierChange::On
        };
        (want != applied).then_some(want)
    }

    /// Applies `change` (from [`StalledQueues::apply`], `set` or `clear`)
    /// with `carrier`, then whatever [`StalledQueues::recheck`] asks for.
    /// Loops only while other queues keep crossing it.
    pub fn drive(&self, change: Option<CarrierChange>, mut carrier: impl FnMut(CarrierChange)) {
        let mut change = change;
        while let Some(c) = change {
            carrier(c);
            change = self.recheck(c);
        }
    }

    /// True if any queue is stalled (the carrier should be off).
    pub fn any(&self) -> bool {
        self.0.load(Ordering::SeqCst) != 0
    }

    /// True if `queue` is marked stalled.
    pub fn is_stalled(&self, queue: usize) -> bool {
        Self::bit(queue).is_some_and(|b| self.0.load(Ordering::SeqCst) & b != 0)
    }

    /// The set, bit `q` for queue `q`.
    pub fn mask(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }

    fn bit(queue: usize) -> Option<u32> {
        u32::try_from(queue).ok().and_then(|q| 1u32.checked_shl(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;
    use proptest::prelude::*;
    use std::vec::Vec;

    const T: u64 = 1_000;

    #[test]
    fn clock() {
        let mut c = RxStallClock::new();
        assert_eq!(c.ready(), None, "ready while ready");
        assert_eq!(c.due_in_us(5, T), None);
        assert_eq!(c.short(100, T), None, "starts the clock");
        assert_eq!(c.short_since(), Some(100));
        assert_eq!(c.due_in_us(600, T), Some(500));
        assert_eq!(c.short(1_099, T), None);
        assert_eq!(c.due_in_us(1_200, T), Some(0));
        assert_eq!(c.short(1_100, T), Some(StallChange::Stalled));
        assert!(c.is_stalled());
        assert_eq!(c.short(9_000, T), None, "reported once");
        assert_eq!(c.due_in_us(9_000, T), None);
        assert_eq!(c.ready(), Some(StallChange::Recovered));
        assert_eq!(c.ready(), None);
        assert!(!c.is_stalled());
        assert_eq!(c.short(10_000, T), None, "the clock restarts");
        assert_eq!(c.short(10_999, T), None);
        assert_eq!(c.short(11_000, T), Some(StallChange::Stalled));
        // A clock that went backwards is not a stall.
        let mut c = RxStallClock::new();
        assert_eq!(c.short(5_000, T), None);
        assert_eq!(c.short(10, T), None);
    }

    #[test]
    fn set_is_idempotent() {
        let s = StalledQueues::new();
        assert_eq!(s.clear(3), None);
        assert_eq!(s.apply(3, StallChange::Recovered), None);
        assert!(!s.any());
        assert_eq!(s.apply(3, StallChange::Stalled), Some(CarrierChange::Off));
        assert_eq!(s.apply(3, StallChange::Stalled), None);
        assert_eq!(s.apply(5, StallChange::Stalled), None);
        assert_eq!(s.mask(), 0b10_1000);
        assert!(s.is_stalled(5) && !s.is_stalled(4));
        assert_eq!(s.apply(3, StallChange::Recovered), None);
        assert_eq!(s.apply(3, StallChange::Recovered), None);
        assert_eq!(s.clear(5), Some(CarrierChange::On));
        assert_eq!(s.clear(5), None);
        assert!(!s.any());
        // Queues beyond the set change nothing.
        assert_eq!(s.apply(32, StallChange::Stalled), None);
        assert_eq!(s.apply(usize::MAX, StallChange::Stalled), None);
        assert!(!s.any() && !s.is_stalled(32));
        assert_eq!(s.apply(31, StallChange::Stalled), Some(CarrierChange::Off));
        assert_eq!(s.mask(), 1 << 31);
    }

    /// The sequence that broke the counter version: guest transmit started
    /// the clock and, when called again after the timeout, got the stall
    /// back and dropped it (`let _ =`); the later recovery decremented a
    /// count that was never incremented.
    #[test]
    fn lost_stall_then_recovery_keeps_the_carrier_consistent() {
        let s = StalledQueues::new();
        let carrier = Cell::new(true);
        let follow = |c: Option<CarrierChange>| {
            s.drive(c, |c| {
                assert_eq!(carrier.get(), c == CarrierChange::Off, "{c:?} twice");
                carrier.set(c == CarrierChange::On);
            })
        };
        let carrier_on = || carrier.get();
        let (mut q0, mut q1) = (RxStallClock::new(), RxStallClock::new());
        // Queue 1 stalls properly.
        assert_eq!(q1.short(0, T), None);
        follow(q1.short(T, T).and_then(|c| s.apply(1, c)));
        assert!(!carrier_on());
        // Queue 0's stall is recorded by its clock but never reported.
        let _ = q0.short(0, T);
        let lost = q0.short(2 * T, T);
        assert_eq!(lost, Some(StallChange::Stalled));
        // ... and it recovers: nothing to undo, queue 1 is still stalled.
        follow(q0.ready().and_then(|c| s.apply(0, c)));
        assert!(!carrier_on() && s.any());
        follow(q1.ready().and_then(|c| s.apply(1, c)));
        assert!(carrier_on() && !s.any());
        // Stalls are still followed afterwards.
        assert_eq!(q0.short(10 * T, T), None);
        follow(q0.short(11 * T, T).and_then(|c| s.apply(0, c)));
        assert!(!carrier_on());
        follow(q0.ready().and_then(|c| s.apply(0, c)));
        assert!(carrier_on());
        // A queue disconnected while stalled.
        assert_eq!(q1.short(20 * T, T), None);
        follow(q1.short(21 * T, T).and_then(|c| s.apply(1, c)));
        assert!(!carrier_on());
        follow(s.clear(1));
        assert!(carrier_on() && s.mask() == 0);
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        /// Too few buffers, `dt` µs after the previous event.
        Short(u64),
        /// Enough buffers.
        Ready,
        /// The queue disconnected (its clock goes with it).
        Clear,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (0..2 * T).prop_map(Event::Short),
            2 => Just(Event::Ready),
            1 => Just(Event::Clear),
        ]
    }

    proptest! {
        /// Any interleaving of events on 8 queues: the carrier (driven only
        /// by the returned changes, which must alternate) is off iff some
        /// queue's clock says stalled, and each clock agrees with a model.
        #[test]
        fn carrier_follows_the_clocks(
            events in proptest::collection::vec((0usize..8, event()), 0..400),
        ) {
            let s = StalledQueues::new();
            let mut clocks = [RxStallClock::new(); 8];
            // Model: per queue, since when short and whether stalled.
            let mut model: [(Option<u64>, bool); 8] = [(None, false); 8];
            let mut carrier_on = true;
            let mut now = 0u64;
            for (q, e) in events {
                let change = match e {
                    Event::Short(dt) => {
                        now += dt;
                        let c = clocks[q].short(now, T);
                        let (since, stalled) = &mut model[q];
                        let since = *since.get_or_insert(now);
                        let want = (!*stalled && now - since >= T).then_some(StallChange::Stalled);
                        *stalled |= want.is_some();
                        prop_assert_eq!(c, want);
                        c.and_then(|c| s.apply(q, c))
                    }
                    Event::Ready => {
                        let c = clocks[q].ready();
                        let want = model[q].1.then_some(StallChange::Recovered);
                        model[q] = (None, false);
                        prop_assert_eq!(c, want);
                        c.and_then(|c| s.apply(q, c))
                    }
                    Event::Clear => {
                        clocks[q] = RxStallClock::new();
                        model[q] = (None, false);
                        s.clear(q)
                    }
                };
                match change {
                    Some(CarrierChange::Off) => {
                        prop_assert!(carrier_on, "off while off");
                        carrier_on = false;
                    }
                    Some(CarrierChange::On) => {
                        prop_assert!(!carrier_on, "on while on");
                        carrier_on = true;
                    }
                    None => {}
                }
                let any = clocks.iter().any(|c| c.is_stalled());
                prop_assert_eq!(carrier_on, !any);
                prop_assert_eq!(s.any(), any);
                for (i, c) in clocks.iter().enumerate() {
                    prop_assert_eq!(s.is_stalled(i), c.is_stalled());
                    prop_assert_eq!(c.is_stalled(), model[i].1);
                }
            }
        }
    }

    #[test]
    fn recheck_corrects_a_crossed_change() {
        let s = StalledQueues::new();
        // Queue 0 recovers (its `On` is computed) ...
        assert_eq!(s.apply(0, StallChange::Stalled), Some(CarrierChange::Off));
        let late = s.apply(0, StallChange::Recovered);
        assert_eq!(late, Some(CarrierChange::On));
        // ... queue 1 stalls and applies `Off` first ...
        let mut carrier = Vec::new();
        s.drive(s.apply(1, StallChange::Stalled), |c| carrier.push(c));
        assert_eq!(carrier, [CarrierChange::Off]);
        // ... then queue 0's `On` lands and is corrected.
        s.drive(late, |c| carrier.push(c));
        assert_eq!(
            carrier,
            [CarrierChange::Off, CarrierChange::On, CarrierChange::Off]
        );
        assert_eq!(s.recheck(CarrierChange::Off), None);
    }

    /// Queues on several threads driving one carrier, updating together
    /// (so that their changes cross): after each step the carrier agrees
    /// with the set.
    #[test]
    fn concurrent_queues() {
        use std::sync::atomic::AtomicBool;
        use std::sync::Barrier;
        const QUEUES: usize = 8;
        let s = StalledQueues::new();
        let carrier_on = AtomicBool::new(true);
        let step = Barrier::new(QUEUES);
        // Mismatches seen (not asserted in the threads: a panic would leave
        // the others waiting at the barrier).
        let bad = AtomicU32::new(0);
        std::thread::scope(|sc| {
            for q in 0..QUEUES {
                let (s, carrier_on, step, bad) = (&s, &carrier_on, &step, &bad);
                sc.spawn(move || {
                    let mut x = q as u32 + 1;
                    for _ in 0..1_000 {
                        // xorshift: which queues stall this step.
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        step.wait();
                        s.drive(s.set(q, x & 1 == 1), |c| {
                            // Widens the window for crossing changes.
                            std::thread::yield_now();
                            carrier_on.store(c == CarrierChange::On, Ordering::SeqCst)
                        });
                        if step.wait().is_leader() && carrier_on.load(Ordering::SeqCst) == s.any() {
                            bad.fetch_add(1, Ordering::SeqCst);
                        }
                        step.wait();
                    }
                });
            }
        });
        assert_eq!(bad.load(Ordering::SeqCst), 0);
    }
}
