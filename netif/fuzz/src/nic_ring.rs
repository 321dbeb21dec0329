//! The NIC receive ring's bookkeeping (`nic_queue::RxRing`) against a NIC
//! that writes anything into its descriptors: any "done" bit, length,
//! end-of-frame and error bits, in any slot, at any time. Whatever it
//! writes, the ring must not panic, must hand each buffer back exactly
//! once (in a frame or at reclaim), in the order it was posted, and never
//! report an intact frame with a length past its buffer.

use nic_queue::{FrameStatus, IgbAdv, PlainDescs, RxRing, FRAME_MAX_BUFS, PAGE, RING_MAX};
use std::collections::VecDeque;

pub fn run(data: &[u8]) {
    let mut it = data.iter().copied();
    let mut next = move || it.next();
    let (Some(a), Some(b)) = (next(), next()) else { return };
    let size = 8usize << (a % 7); // 8..=512
    let buf_len = 1024 * (1 + u32::from(b % 4));
    let mut ring: Box<RxRing<u32, IgbAdv>> = Box::new(zeroed_ring());
    if ring.configure(size, buf_len).is_err() {
        return;
    }
    assert!(size <= RING_MAX);
    let mut mem = Box::new(PlainDescs([[0u64; 2]; RING_MAX]));
    let mut posted: VecDeque<u32> = VecDeque::new();
    let mut next_token = 0u32;
    while let Some(op) = next() {
        match op % 4 {
            0 => {
                for _ in 0..(op >> 2) {
                    let dma = 0x10_0000 + u64::from(next_token) * PAGE;
                    if ring.post(&mut *mem, dma, next_token).is_err() {
                        break;
                    }
                    posted.push_back(next_token);
                    next_token += 1;
                }
                let _ = ring.doorbell();
            }
            1 => {
                // The NIC writes a descriptor: slot, status/error bits, length.
                let (Some(s), Some(st0), Some(st1), Some(l0), Some(l1)) = (next(), next(), next(), next(), next()) else { break };
                let status = u32::from(st0) | (u32::from(st1) << 24);
                let len = u64::from(u16::from_le_bytes([l0, l1]));
                mem.0[usize::from(s) % size][1] = u64::from(status) | (len << 32);
            }
            2 => {
                ring.reap(&*mem, usize::from(op >> 2) + 1, |f| {
                    assert!(f.buffer_count() >= 1 && f.buffer_count() <= FRAME_MAX_BUFS);
                    for (t, len) in f.buffers() {
                        assert_eq!(Some(t), posted.pop_front(), "buffer out of order or twice");
                        if let FrameStatus::Good(_) = f.status {
                            assert!(len > 0 && u32::from(len) <= buf_len);
                        }
                    }
                });
            }
            _ => {
                ring.reclaim(|t| assert_eq!(Some(t), posted.pop_front(), "reclaimed out of order"));
                assert!(posted.is_empty());
                mem.0.iter_mut().for_each(|d| *d = [0; 2]);
            }
        }
        assert_eq!(ring.posted(), posted.len());
        assert!(ring.posted() < size);
    }
    let mut back = 0;
    ring.reclaim(|_| back += 1);
    assert_eq!(back, posted.len());
}

fn zeroed_ring() -> RxRing<u32, IgbAdv> {
    zerocopy::FromZeros::new_zeroed()
}
