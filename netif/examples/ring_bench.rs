//! Host benchmark: requests/second through a TX ring pair (frontend thread
//! pushing requests and reaping responses, backend thread answering), with
//! and without notification batching, beside a bare SPSC queue pair on the
//! same machine. Bounded: about one second per mode.
//!
//!     cargo run --release -p netif --example ring_bench [seconds-per-mode]
//!
//! Both sides busy-poll (spin, then yield); "notifications" are the ones the
//! ring's event indices say must be sent: they are counted, as a real
//! driver would send an event-channel notification (a hypercall) for each.

use netif::{
    BackRing, FrontRing, HostBarriers, RspStatus, SharedRing, TxFlags, TxRequest, TxResponse,
    TxRingKind, PAGE_SIZE,
};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

struct Result {
    reqs: u64,
    secs: f64,
    notifies: u64,
}

fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn ring_pair(batched: bool, dur: Duration) -> Result {
    let page = Box::into_raw(Box::new(Page([0; PAGE_SIZE]))).cast::<u8>();
    // SAFETY: `page` is a leaked page-aligned 4096-byte allocation (freed
    // below after both threads ended), accessed only through these rings.
    let (fs, bs) = unsafe {
        (
            SharedRing::<TxRingKind>::from_raw(page, PAGE_SIZE).unwrap(),
            SharedRing::<TxRingKind>::from_raw(page, PAGE_SIZE).unwrap(),
        )
    };
    let mut front = FrontRing::<TxRingKind, HostBarriers>::new(fs);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let backend = std::thread::spawn(move || {
        let mut back = BackRing::<TxRingKind, HostBarriers>::attach(bs).unwrap();
        let mut notifies = 0u64;
        let mut spins = 0;
        while !stop2.load(Ordering::Relaxed) {
            let mut n = 0;
            while let Some(req) = back.next_request().unwrap() {
                back.push_response(TxResponse::new(req.id(), RspStatus::OKAY))
                    .unwrap();
                n += 1;
                if !batched && back.push_responses_and_check_notify() {
                    notifies += 1;
                }
            }
            if n > 0 {
                spins = 0;
                if batched && back.push_responses_and_check_notify() {
                    notifies += 1;
                }
            } else if !back.final_check_for_requests().unwrap() {
                backoff(&mut spins);
            }
        }
        notifies
    });
    let start = Instant::now();
    let mut done = 0u64;
    let mut notifies = 0u64;
    let mut spins = 0;
    let mut id = 0u16;
    while start.elapsed() < dur {
        for _ in 0..4096 {
            let mut pushed = 0;
            while !front.is_full() {
                front
                    .push_request(TxRequest::new(1, 0, TxFlags(0), id, 60))
                    .unwrap();
                id = id.wrapping_add(1);
                pushed += 1;
                if !batched && front.push_requests_and_check_notify() {
                    notifies += 1;
                }
            }
            if batched && pushed > 0 && front.push_requests_and_check_notify() {
                notifies += 1;
            }
            let mut got = 0;
            while let Some(_rsp) = front.next_response().unwrap() {
                got += 1;
            }
            done += got;
            if got == 0 && !front.final_check_for_responses().unwrap() {
                backoff(&mut spins);
            } else {
                spins = 0;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    notifies += backend.join().unwrap();
    // SAFETY: no ring accesses the page any more: the backend thread was
    // joined and `front` is not used after this point.
    drop(unsafe { Box::from_raw(page.cast::<Page>()) });
    Result {
        reqs: done,
        secs,
        notifies,
    }
}

/// An index on its own cache line.
#[repr(align(64))]
struct Padded(AtomicU32);

/// A bare single-producer single-consumer queue (Lamport ring, 256 slots of
/// 12 bytes, indices on separate cache lines, the peer's index cached and
/// reloaded only when the queue looks full/empty): the floor any shared
/// ring can be compared with.
struct Spsc {
    slots: [UnsafeCell<[u8; 12]>; 256],
    head: Padded,
    tail: Padded,
}

/// Per-thread cached copy of the peer's index.
#[derive(Default)]
struct Cache(std::cell::Cell<u32>);

// SAFETY: slot `i` is written only by the producer while `i` is outside
// `tail..head` and read only by the consumer while inside it; the
// Release/Acquire on head/tail order those accesses.
unsafe impl Sync for Spsc {}

impl Spsc {
    fn new() -> Self {
        Self {
            slots: std::array::from_fn(|_| UnsafeCell::new([0; 12])),
            head: Padded(AtomicU32::new(0)),
            tail: Padded(AtomicU32::new(0)),
        }
    }
    fn push(&self, tail_cache: &Cache, v: [u8; 12]) -> bool {
        let h = self.head.0.load(Ordering::Relaxed);
        if h.wrapping_sub(tail_cache.0.get()) == 256 {
            tail_cache.0.set(self.tail.0.load(Ordering::Acquire));
            if h.wrapping_sub(tail_cache.0.get()) == 256 {
                return false;
            }
        }
        // SAFETY: slot `h` is free (not in tail..head): only we touch it.
        unsafe { *self.slots[(h & 255) as usize].get() = v };
        self.head.0.store(h.wrapping_add(1), Ordering::Release);
        true
    }
    fn pop(&self, head_cache: &Cache) -> Option<[u8; 12]> {
        let t = self.tail.0.load(Ordering::Relaxed);
        if t == head_cache.0.get() {
            head_cache.0.set(self.head.0.load(Ordering::Acquire));
            if t == head_cache.0.get() {
                return None;
            }
        }
        // SAFETY: slot `t` is published (in tail..head): the producer no
        // longer writes it until we advance tail.
        let v = unsafe { *self.slots[(t & 255) as usize].get() };
        self.tail.0.store(t.wrapping_add(1), Ordering::Release);
        Some(v)
    }
}

fn spsc_pair(dur: Duration) -> Result {
    let req = Arc::new(Spsc::new());
    let rsp = Arc::new(Spsc::new());
    let stop = Arc::new(AtomicBool::new(false));
    let (req2, rsp2, stop2) = (req.clone(), rsp.clone(), stop.clone());
    let backend = std::thread::spawn(move || {
        let (hc, tc) = (Cache::default(), Cache::default());
        let mut spins = 0;
        while !stop2.load(Ordering::Relaxed) {
            match req2.pop(&hc) {
                Some(v) => {
                    spins = 0;
                    while !rsp2.push(&tc, v) {
                        if stop2.load(Ordering::Relaxed) {
                            return;
                        }
                        backoff(&mut spins);
                    }
                }
                None => backoff(&mut spins),
            }
        }
    });
    let start = Instant::now();
    let mut done = 0u64;
    let mut in_flight = 0u32;
    let mut spins = 0;
    let (hc, tc) = (Cache::default(), Cache::default());
    while start.elapsed() < dur {
        for _ in 0..4096 {
            while in_flight < 256 && req.push(&tc, [7; 12]) {
                in_flight += 1;
            }
            let mut got = 0;
            while rsp.pop(&hc).is_some() {
                got += 1;
            }
            in_flight -= got;
            done += u64::from(got);
            if got == 0 {
                backoff(&mut spins);
            } else {
                spins = 0;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    backend.join().unwrap();
    Result {
        reqs: done,
        secs,
        notifies: 0,
    }
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dur = Duration::from_secs_f64(secs.clamp(0.1, 10.0));
    let base = spsc_pair(dur);
    let base_rate = base.reqs as f64 / base.secs;
    println!(
        "machine: {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<36} {:>14} {:>12} {:>16} {:>10}",
        "mode", "requests", "Mreq/s", "notify/request", "vs SPSC"
    );
    let line = |name: &str, r: &Result| {
        let rate = r.reqs as f64 / r.secs;
        println!(
            "{:<36} {:>14} {:>12.2} {:>16.4} {:>9.2}x",
            name,
            r.reqs,
            rate / 1e6,
            r.notifies as f64 / r.reqs.max(1) as f64,
            rate / base_rate
        );
    };
    line("bare SPSC queue pair (baseline)", &base);
    line("netif ring, batched notify", &ring_pair(true, dur));
    line(
        "netif ring, notify check per request",
        &ring_pair(false, dur),
    );
}
