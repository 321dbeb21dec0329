//! One NIC receive ring's bookkeeping: which buffer each descriptor holds,
//! what the NIC completed, and what must be taken back before a buffer's
//! page may go.
//!
//! Ownership: a buffer (its `token`: whatever the driver needs to answer
//! and release it, e.g. the netif request id and its grant mapping) enters
//! with [`RxRing::post`] and leaves exactly once, either inside a completed
//! [`Frame`] from [`RxRing::reap`] or from [`RxRing::reclaim`] after the
//! driver has stopped the queue. Between the two the NIC may write into the
//! buffer at any time, so its page must stay granted and mapped.
//!
//! Order: descriptors are posted and completed in ring order, so frames
//! come out in the order their buffers went in. netif receive responses
//! must answer requests in the order they were made (netfront matches them
//! by ring position), which this keeps for free.
//!
//! The NIC is trusted hardware, but what it writes back is still checked:
//! only posted descriptors are read, a length past the buffer or of zero
//! drops the frame, a frame longer than [`FRAME_MAX_BUFS`] buffers is
//! dropped whole, and a frame is handed over only once its last descriptor
//! is done (never half of one).

use core::marker::PhantomData;

use zerocopy_derive::FromZeros;

use super::desc::{Csum, DescFormat};

/// Descriptors a ring has at most.
pub const RING_MAX: usize = 512;
/// Buffers one frame may span (a 9 KB jumbo frame takes 3 of 4 KB).
pub const FRAME_MAX_BUFS: usize = 8;
/// Buffers must not cross this boundary (a grant is one 4 KB page).
pub const PAGE: u64 = 4096;

/// The descriptor memory the NIC shares (DMA-coherent in the kernel).
pub trait DescMem {
    /// Writes descriptor `index`. The driver moves the tail past it only
    /// afterwards (with a write barrier between, in the kernel).
    fn write(&mut self, index: usize, desc: [u64; 2]);
    /// Reads descriptor `index`'s second word in one 64-bit load. Kernel
    /// implementations follow it with a DMA read barrier, so whatever is
    /// done after seeing "done" happens after the NIC's data writes.
    fn read_word1(&self, index: usize) -> u64;
}

/// Descriptor memory in plain memory, for tests and simulations: whoever
/// plays the NIC writes write-backs into `self.0` directly.
pub struct PlainDescs<const N: usize>(pub [[u64; 2]; N]);

impl<const N: usize> DescMem for PlainDescs<N> {
    fn write(&mut self, index: usize, desc: [u64; 2]) {
        self.0[index] = desc;
    }
    fn read_word1(&self, index: usize) -> u64 {
        self.0[index][1]
    }
}

/// Why a ring refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// No free descriptor (one always stays empty: head == tail means empty).
    Full,
    /// The buffer would cross a 4 KB page, or its address is 0.
    BadBuffer,
    /// Size not a power of two in 8..=RING_MAX, or buffer length not a
    /// multiple of the NIC's unit within one page; or buffers still posted.
    BadConfig,
}

/// Why a frame was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFault {
    /// The NIC flagged a receive error (CRC, symbol, ...).
    NicError,
    /// A descriptor reported 0 bytes or more than its buffer holds.
    BadLength,
    /// The frame spans more than [`FRAME_MAX_BUFS`] buffers.
    TooLong,
}

/// A frame's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStatus {
    /// Delivered intact; the NIC's checksum verdict.
    Good(Csum),
    /// Its buffers hold nothing usable.
    Dropped(FrameFault),
}

/// One completed frame: the buffers it filled, in order, with the bytes
/// each holds. A dropped frame's buffers are handed back all the same.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: Copy> {
    tokens: [T; FRAME_MAX_BUFS],
    lens: [u16; FRAME_MAX_BUFS],
    count: usize,
    /// What became of it.
    pub status: FrameStatus,
}

impl<T: Copy> Frame<T> {
    /// The buffers, in order, with the bytes each holds.
    pub fn buffers(&self) -> impl Iterator<Item = (T, u16)> + '_ {
        self.tokens[..self.count].iter().copied().zip(self.lens[..self.count].iter().copied())
    }
    /// How many buffers it spans (at least 1).
    pub fn buffer_count(&self) -> usize {
        self.count
    }
    /// Total bytes (0 when dropped).
    pub fn len(&self) -> usize {
        match self.status {
            FrameStatus::Good(_) => self.lens[..self.count].iter().map(|&l| usize::from(l)).sum(),
            FrameStatus::Dropped(_) => 0,
        }
    }
    /// Whether it holds no bytes (dropped).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of one ring.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromZeros)]
