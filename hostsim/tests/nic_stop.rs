//! Stopping a NIC receive queue before its buffers' pages go: the
//! simulated NIC (hostsim's `SimNicQueue`) finishes a frame in flight after
//! its enable bit is cleared, and a NIC that never reports itself stopped
//! keeps receiving; a DMA into a page no longer mapped panics. The queue
//! driver's stop (`nic_queue::disable_and_wait`, as netback_mq's VF driver
//! uses it, then bus mastering cut if the queue is stuck) keeps every DMA
//! inside mapped pages; the stops it replaced do not (the `should_panic`
//! cases: each is the defect the model exists to catch).

use hostsim::SimVf;
use nic_queue::{disable_and_wait, QueueEnable, RxQueue, Stop, PAGE};

const RING: usize = 8;
const BUF: u32 = 2048;

/// A queue with `RING - 1` page buffers posted, each page mapped, and a
/// 1000-byte frame in flight.
fn queue_with_frame_in_flight(stop_after_polls: u32) -> SimVf {
    let mut q = SimVf::new(RING, BUF);
    q.nic.stop_after_polls = stop_after_polls;
    for t in 0..(RING - 1) as u32 {
        let page = 0x10_0000 + u64::from(t) * PAGE;
        q.nic.pages.insert(page, vec![0; PAGE as usize]);
        q.post(page, t).expect("room for the buffer");
    }
    q.kick();
    assert!(q.nic.begin(&[0xa5; 1000]), "the frame was taken");
    q
}

/// The backend gives every reclaimed buffer's page back (the grant ends).
fn reclaim_and_unmap(q: &mut SimVf, stop: impl FnOnce(&mut SimVf, &mut dyn FnMut(u32)) -> usize) -> usize {
    let mut tokens = Vec::new();
    let n = stop(q, &mut |t| tokens.push(t));
    for t in tokens {
        q.nic.pages.remove(&(0x10_0000 + u64::from(t) * PAGE));
    }
    n
}

#[test]
fn the_frame_in_flight_lands_before_the_buffers_come_back() {
    let mut q = queue_with_frame_in_flight(3);
    let n = reclaim_and_unmap(&mut q, |q, f| q.stop_and_reclaim(f));
    assert_eq!(n, RING - 1);
    assert_eq!(q.nic.frames, 1, "the frame landed while its page was mapped");
    // Time passes; the NIC is stopped and writes nothing more.
    q.nic.tick();
    assert!(!q.nic.begin(&[1; 100]), "a stopped queue takes no frame");
    q.nic.tick();
}

#[test]
#[should_panic(expected = "no mapped guest page")]
fn reclaiming_without_waiting_lets_the_frame_land_in_a_page_given_back() {
    // The stop netback_mq's VF driver had: the enable bit written, the
    // buffers reclaimed at once.
    let mut q = queue_with_frame_in_flight(3);
    reclaim_and_unmap(&mut q, |q, f| {
        q.nic.clear_enable();
        q.ring.reclaim(f)
    });
    q.nic.tick();
}

#[test]
fn a_queue_that_never_stops_loses_bus_mastering_before_its_pages_go() {
    let mut q = queue_with_frame_in_flight(u32::MAX);
    reclaim_and_unmap(&mut q, |q, f| q.stop_and_reclaim(f));
    assert!(!q.nic.bus_master, "bus mastering cut");
    // The NIC still runs (it never stopped): it takes a frame, and writes
    // nothing.
    assert!(q.nic.begin(&[7; 200]));
    q.nic.tick();
}

#[test]
#[should_panic(expected = "no mapped guest page")]
fn waiting_alone_is_not_enough_when_the_queue_never_stops() {
    let mut q = queue_with_frame_in_flight(u32::MAX);
    reclaim_and_unmap(&mut q, |q, f| {
        assert_eq!(disable_and_wait(&mut q.nic), Stop::Stuck);
        q.ring.reclaim(f)
    });
    q.nic.begin(&[7; 200]);
    q.nic.tick();
}

#[test]
fn a_queue_that_stops_at_once_reads_stopped_at_the_first_poll() {
    // QEMU's igb model: the bit reads clear at once.
    let mut q = queue_with_frame_in_flight(0);
    assert_eq!(disable_and_wait(&mut q.nic), Stop::Stopped);
    assert_eq!(q.nic.frames, 1);
    assert!(!q.nic.reads_enabled());
}
