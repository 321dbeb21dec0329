//! A simulated igb VF receive queue (one VMDq pool), as QEMU's igb model
//! runs it: descriptors between head and tail belong to the NIC; a frame
//! is DMAed only if the free descriptors hold all of it (else it is
//! dropped and counted); each descriptor's buffer gets `buf_len` bytes at
//! most; the last one is marked end-of-frame; "done" is written back last.
//!
//! DMA goes into `pages`: the pages dom0 has mapped for the guest. A DMA
//! to an address outside them is the fault the NIC path must never cause
//! (a write into a page whose grant is no longer held): it panics.
//!
//! Stopping: as on hardware, clearing the enable bit does not stop the
//! queue at once. A frame the NIC began (its descriptors fetched) still
//! lands, at the NIC's next step (a poll of the enable bit, or
//! [`SimNicQueue::tick`]); the bit reads clear `stop_after_polls` polls
//! later. With bus mastering cut, nothing lands at all.

use std::collections::BTreeMap;

use nic_queue::{
    disable_and_wait, igb_rx, igb_write_back, DescMem, Frame, IgbAdv, QueueEnable, RingError, RingStats, RxQueue, RxRing, Stop,
    PAGE,
};

/// A frame whose descriptors the NIC fetched and whose data it is writing.
struct InFlight {
    /// Per descriptor: its index, the bus address, the data, its write-back.
    writes: Vec<(usize, u64, Vec<u8>, u64)>,
}

pub struct SimNicQueue {
    descs: Vec<[u64; 2]>,
    head: usize,
    tail: usize,
    buf_len: usize,
    enabled: bool,
    /// Mapped guest pages by bus address.
    pub pages: BTreeMap<u64, Vec<u8>>,
    /// Frames dropped for want of descriptors (the pool's RXO).
    pub no_buffer_drops: u64,
    /// Frames DMAed.
    pub frames: u64,
    /// A frame's last write-back, held back: real NICs may write a frame's
    /// descriptors back one by one, so a reaper can see its start done.
    held: Option<(usize, u64)>,
    /// A frame begun ([`SimNicQueue::begin`]) and not landed yet.
    in_flight: Option<InFlight>,
    /// Polls of the enable bit, after it was cleared, before it reads clear
    /// (0: at the first, as QEMU's model; `u32::MAX`: never).
    pub stop_after_polls: u32,
    /// Polls left before the bit reads clear; `None` while enabled.
    stopping: Option<u32>,
    /// The function's bus-master bit.
    pub bus_master: bool,
}

impl SimNicQueue {
    pub fn new(size: usize, buf_len: usize) -> Self {
        Self {
            descs: vec![[0; 2]; size],
            head: 0,
            tail: 0,
            buf_len,
            enabled: true,
            pages: BTreeMap::new(),
            no_buffer_drops: 0,
            frames: 0,
            held: None,
            in_flight: None,
            stop_after_polls: 0,
            stopping: None,
            bus_master: true,
        }
    }

    /// The driver writes the tail register.
    pub fn write_tail(&mut self, tail: u16) {
        assert!(usize::from(tail) < self.descs.len(), "tail past the ring");
        self.tail = usize::from(tail);
    }

    /// The queue stopped (its enable bit reads clear): it restarts at
    /// descriptor 0 when enabled again.
    fn stopped(&mut self) {
        self.held = None;
        self.head = 0;
        self.tail = 0;
    }

    /// The driver enables the queue (empty: head and tail at 0). Without
    /// bus mastering it takes frames but writes none.
    pub fn enable(&mut self) {
        self.enabled = true;
        self.stopping = None;
    }

    /// The driver clears the bus-master bit: a frame in flight is lost,
    /// no DMA happens from now on.
    pub fn cut_bus_master(&mut self) {
        self.bus_master = false;
        self.in_flight = None;
    }

    /// The NIC's next step: a frame in flight lands (its data, then its
    /// write-backs).
    pub fn tick(&mut self) {
        let Some(f) = self.in_flight.take() else { return };
        if !self.bus_master {
            return;
        }
        for (_, addr, data, _) in &f.writes {
            self.dma(*addr, data);
        }
        for (i, _, _, wb) in f.writes {
            self.descs[i][1] = wb;
        }
        self.frames += 1;
    }

    fn dma(&mut self, addr: u64, data: &[u8]) {
        let page = addr & !(PAGE - 1);
        let off = (addr - page) as usize;
        let mem = self.pages.get_mut(&page).unwrap_or_else(|| panic!("NIC DMA into {addr:#x}: no mapped guest page there"));
        assert!(off + self.buf_len <= PAGE as usize, "descriptor buffer crosses its page");
        mem[off..off + data.len()].copy_from_slice(data);
    }

