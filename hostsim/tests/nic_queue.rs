//! The NIC receive queue's ring bookkeeping against a simulated igb pool,
//! two guests on two pools: random posts, arrivals, reaps and resets.
//! Checked: every frame lands whole, in order, in its own guest's pages;
//! every buffer comes back exactly once (completed or reclaimed); the NIC
//! never writes into a page after its buffer came back (the simulated
//! NIC panics on a DMA into an unmapped page).

use std::collections::VecDeque;

use hostsim::SimVf;
use netif::RxFlags;
use nic_queue::{frame_to_netif, igb_rx, DescMem, FrameFault, FrameStatus, RxQueue, FRAME_MAX_BUFS, PAGE};
use proptest::prelude::*;

const RING: usize = 64;
/// netif request ids per guest (a netif receive ring holds 256).
const IDS: u32 = 256;

#[derive(Debug, Clone)]
enum Op {
    /// Guest g makes up to n requests; the backend posts what fits.
    Post(usize, usize),
    /// A frame for guest g: length, 0 plain / 1 checksum verified / 2 CRC
    /// error, and whether its last write-back waits for the next event.
    Arrive(usize, usize, u8, bool),
    /// The NIC writes back what it held.
    Flush(usize),
    /// The backend reaps up to n frames of guest g.
    Reap(usize, usize),
    /// Guest g's queue is stopped and every buffer reclaimed.
    Reset(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..2usize, 1..40usize).prop_map(|(g, n)| Op::Post(g, n)),
        (0..2usize, 1..9100usize, 0..3u8, any::<bool>()).prop_map(|(g, l, s, h)| Op::Arrive(g, l, s, h)),
        (0..2usize).prop_map(Op::Flush),
        (0..2usize, 1..8usize).prop_map(|(g, n)| Op::Reap(g, n)),
        (0..2usize).prop_map(Op::Reset),
    ]
}

struct Guest {
    /// The queue, driven through the `RxQueue` interface.
    q: SimVf,
    /// Ids posted, oldest first (what the ring must hand back, in order).
    posted: VecDeque<u32>,
    next_id: u32,
    /// Frames the NIC accepted, not yet reaped: payload, kind.
    expected: VecDeque<(Vec<u8>, u8)>,
    returned: u64,
    made: u64,
    seq: u32,
}

impl Guest {
    fn new(buf_len: u32) -> Self {
        Guest {
            q: SimVf::new(RING, buf_len),
            posted: VecDeque::new(),
            next_id: 0,
            expected: VecDeque::new(),
            returned: 0,
            made: 0,
            seq: 0,
        }
    }
}

/// Each guest's pages live in its own range of bus addresses.
fn page_of(g: usize, id: u32) -> u64 {
    ((g as u64 + 1) << 32) + u64::from(id) * PAGE
}

fn payload(g: usize, seq: u32, len: usize) -> Vec<u8> {
    (0..len).map(|i| (g as u8) << 7 | ((seq as usize * 31 + i) % 127) as u8).collect()
}

