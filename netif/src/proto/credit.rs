//! Guest-transmit rate limiting (the `rate=` of an xl vif spec).
//!
//! The toolstack writes `rate` = `"BYTES,USECS"` in the backend directory:
//! at most BYTES every USECS microseconds. [`Credit`] is a token bucket that
//! fills by BYTES per USECS, holds at most [`Credit::burst`] (enough for the
//! largest packet, as the C netback's `max_burst`), and tells the caller
//! when a packet that does not fit yet will. Time is passed in, so the
//! arithmetic is tested on the host.

/// Smallest bucket: a 64 KiB GSO packet must always fit eventually.
pub const MIN_BURST: u64 = 131_072;

/// A token bucket over a byte rate; unlimited when built from no rate.
#[derive(Debug, Clone, Copy)]
pub struct Credit {
    bytes: u64,
    interval_us: u64,
    tokens: u64,
    /// Time (µs) up to which tokens have been added.
    filled_to: u64,
}

impl Credit {
    /// No limit.
    pub const fn unlimited() -> Self {
        Self {
            bytes: 0,
            interval_us: 0,
            tokens: 0,
            filled_to: 0,
        }
    }

    /// `bytes` every `interval_us`, starting full at `now_us`. A zero in
    /// either is no limit.
    pub fn new(bytes: u64, interval_us: u64, now_us: u64) -> Self {
        if bytes == 0 || interval_us == 0 {
            return Self::unlimited();
        }
        let mut c = Self {
            bytes,
            interval_us,
            tokens: 0,
            filled_to: now_us,
        };
        c.tokens = c.burst();
        c
    }

    /// Parses the `rate` node: `"BYTES,USECS"`, both decimal. `None` if
    /// malformed (the value comes from xenstore).
    pub fn parse_rate(s: &[u8]) -> Option<(u64, u64)> {
        let s = s.strip_suffix(b"\0").unwrap_or(s);
        let comma = s.iter().position(|&c| c == b',')?;
        let num = |d: &[u8]| -> Option<u64> {
            if d.is_empty() || d.len() > 19 || !d.iter().all(u8::is_ascii_digit) {
                return None;
            }
            Some(d.iter().fold(0u64, |n, &c| n * 10 + u64::from(c - b'0')))
        };
        Some((num(&s[..comma])?, num(&s[comma + 1..])?))
    }

    /// True if a limit applies.
    pub fn is_limited(&self) -> bool {
        self.bytes != 0
    }

    /// Most tokens the bucket holds.
    pub fn burst(&self) -> u64 {
        self.bytes.max(MIN_BURST)
    }

    fn refill(&mut self, now_us: u64) {
        if now_us <= self.filled_to {
            return;
        }
        let periods = (now_us - self.filled_to) / self.interval_us;
        if periods > 0 {
            let add = periods.saturating_mul(self.bytes);
            self.tokens = self.tokens.saturating_add(add).min(self.burst());
            self.filled_to += periods * self.interval_us;
        }
    }

    /// Spends `len` bytes at `now_us` if the bucket holds them; otherwise
    /// returns the time (µs) at which it will.
    pub fn consume(&mut self, len: u64, now_us: u64) -> Result<(), u64> {
        if !self.is_limited() {
            return Ok(());
        }
        self.refill(now_us);
        let len = len.min(self.burst());
        if len <= self.tokens {
            self.tokens -= len;
            return Ok(());
        }
        let periods = (len - self.tokens).div_ceil(self.bytes);
        Err(self.filled_to + periods * self.interval_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse() {
        assert_eq!(Credit::parse_rate(b"62500,50000"), Some((62500, 50000)));
        assert_eq!(Credit::parse_rate(b"1,2\0"), Some((1, 2)));
        for bad in [
            &b""[..],
            b",",
            b"1,",
            b",2",
            b"1 ,2",
            b"-1,2",
            b"1,2,3",
            b"99999999999999999999,1",
        ] {
            assert_eq!(Credit::parse_rate(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn waits_then_sends() {
        // 10 kB per 10 ms = 1 MB/s; burst is the 128 KiB minimum.
        let mut c = Credit::new(10_000, 10_000, 0);
        assert_eq!(c.consume(MIN_BURST, 0), Ok(()));
        assert_eq!(c.consume(1500, 0), Err(10_000));
        assert_eq!(c.consume(1500, 9_999), Err(10_000));
        assert_eq!(c.consume(1500, 10_000), Ok(()));
        // 20 kB more needs two more periods' worth beyond the 8.5 kB left.
        assert_eq!(c.consume(20_000, 10_000), Err(30_000));
        assert!(Credit::unlimited().consume(u64::MAX, 0).is_ok());
        assert!(!Credit::new(0, 5, 0).is_limited());
    }

    proptest! {
        /// Over any schedule, bytes sent never exceed burst + rate * time,
        /// and a refused packet is accepted at the time promised.
        #[test]
        fn never_exceeds_rate(
            bytes in 1u64..200_000,
            interval in 1u64..100_000,
            steps in proptest::collection::vec((0u64..50_000, 1u64..65_536), 1..200),
        ) {
            let mut c = Credit::new(bytes, interval, 0);
            let mut now = 0;
            let mut sent = 0u64;
            for (dt, len) in steps {
                now += dt;
                match c.consume(len, now) {
                    Ok(()) => sent += len,
                    Err(at) => {
                        prop_assert!(at > now);
                        let mut probe = c;
                        prop_assert!(probe.consume(len, at).is_ok());
                    }
                }
                let allowed = c.burst() + (now / interval) * bytes;
                prop_assert!(sent <= allowed, "sent {} allowed {}", sent, allowed);
            }
        }
    }
}
