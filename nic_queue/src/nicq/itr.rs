//! Interrupt moderation of a NIC receive queue: how long the NIC holds
//! back a receive interrupt after the last one (igb's EITR, ixgbe's
//! VTEITR). Each family turns the interval into its own register value.
//!
//! The receive interrupt masks itself when it fires and the backend's poll
//! unmasks it when done, so the frames reaped between the interrupt and
//! that re-arm are what one interrupt bought. In the adaptive mode (the
//! default, as in the Linux igb driver) those frames and bytes move the
//! queue between three classes: small sparse frames want the interrupt at
//! once, bulk transfers want fewer interrupts for more frames each.

/// The `nic_irq_rate` module parameter, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItrMode {
    /// No moderation: each interrupt as soon as the NIC raises it.
    Off,
    /// The interval follows the traffic ([`ItrClass`]).
    Adaptive,
    /// At most this many receive interrupts per second.
    Fixed(u32),
}

/// The lowest and highest fixed rates accepted, interrupts per second.
pub const ITR_FIXED_MIN: u32 = 100;
pub const ITR_FIXED_MAX: u32 = 100_000;

impl ItrMode {
    /// 0: off; 1: adaptive; anything else: a ceiling on interrupts per
    /// second, clamped to [`ITR_FIXED_MIN`, `ITR_FIXED_MAX`].
    pub fn from_param(v: u32) -> Self {
        match v {
            0 => ItrMode::Off,
            1 => ItrMode::Adaptive,
            n => ItrMode::Fixed(n.clamp(ITR_FIXED_MIN, ITR_FIXED_MAX)),
        }
    }
}

/// The adaptive mode's traffic classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItrClass {
    /// Few small frames: latency first (about 70,000 interrupts/s).
    Lowest,
    /// Mixed traffic (about 20,000/s): where a queue starts.
    Low,
    /// Full-size frames in bulk (about 4,000/s).
    Bulk,
}

impl ItrClass {
    /// The interval between two interrupts, in microseconds.
    pub const fn interval_us(self) -> u32 {
        match self {
            ItrClass::Lowest => 14,
            ItrClass::Low => 50,
            ItrClass::Bulk => 250,
        }
    }

    /// The class after an interrupt that brought `frames` frames of
    /// `bytes` bytes in all (the kernel's igb decides much the same way).
    /// Moves one step at a time, so one odd interrupt does not swing the
    /// interval from one end to the other.
    pub fn next(self, frames: u32, bytes: u64) -> Self {
        if frames == 0 {
            return self;
        }
        let per_frame = bytes / u64::from(frames);
        match self {
            // Full-size frames, or a few that are not tiny: not latency
            // traffic any more (at 14 µs a gigabit link brings about one
            // full-size frame per interrupt, so no count is asked for).
            ItrClass::Lowest if per_frame > 1200 || (frames < 5 && bytes > 512) => ItrClass::Low,
            ItrClass::Low if bytes > 10_000 && per_frame > 1200 => ItrClass::Bulk,
            ItrClass::Low if frames <= 2 && bytes < 512 => ItrClass::Lowest,
            ItrClass::Bulk if bytes < 1500 || per_frame < 256 => ItrClass::Low,
            c => c,
        }
    }
}

/// One queue's moderation: the mode, the adaptive class, and what the
/// polls reaped since the interrupt fired. Kept under the queue's lock.
#[derive(Clone, Copy, Debug)]
pub struct Moderation {
    mode: ItrMode,
    class: ItrClass,
    frames: u32,
    bytes: u64,
    /// The interval last programmed (`None`: nothing yet).
    programmed: Option<u32>,
}

impl Moderation {
    pub const fn new(mode: ItrMode) -> Self {
        Self { mode, class: ItrClass::Low, frames: 0, bytes: 0, programmed: None }
    }

    /// The interval the mode and class want now, in microseconds (0: none).
    pub fn interval_us(&self) -> u32 {
        match self.mode {
            ItrMode::Off => 0,
            ItrMode::Fixed(n) => 1_000_000 / n.max(1),
            ItrMode::Adaptive => self.class.interval_us(),
        }
    }