    /// A frame arrives and the NIC begins it: its descriptors are fetched
    /// now, its data lands at the NIC's next step. Returns whether it was
    /// taken (the queue enabled, room for all of it).
    pub fn begin(&mut self, frame: &[u8]) -> bool {
        self.tick();
        let need = frame.len().div_ceil(self.buf_len).max(1);
        if !self.running() || self.free_descs() < need {
            self.no_buffer_drops += 1;
            return false;
        }
        let mut writes = Vec::new();
        let chunks: Vec<&[u8]> = if frame.is_empty() { vec![frame] } else { frame.chunks(self.buf_len).collect() };
        for (k, chunk) in chunks.iter().enumerate() {
            let last = k + 1 == chunks.len();
            let st = igb_rx::STAT_DD | if last { igb_rx::STAT_EOP } else { 0 };
            writes.push((self.head, self.descs[self.head][0], chunk.to_vec(), igb_write_back(st, chunk.len() as u16)));
            self.head = (self.head + 1) % self.descs.len();
        }
        self.in_flight = Some(InFlight { writes });
        true
    }

    /// Takes frames: enabled, or disabled but not yet reporting itself
    /// stopped (a NIC that does not stop keeps receiving).
    fn running(&self) -> bool {
        self.enabled || matches!(self.stopping, Some(n) if n > 0)
    }

    fn free_descs(&self) -> usize {
        (self.tail + self.descs.len() - self.head) % self.descs.len()
    }

    /// Writes back the last descriptor of a frame received with
    /// `hold_last`.
    pub fn flush(&mut self) {
        if let Some((i, w)) = self.held.take() {
            self.descs[i][1] = w;
        }
    }

    /// A frame arrives for this pool. `status` adds checksum bits (or
    /// error bits) to the last descriptor's write-back, which waits for
    /// [`SimNicQueue::flush`] (or the next frame) with `hold_last`.
    /// Returns whether it was DMAed.
    pub fn receive(&mut self, frame: &[u8], status: u32, hold_last: bool) -> bool {
        self.tick();
        self.flush();
        let need = frame.len().div_ceil(self.buf_len).max(1);
        if !self.running() || !self.bus_master || self.free_descs() < need {
            self.no_buffer_drops += 1;
            return false;
        }
        let chunks: Vec<&[u8]> = if frame.is_empty() { vec![frame] } else { frame.chunks(self.buf_len).collect() };
        for (k, chunk) in chunks.iter().enumerate() {
            self.dma(self.descs[self.head][0], chunk);
            let last = k + 1 == chunks.len();
            let st = igb_rx::STAT_DD | if last { igb_rx::STAT_EOP | status } else { 0 };
            let wb = igb_write_back(st, chunk.len() as u16);
            if last && hold_last {
                self.held = Some((self.head, wb));
            } else {
                self.descs[self.head][1] = wb;
            }
            self.head = (self.head + 1) % self.descs.len();
        }
        self.frames += 1;
        true
    }
}

impl QueueEnable for SimNicQueue {
    fn clear_enable(&mut self) {
        self.enabled = false;
        if self.stopping.is_none() {
            self.stopping = Some(self.stop_after_polls);
        }
    }
    /// A register read: the NIC takes a step first (a frame in flight
    /// lands before the queue reads stopped).
    fn reads_enabled(&mut self) -> bool {
        self.tick();
        match self.stopping {
            None => self.enabled,
            Some(0) => {
                self.stopped();
                false
            }
            Some(n) => {
                self.stopping = Some(n.saturating_sub(if n == u32::MAX { 0 } else { 1 }));
                true
            }
        }
    }
    fn wait_10us(&mut self) {}
}

impl DescMem for SimNicQueue {
    fn write(&mut self, index: usize, desc: [u64; 2]) {
        self.descs[index] = desc;
    }
    fn read_word1(&self, index: usize) -> u64 {
        self.descs[index][1]
    }
}

/// A simulated igb VF receive queue behind [`RxQueue`]: the ring's
/// bookkeeping over [`SimNicQueue`].
pub struct SimVf {
    pub ring: Box<RxRing<u32, IgbAdv>>,
    pub nic: SimNicQueue,
}

impl SimVf {
    pub fn new(size: usize, buf_len: u32) -> Self {
        let mut ring: Box<RxRing<u32, IgbAdv>> = zerocopy::FromZeros::new_box_zeroed().expect("allocation");
        ring.configure(size, buf_len).expect("ring configuration");
        Self { ring, nic: SimNicQueue::new(size, buf_len as usize) }
    }
}

impl RxQueue for SimVf {
    type Token = u32;

    fn room(&self) -> usize {
        self.ring.room()
    }
    fn post(&mut self, dma: u64, token: u32) -> Result<(), RingError> {
        self.ring.post(&mut self.nic, dma, token)
    }
    fn kick(&mut self) {
        if let Some(tail) = self.ring.doorbell() {
            self.nic.write_tail(tail);
        }
    }
    fn reap(&mut self, budget: usize, f: &mut dyn FnMut(&Frame<u32>)) -> usize {
        self.ring.reap(&self.nic, budget, f)
    }
    /// As netback_mq's VF driver: disable and wait; a queue that does not
    /// stop loses bus mastering; only then are the buffers reclaimed.
    fn stop_and_reclaim(&mut self, f: &mut dyn FnMut(u32)) -> usize {
        if disable_and_wait(&mut self.nic) == Stop::Stuck {
            self.nic.cut_bus_master();
        }
        self.ring.reclaim(f)
    }
    fn restart(&mut self) {
        self.nic.enable();
    }
    fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}
