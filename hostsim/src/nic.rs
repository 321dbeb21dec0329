//! A simulated igb VF receive queue (one VMDq pool), as QEMU's igb model
//! runs it: descriptors between head and tail belong to the NIC; a frame
//! is DMAed only if the free descriptors hold all of it (else it is
//! dropped and counted); each descriptor's buffer gets `buf_len` bytes at
//! most; the last one is marked end-of-frame; "done" is written back last.
//!
//! DMA goes into `pages`: the pages dom0 has mapped for the guest. A DMA
//! to an address outside them is the fault the NIC path must never cause
//! (a write into a page whose grant is no longer held): it panics.

use std::collections::BTreeMap;

use nic_queue::{igb_rx, igb_write_back, DescMem, Frame, IgbAdv, RingError, RingStats, RxQueue, RxRing, PAGE};

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
        }
    }

    /// The driver writes the tail register.
    pub fn write_tail(&mut self, tail: u16) {
        assert!(usize::from(tail) < self.descs.len(), "tail past the ring");
        self.tail = usize::from(tail);
    }

    /// The driver clears the queue's enable bit: the NIC stops at once and
    /// the queue restarts at descriptor 0 when enabled again.
    pub fn disable(&mut self) {
        self.held = None;
        self.enabled = false;
        self.head = 0;
        self.tail = 0;
    }

    pub fn enable(&mut self) {
        self.enabled = true;
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
        self.flush();
        let need = frame.len().div_ceil(self.buf_len).max(1);
        if !self.enabled || self.free_descs() < need {
            self.no_buffer_drops += 1;
            return false;
        }
        let chunks: Vec<&[u8]> = if frame.is_empty() { vec![frame] } else { frame.chunks(self.buf_len).collect() };
        for (k, chunk) in chunks.iter().enumerate() {
            let addr = self.descs[self.head][0];
            let page = addr & !(PAGE - 1);
            let off = (addr - page) as usize;
            let mem = self
                .pages
                .get_mut(&page)
                .unwrap_or_else(|| panic!("NIC DMA into {addr:#x}: no mapped guest page there"));
            assert!(off + self.buf_len <= PAGE as usize, "descriptor buffer crosses its page");
            mem[off..off + chunk.len()].copy_from_slice(chunk);
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
    fn stop_and_reclaim(&mut self, f: &mut dyn FnMut(u32)) -> usize {
        self.nic.disable();
        self.ring.reclaim(f)
    }
    fn restart(&mut self) {
        self.nic.enable();
    }
    fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}