#[repr(C)]
pub struct RingStats {
    /// Descriptors posted.
    pub posted: u64,
    /// Descriptors completed by the NIC and reaped.
    pub completed: u64,
    /// Frames reaped intact.
    pub frames: u64,
    /// Frames reaped dropped (see [`FrameFault`]).
    pub dropped: u64,
    /// Frames whose checksum the NIC verified.
    pub csum_verified: u64,
    /// Frames the NIC found a bad checksum in.
    pub csum_bad: u64,
    /// Tail writes (doorbells) asked for.
    pub doorbells: u64,
    /// Buffers taken back unused by [`RxRing::reclaim`].
    pub reclaimed: u64,
}

/// One receive ring. All-zero bytes are an unconfigured ring (size 0), so
/// it can be allocated zeroed; [`RxRing::configure`] sets it up.
#[derive(FromZeros)]
#[repr(C)]
pub struct RxRing<T: Copy, F> {
    tokens: [T; RING_MAX],
    size: u16,
    /// Next descriptor to post into (what the tail register says).
    next_to_use: u16,
    /// Next descriptor the NIC completes.
    next_to_clean: u16,
    /// Descriptors holding a buffer.
    posted: u16,
    /// The tail last written to the NIC.
    told: u16,
    /// Dropping the rest of a frame that was too long.
    discarding: u8,
    buf_len: u32,
    stats: RingStats,
    format: PhantomData<F>,
}

impl<T: Copy, F: DescFormat> RxRing<T, F> {
    /// Sets the ring's size and buffer length (bytes the NIC writes at
    /// most per buffer). Only while no buffer is posted.
    pub fn configure(&mut self, size: usize, buf_len: u32) -> Result<(), RingError> {
        let size_ok = size.is_power_of_two() && (8..=RING_MAX).contains(&size);
        let len_ok = buf_len > 0 && buf_len.is_multiple_of(F::BUF_UNIT) && buf_len <= F::BUF_MAX && u64::from(buf_len) <= PAGE;
        if !size_ok || !len_ok || self.posted != 0 {
            return Err(RingError::BadConfig);
        }
        self.size = size as u16;
        self.buf_len = buf_len;
        self.next_to_use = 0;
        self.next_to_clean = 0;
        self.told = 0;
        self.discarding = 0;
        Ok(())
    }