fn run(ops: &[Op], buf_len: u32) -> Result<(), TestCaseError> {
    let mut gs = [Guest::new(buf_len), Guest::new(buf_len)];
    for op in ops {
        match *op {
            Op::Post(g, n) => {
                let q = &mut gs[g];
                for _ in 0..n.min(q.q.room()) {
                    let id = q.next_id;
                    // The guest reuses an id only once it was answered.
                    prop_assert!(!q.posted.contains(&id));
                    q.q.nic.pages.insert(page_of(g, id), vec![0; PAGE as usize]);
                    q.q.post(page_of(g, id), id).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                    q.posted.push_back(id);
                    q.next_id = (id + 1) % IDS;
                    q.made += 1;
                }
                q.q.kick();
            }
            Op::Arrive(g, len, kind, hold) => {
                let q = &mut gs[g];
                q.seq += 1;
                let data = payload(g, q.seq, len);
                let status = [0, igb_rx::STAT_TCPCS | igb_rx::STAT_IPCS, igb_rx::ERR_CE][kind as usize];
                let fits = len.div_ceil(buf_len as usize) <= FRAME_MAX_BUFS;
                if fits && q.q.nic.receive(&data, status, hold) {
                    q.expected.push_back((data, kind));
                }
            }
            Op::Flush(g) => gs[g].q.nic.flush(),
            Op::Reap(g, n) => {
                let q = &mut gs[g];
                let mut frames = Vec::new();
                q.q.reap(n, &mut |f| frames.push(*f));
                for f in frames {
                    let (data, kind) = q.expected.pop_front().ok_or_else(|| TestCaseError::fail("frame from nowhere"))?;
                    let mut got = Vec::new();
                    for (id, len) in f.buffers() {
                        prop_assert_eq!(Some(id), q.posted.pop_front(), "buffers out of order");
                        let page = q.q.nic.pages.remove(&page_of(g, id)).expect("page still mapped");
                        got.extend_from_slice(&page[..usize::from(len)]);
                        q.returned += 1;
                    }
                    match (kind, f.status) {
                        (2, FrameStatus::Dropped(FrameFault::NicError)) => {}
                        (1, FrameStatus::Good(nic_queue::Csum::Verified)) | (0, FrameStatus::Good(nic_queue::Csum::Unchecked)) => {
                            // Isolation: the bytes are this guest's frame, whole.
                            prop_assert!(got == data, "guest {} got another frame's bytes", g);
                        }
                        other => prop_assert!(false, "unexpected outcome {:?}", other),
                    }
                    match frame_to_netif(&f) {
                        None => prop_assert_eq!(kind, 2),
                        Some((flags, outs, k)) => {
                            prop_assert_eq!(k, f.buffer_count());
                            let total: usize = outs[..k].iter().map(|o| usize::from(o.len)).sum();
                            prop_assert_eq!(total, data.len());
                            prop_assert!(outs[..k].iter().all(|o| o.offset == 0));
                            prop_assert_eq!(flags.contains(RxFlags::DATA_VALIDATED), kind == 1);
                        }
                    }
                }
            }
            Op::Reset(g) => {
                let q = &mut gs[g];
                let mut back = Vec::new();
                q.q.stop_and_reclaim(&mut |id| back.push(id));
                prop_assert_eq!(back, q.posted.drain(..).collect::<Vec<_>>());
                for id in 0..IDS {
                    if q.q.nic.pages.remove(&page_of(g, id)).is_some() {
                        q.returned += 1;
                    }
                }
                // Frames DMAed but not reaped went with the reset.
                q.expected.clear();
                q.q.restart();
            }
        }
        for q in &gs {
            prop_assert_eq!(q.q.ring.posted(), q.posted.len());
            prop_assert_eq!(q.made, q.returned + q.posted.len() as u64);
            prop_assert_eq!(q.q.nic.pages.len(), q.posted.len());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn frames_land_whole_in_their_guest_and_buffers_come_back_once(
        ops in proptest::collection::vec(op(), 1..200),
        big in any::<bool>(),
    ) {
        run(&ops, if big { 4096 } else { 2048 })?;
    }
}

/// A reap that stops early leaves the rest for the next one; a full pool
/// drops and counts instead of overwriting.
#[test]
fn full_pool_drops_and_counts() {
    let mut g = Guest::new(4096);
    for id in 0..3 {
        g.q.nic.pages.insert(page_of(0, id), vec![0; PAGE as usize]);
        g.q.post(page_of(0, id), id).unwrap();
    }
    g.q.kick();
    assert_eq!(g.q.stats().doorbells, 1);
    assert!(g.q.nic.receive(&[1; 9000], 0, true));
    let mut n = 0;
    g.q.reap(8, &mut |f| n += f.len());
    assert_eq!(n, 0, "half a frame reaped");
    assert!(!g.q.nic.receive(&[2; 60], 0, false));
    assert_eq!(g.q.nic.no_buffer_drops, 1);
    g.q.reap(8, &mut |f| n += f.len());
    assert_eq!(n, 9000);
    // The descriptor past what was posted was never written.
    assert!(g.q.nic.read_word1(3) == 0);
}