    /// A poll reaped `frames` frames of `bytes` bytes.
    pub fn count(&mut self, frames: usize, bytes: u64) {
        self.frames = self.frames.saturating_add(u32::try_from(frames).unwrap_or(u32::MAX));
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// The interrupt is about to be unmasked: the interval to program
    /// first, if it differs from the one programmed (a register write is
    /// a trap on an emulated NIC and not free on a real one).
    pub fn rearm(&mut self) -> Option<u32> {
        if self.mode == ItrMode::Adaptive {
            self.class = self.class.next(self.frames, self.bytes);
        }
        self.frames = 0;
        self.bytes = 0;
        let want = self.interval_us();
        (self.programmed != Some(want)).then(|| {
            self.programmed = Some(want);
            want
        })
    }

    /// The queue was reprogrammed (reset, restart): the interval is to be
    /// written again at the next re-arm.
    pub fn forget_programmed(&mut self) {
        self.programmed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_decoding() {
        assert_eq!(ItrMode::from_param(0), ItrMode::Off);
        assert_eq!(ItrMode::from_param(1), ItrMode::Adaptive);
        assert_eq!(ItrMode::from_param(8000), ItrMode::Fixed(8000));
        assert_eq!(ItrMode::from_param(2), ItrMode::Fixed(ITR_FIXED_MIN));
        assert_eq!(ItrMode::from_param(u32::MAX), ItrMode::Fixed(ITR_FIXED_MAX));
    }

    #[test]
    fn fixed_and_off_intervals() {
        let mut m = Moderation::new(ItrMode::Fixed(4000));
        assert_eq!(m.rearm(), Some(250));
        m.count(64, 64 * 1514);
        assert_eq!(m.rearm(), None, "unchanged: no second register write");
        let mut off = Moderation::new(ItrMode::Off);
        assert_eq!(off.rearm(), Some(0));
        off.count(1, 60);
        assert_eq!(off.rearm(), None);
        off.forget_programmed();
        assert_eq!(off.rearm(), Some(0), "written again after a reprogramming");
    }

    #[test]
    fn bulk_traffic_climbs_one_step_at_a_time_and_small_frames_come_back() {
        let mut m = Moderation::new(ItrMode::Adaptive);
        assert_eq!(m.rearm(), Some(ItrClass::Low.interval_us()));
        m.count(32, 32 * 1514);
        assert_eq!(m.rearm(), Some(ItrClass::Bulk.interval_us()));
        m.count(40, 40 * 1514);
        assert_eq!(m.rearm(), None, "stays bulk");
        // A lone ACK-sized frame: back to low, then to lowest.
        m.count(1, 66);
        assert_eq!(m.rearm(), Some(ItrClass::Low.interval_us()));
        m.count(1, 66);
        assert_eq!(m.rearm(), Some(ItrClass::Lowest.interval_us()));
        // Never lowest straight to bulk; one full-size frame per
        // interrupt (a gigabit link at 14 µs) is enough to leave lowest.
        m.count(1, 1514);
        assert_eq!(m.rearm(), Some(ItrClass::Low.interval_us()));
        // Low to bulk takes more than 10,000 bytes of full-size frames.
        m.count(6, 6 * 1514);
        assert_eq!(m.rearm(), None, "9084 bytes: stays low");
        m.count(7, 7 * 1514);
        assert_eq!(m.rearm(), Some(ItrClass::Bulk.interval_us()));
    }

    #[test]
    fn an_empty_poll_keeps_the_class() {
        for c in [ItrClass::Lowest, ItrClass::Low, ItrClass::Bulk] {
            assert_eq!(c.next(0, 0), c);
        }
    }

    #[test]
    fn counts_saturate() {
        let mut m = Moderation::new(ItrMode::Adaptive);
        m.count(usize::MAX, u64::MAX);
        m.count(usize::MAX, u64::MAX);
        assert!(m.rearm().is_some());
    }
}