    /// Descriptors in the ring (0: not configured).
    pub fn size(&self) -> usize {
        usize::from(self.size)
    }
    /// Bytes the NIC writes into a buffer at most.
    pub fn buf_len(&self) -> u32 {
        self.buf_len
    }
    /// Buffers posted and not yet completed.
    pub fn posted(&self) -> usize {
        usize::from(self.posted)
    }
    /// Buffers that can still be posted.
    pub fn room(&self) -> usize {
        self.size().saturating_sub(1 + self.posted())
    }
    /// Counters.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    fn slot(&self, n: u16) -> usize {
        usize::from(n & self.size.wrapping_sub(1))
    }

    /// Posts a buffer at bus address `dma` holding `buf_len` bytes, with
    /// `token` to hand back when it completes. The NIC sees it only after
    /// the next [`RxRing::doorbell`].
    pub fn post<M: DescMem>(&mut self, mem: &mut M, dma: u64, token: T) -> Result<(), RingError> {
        if self.room() == 0 {
            return Err(RingError::Full);
        }
        if dma == 0 || (dma % PAGE) + u64::from(self.buf_len) > PAGE {
            return Err(RingError::BadBuffer);
        }
        let i = self.slot(self.next_to_use);
        mem.write(i, F::read_format(dma));
        self.tokens[i] = token;
        self.next_to_use = (self.next_to_use + 1) & (self.size - 1);
        self.posted += 1;
        self.stats.posted += 1;
        Ok(())
    }

    /// The tail to write to the NIC if it moved since the last one: one
    /// register write per batch of posts.
    pub fn doorbell(&mut self) -> Option<u16> {
        if self.size == 0 || self.told == self.next_to_use {
            return None;
        }
        self.told = self.next_to_use;
        self.stats.doorbells += 1;
        Some(self.next_to_use)
    }

    /// Hands each completed frame to `f`, in order, at most `budget` of
    /// them; returns how many. A frame whose last descriptor is not done
    /// yet stays for the next call.
    pub fn reap<M: DescMem>(&mut self, mem: &M, budget: usize, mut f: impl FnMut(&Frame<T>)) -> usize {
        let mut frames = 0;
        while frames < budget {
            let Some(frame) = self.next_frame(mem) else { break };
            f(&frame);
            frames += 1;
        }
        frames
    }

    fn next_frame<M: DescMem>(&mut self, mem: &M) -> Option<Frame<T>> {
        let limit = self.posted().min(FRAME_MAX_BUFS);
        let mut lens = [0u16; FRAME_MAX_BUFS];
        let mut count = 0;
        let mut last = None;
        while count < limit {
            let wb = F::parse(mem.read_word1(self.slot(self.next_to_clean.wrapping_add(count as u16))));
            if !wb.done {
                return None;
            }
            lens[count] = wb.len;
            count += 1;
            if wb.end_of_frame {
                last = Some(wb);
                break;
            }
        }
        if last.is_none() && count < FRAME_MAX_BUFS {
            // Nothing done, or the frame goes on into buffers not posted yet.
            return None;
        }
        let mut status = match last {
            None => FrameStatus::Dropped(FrameFault::TooLong),
            Some(wb) if wb.frame_error => FrameStatus::Dropped(FrameFault::NicError),
            Some(wb) => FrameStatus::Good(wb.csum),
        };
        if lens[..count].iter().any(|&l| l == 0 || u32::from(l) > self.buf_len) {
            status = FrameStatus::Dropped(FrameFault::BadLength);
        }
        // The tail of a frame already dropped as too long.
        if self.discarding != 0 {
            status = FrameStatus::Dropped(FrameFault::TooLong);
        }
        self.discarding = u8::from(last.is_none());
        let mut frame = Frame { tokens: [self.tokens[0]; FRAME_MAX_BUFS], lens, count, status };
        for (k, t) in frame.tokens[..count].iter_mut().enumerate() {
            *t = self.tokens[self.slot(self.next_to_clean.wrapping_add(k as u16))];
        }
        self.next_to_clean = (self.next_to_clean + count as u16) & (self.size - 1);
        self.posted -= count as u16;
        self.stats.completed += count as u64;
        match status {
            FrameStatus::Good(c) => {
                self.stats.frames += 1;
                match c {
                    Csum::Verified => self.stats.csum_verified += 1,
                    Csum::Bad => self.stats.csum_bad += 1,
                    Csum::Unchecked => {}
                }
            }
            FrameStatus::Dropped(_) => self.stats.dropped += 1,
        }
        Some(frame)
    }

    /// Takes every posted buffer back, in order, handing each token to
    /// `f`; returns how many. Only once the NIC has stopped the queue (its
    /// enable bit reads clear) and can no longer write into any of them:
    /// after this the ring starts again at descriptor 0, as a reset
    /// queue does.
    pub fn reclaim(&mut self, mut f: impl FnMut(T)) -> usize {
        let n = self.posted;
        for k in 0..n {
            f(self.tokens[self.slot(self.next_to_clean.wrapping_add(k))]);
        }
        self.posted = 0;
        self.next_to_use = 0;
        self.next_to_clean = 0;
        self.told = 0;
        self.discarding = 0;
        self.stats.reclaimed += u64::from(n);
        usize::from(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::desc::{igb_rx::*, igb_write_back, IgbAdv};
    use super::*;
    use std::boxed::Box;
    use std::vec;
    use std::vec::Vec;
    use zerocopy::FromZeros;

    type Mem = PlainDescs<16>;

    fn ring(size: usize) -> (Box<RxRing<u32, IgbAdv>>, Mem) {
        let mut r = RxRing::<u32, IgbAdv>::new_box_zeroed().unwrap();
        r.configure(size, 4096).unwrap();
        (r, PlainDescs([[0; 2]; 16]))
    }

    fn reap_all(r: &mut RxRing<u32, IgbAdv>, m: &Mem) -> Vec<(FrameStatus, Vec<(u32, u16)>)> {
        let mut v = Vec::new();
        r.reap(m, usize::MAX, |f| v.push((f.status, f.buffers().collect())));
        v
    }

    #[test]
    fn configure_checks() {
        let mut r = RxRing::<u32, IgbAdv>::new_box_zeroed().unwrap();
        assert_eq!(r.room(), 0);
        assert_eq!(r.configure(100, 4096), Err(RingError::BadConfig));
        assert_eq!(r.configure(1024, 4096), Err(RingError::BadConfig));
        assert_eq!(r.configure(256, 1500), Err(RingError::BadConfig));
        assert_eq!(r.configure(256, 8192), Err(RingError::BadConfig));
        assert_eq!(r.configure(256, 2048), Ok(()));
        assert_eq!(r.room(), 255);
    }

    #[test]
    fn post_rules_and_doorbell_batching() {
        let (mut r, mut m) = ring(8);
        assert_eq!(r.post(&mut m, 0, 1), Err(RingError::BadBuffer));
        assert_eq!(r.post(&mut m, 0x1000 + 16, 1), Err(RingError::BadBuffer));
        assert_eq!(r.doorbell(), None);
        for t in 0..7 {
            r.post(&mut m, 0x10000 + u64::from(t) * PAGE, t).unwrap();
        }
        assert_eq!(r.post(&mut m, 0x90000, 9), Err(RingError::Full));
        assert_eq!(r.doorbell(), Some(7));
        assert_eq!(r.doorbell(), None);
        assert_eq!(r.stats().doorbells, 1);
        assert_eq!(m.0[3], [0x13000, 0]);
    }

    #[test]
    fn frames_whole_in_order_with_checks() {
        let (mut r, mut m) = ring(8);
        for t in 0..7 {
            r.post(&mut m, 0x10000 + u64::from(t) * PAGE, t).unwrap();
        }
        // A two-buffer frame whose last descriptor is not done: nothing yet.
        m.0[0][1] = igb_write_back(STAT_DD, 4096);
        assert!(reap_all(&mut r, &m).is_empty());
        m.0[1][1] = igb_write_back(STAT_DD | STAT_EOP | STAT_TCPCS, 100);
        // Then one the NIC flagged, one with a length past the buffer.
        m.0[2][1] = igb_write_back(STAT_DD | STAT_EOP | ERR_CE, 60);
        m.0[3][1] = igb_write_back(STAT_DD | STAT_EOP, 4097);
        let got = reap_all(&mut r, &m);
        assert_eq!(
            got,
            vec![
                (FrameStatus::Good(Csum::Verified), vec![(0, 4096), (1, 100)]),
                (FrameStatus::Dropped(FrameFault::NicError), vec![(2, 60)]),
                (FrameStatus::Dropped(FrameFault::BadLength), vec![(3, 4097)]),
            ]
        );
        assert_eq!(r.posted(), 3);
        let s = r.stats();
        assert_eq!((s.frames, s.dropped, s.completed, s.csum_verified), (1, 2, 4, 1));
        let mut back = Vec::new();
        assert_eq!(r.reclaim(|t| back.push(t)), 3);
        assert_eq!(back, vec![4, 5, 6]);
        assert_eq!((r.posted(), r.room()), (0, 7));
    }

    #[test]
    fn overlong_frame_dropped_whole() {
        let (mut r, mut m) = ring(16);
        for t in 0..15 {
            r.post(&mut m, 0x10000 + u64::from(t) * PAGE, t).unwrap();
        }
        for i in 0..10 {
            m.0[i][1] = igb_write_back(STAT_DD | if i == 9 { STAT_EOP } else { 0 }, 4096);
        }
        m.0[10][1] = igb_write_back(STAT_DD | STAT_EOP, 64);
        let got = reap_all(&mut r, &m);
        let st: Vec<_> = got.iter().map(|(s, b)| (*s, b.len())).collect();
        assert_eq!(
            st,
            vec![
                (FrameStatus::Dropped(FrameFault::TooLong), FRAME_MAX_BUFS),
                (FrameStatus::Dropped(FrameFault::TooLong), 2),
                (FrameStatus::Good(Csum::Unchecked), 1),
            ]
        );
    }

    #[test]
    fn budget_and_wrap() {
        let (mut r, mut m) = ring(8);
        let mut next = 0u32;
        let mut seen = Vec::new();
        for _round in 0..5 {
            while r.room() > 0 {
                r.post(&mut m, 0x10000 + u64::from(next % 64) * PAGE, next).unwrap();
                next += 1;
            }
            for d in m.0[..8].iter_mut() {
                d[1] = igb_write_back(STAT_DD | STAT_EOP, 64);
            }
            assert_eq!(r.reap(&m, 2, |f| seen.extend(f.buffers().map(|b| b.0))), 2);
            r.reap(&m, usize::MAX, |f| seen.extend(f.buffers().map(|b| b.0)));
        }
        assert_eq!(seen, (0..next).collect::<Vec<_>>());
    }
}
