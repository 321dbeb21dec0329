// SPDX-License-Identifier: GPL-2.0

//! The receive queue of an Intel 82576 (igb) VF: one VMDq pool, steered by
//! the MAC the PF assigned it, driven by us instead of `igbvf` and never
//! passed through to a guest.
//!
//! An administrator hands a VF to netback_mq the way any PCI function is
//! handed to a driver (`driver_override`, then `drivers_probe`). At probe
//! the VF is reset, the PF is asked (mailbox `VF_RESET`) for the MAC the
//! administrator set with `ip link set PF vf N mac M` (no MAC: the VF is
//! refused), the pool's frame limit is set (`SET_LPE`), and queue 0's
//! receive ring is filled with buffers.
//!
//! Buffers: for now a pool of dom0 pages (2 KB buffers, two per page, each
//! inside its page as a guest's granted page will be), so the queue is
//! exercised end to end before a guest's pages are posted into it. The
//! ring's bookkeeping is `nic_queue` (host-tested); each completed frame's
//! buffers are posted again.
//!
//! Teardown (unbind, module unload): interrupts masked, the queue disabled,
//! every posted buffer reclaimed, and only then is memory freed: the NIC
//! never writes into memory we gave back.
//!
//! The PF resetting the VF (its interface going down, `ethtool` changes, a
//! PF reset): the PF's reset clears the pool's queue. A watchdog (once a
//! second, as igbvf's) sees it (the mailbox's reset bits, the PF's control
//! message without "clear to send", or the queue's enable bit gone): the
//! queue is stopped, a guest on it goes back to grant copy (its buffers
//! answered), and once the PF answers a new reset handshake the queue is
//! programmed again and the guest is moved back onto it.

use kernel::device::Core;
use kernel::dma::Coherent;
use kernel::io::Io;
use kernel::pci;
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLockIrq};
use kernel::{io_read, io_write, new_spinlock_irq};

use crate::xen_sys;
use xen_sys::nic_queue::{
    disable_and_wait, guest_groups, mc_hash, parse_reply, pf_message, DescMem, Frame, IgbAdv, MbxError, Moderation, PfMessage,
    QueueEnable, RingError, RingStats, RxQueue, RxRing, Stop, VfRequest, FRAME_MAX_BUFS, MBX_WORDS,
};
use xen_sys::nicreg;
use xen_sys::pci::{pf_ifindex as pci_pf_ifindex, BusMaster, DmaDev, IrqHandler, IrqNext, MsixIrq};
use xen_sys::periodic::{Periodic, Tick};
use super::{MacFmt, NicUser, Token, VfPort};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The VF's register window (BAR 0).
const BAR_SIZE: usize = 0x4000;
type Bar = pci::DevresBar<BAR_SIZE>;

/// VF registers (Linux `igbvf/regs.h`), queue 0.
mod reg {
    pub(super) const CTRL: usize = 0x0000;
    pub(super) const CTRL_RST: u32 = 0x0400_0000;
    pub(super) const V2PMAILBOX: usize = 0x0C40;
    pub(super) const VMBMEM: usize = 0x0800;
    pub(super) const MBX_REQ: u32 = 0x01;
    pub(super) const MBX_ACK: u32 = 0x02;
    pub(super) const MBX_VFU: u32 = 0x04;
    pub(super) const MBX_PFSTS: u32 = 0x10;
    pub(super) const MBX_PFACK: u32 = 0x20;
    pub(super) const MBX_RSTI: u32 = 0x40;
    pub(super) const MBX_RSTD: u32 = 0x80;
    pub(super) const RDBAL: usize = 0x2800;
    pub(super) const RDBAH: usize = 0x2804;
    pub(super) const RDLEN: usize = 0x2808;
    pub(super) const SRRCTL: usize = 0x280C;
    pub(super) const SRRCTL_ONEBUF: u32 = 0x0200_0000;
    pub(super) const SRRCTL_DROP_EN: u32 = 0x8000_0000;
    pub(super) const RDH: usize = 0x2810;
    pub(super) const RDT: usize = 0x2818;
    pub(super) const RXDCTL: usize = 0x2828;
    /// Queue enable, with igbvf's thresholds (prefetch 16, host 8, write-back 1).
    pub(super) const RXDCTL_ON: u32 = 0x0200_0000 | 16 | (8 << 8) | (1 << 16);
    pub(super) const RXDCTL_ENABLE: u32 = 0x0200_0000;
    pub(super) const EIMS: usize = 0x1524;
    /// Interrupt throttling of vector n: the interval in µs in bits 14:2;
    /// CNT_IGNR keeps a write from restarting the count (as igb sets it).
    pub(super) const fn eitr(n: u32) -> usize {
        0x1680 + 4 * n as usize
    }
    pub(super) const EITR_INTERVAL: u32 = 0x7FFC;
    pub(super) const EITR_CNT_IGNR: u32 = 0x8000_0000;
    pub(super) const EIMC: usize = 0x1528;
    pub(super) const EIAC: usize = 0x152C;
    pub(super) const EIAM: usize = 0x1530;
    pub(super) const IVAR0: usize = 0x1700;
    pub(super) const IVAR_MISC: usize = 0x1740;
    /// Good packets and octets received (the pool's own counters).
    pub(super) const VFGPRC: usize = 0x0F10;
}

/// MSI-X vectors: 0 transmit, 1 receive, 2 mailbox (igbvf's layout).
const VECTORS: u32 = 3;
const RX_VECTOR: u32 = 1;
const RX_VECTOR_BIT: u32 = 1 << RX_VECTOR;

/// Descriptors in the receive ring, and bytes per buffer.
const RING: usize = 128;
const BUF: usize = 2048;
/// Frames the pool's interrupt thread reaps per pass.
const BUDGET: usize = 32;
/// The largest frame the pool takes: MTU 1500, Ethernet header, VLAN tag, FCS.
const MAX_FRAME: u32 = 1522;
/// How often the watchdog looks for a reset by the PF (igbvf's period).
const WATCHDOG_MS: u32 = 1000;

/// The VF's state as the watchdog sees it.
mod health {
    /// The queue receives (into the pool or a guest's pages).
    pub(super) const RUNNING: u8 = 0;
    /// The PF reset the VF: the queue is stopped until a new handshake.
    pub(super) const RESET: u8 = 1;
}

/// Descriptor memory: `RING` descriptors of two 64-bit words.
struct Descs(Coherent<[u64]>);

impl Descs {
    fn write_word(&self, i: usize, v: u64) -> Result {
        io_write!(self.0, [try: i], v);
        Ok(())
    }
    fn read_word(&self, i: usize) -> Result<u64> {
        Ok(io_read!(self.0, [try: i]))
    }
}

impl DescMem for Descs {
    fn write(&mut self, index: usize, desc: [u64; 2]) {
        // In range: the ring never names a descriptor past `RING`.
        let _ = self.write_word(2 * index, desc[0]).and(self.write_word(2 * index + 1, desc[1]));
    }
    fn read_word1(&self, index: usize) -> u64 {
        let w = self.read_word(2 * index + 1).unwrap_or(0);
        // Nothing about the buffer is read before "done" was seen.
        kernel::sync::barrier::dma_mb(kernel::sync::barrier::Read);
        w
    }
}

/// A guest's buffer: one whole page (a grant).
const GUEST_BUF: usize = 4096;

struct RxState {
    ring: KBox<RxRing<Token, IgbAdv>>,
    descs: Descs,
    /// Bytes of every frame reaped, the pool's and a guest's alike (as
    /// the ring's frame count).
    bytes: u64,
    /// The receive interrupt's moderation (`nic_irq_rate`).
    itr: Moderation,
    /// The ring holds a guest's pages (between attach and detach), not
    /// the pool's buffers: the pool's reaping leaves it alone.
    guest: bool,
}

/// One VF's receive side: the interrupt's target. Its ring holds either
/// the VF's own pool of dom0 buffers, or (attached) a guest's pages.
#[pin_data]
pub(crate) struct VfRx {
    bar: Bar,
    bufs: Coherent<[u8]>,
    /// Taken in the interrupt handler too: interrupts off while held.
    #[pin]
    state: SpinLockIrq<RxState>,
    /// The MAC the PF steers into this pool (a reset may change it): bit
    /// 48 set, the MAC in the low 48 bits.
    mac: AtomicU64,
    /// The PF's network device: frames for the guest go out there and the
    /// NIC's loopback brings them into the pool.
    pf_ifindex: Option<i32>,
    /// What guest pages are DMA-mapped for.
    dma: DmaDev,
    /// Cut when the queue does not stop as asked, and at unbind.
    master: BusMaster,
    /// The vif queue whose guest's pages the ring holds (none: the pool).
    #[pin]
    user: SpinLockIrq<Option<Arc<dyn NicUser>>>,
    /// Unbound: the registers are gone, the queue was stopped.
    gone: AtomicBool,
    /// Its queue did not stop when disabled: it serves no guest until the
    /// VF is bound again.
    broken: AtomicBool,
    /// `health::RUNNING` or `health::RESET`.
    health: AtomicU8,
    /// The guest queue the PF's reset took off the VF, or one waiting for
    /// the PF to join its vif's bridge: moved (back) by the watchdog.
    #[pin]
    displaced: SpinLockIrq<Option<Arc<dyn NicUser>>>,
    /// The pool's frame counter when the queue was last programmed.
    pool_base: AtomicU32,
    /// Failed handshakes since the PF's reset (logged once).
    retries: AtomicU32,
}

/// EITR's value for an interval of `us` microseconds (0: no throttling;
/// the field holds 8191 µs at most, about 122 interrupts per second).
fn eitr_value(us: u32) -> u32 {
    if us == 0 {
        return 0;
    }
    ((us.min(reg::EITR_INTERVAL >> 2) << 2) & reg::EITR_INTERVAL) | reg::EITR_CNT_IGNR
}

fn mac_bits(mac: [u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[1] = 1;
    b[2..].copy_from_slice(&mac);
    u64::from_be_bytes(b)
}

impl VfRx {
    /// Posts every buffer of the pool into the (empty) ring.
    fn fill_pool(&self, q: &mut VfQueue<'_, '_>) {
        let mut t: Token = 0;
        while q.room() > 0 && q.post(self.buf_dma(t), t).is_ok() {
            t += 1;
        }
        q.kick();
    }

    fn buf_dma(&self, token: Token) -> u64 {
        self.bufs.dma_address() + (usize::from(token) * BUF) as u64
    }

    /// Runs `f` on the queue, locked; `None` once the VF is gone.
    fn with_queue<R>(&self, f: impl FnOnce(&mut VfQueue<'_, '_>) -> R) -> Option<R> {
        let bar = self.bar.try_access()?;
        let mut st = self.state.lock();
        Some(f(&mut VfQueue { st: &mut st, bar: &bar, master: &self.master, broken: &self.broken }))
    }

    /// Reaps up to `BUDGET` completed frames of the pool, posts their
    /// buffers again, kicks. Nothing while a guest's pages are in the ring.
    fn poll(&self) -> usize {
        self.with_queue(|q| {
            if q.st.guest {
                return 0;
            }
            // Under a spinlock: no allocation; the reaped buffers wait here.
            let mut done = [0 as Token; BUDGET * FRAME_MAX_BUFS];
            let mut count = 0;
            let n = q.reap(BUDGET, &mut |f| {
                for (t, _) in f.buffers() {
                    // Always in range: BUDGET frames of FRAME_MAX_BUFS at most.
                    if let Some(d) = done.get_mut(count) {
                        *d = t;
                        count += 1;
                    }
                }
            });
            for &t in &done[..count] {
                // Room for each: it was just reaped.
                let _ = q.post(self.buf_dma(t), t);
            }
            q.kick();
            n
        })
        .unwrap_or(0)
    }
}

impl IrqHandler for VfRx {
    /// The receive vector fired; the NIC masked it (EIAM). A guest's queue
    /// reaps in its NAPI poll and re-arms it; the pool is reaped in the
    /// interrupt thread. Nothing is reaped in hard-IRQ context.
    fn irq(&self) -> IrqNext {
        if self.is_gone() || self.in_reset() {
            return IrqNext::Handled;
        }
        let user = self.user.lock().clone();
        match user {
            Some(q) => {
                q.nic_event();
                IrqNext::Handled
            }
            None => IrqNext::WakeThread,
        }
    }

    /// The pool's frames, `BUDGET` at a time, then the vector re-armed.
    fn thread(&self) {
        for _ in 0..RING / BUDGET + 1 {
            if self.poll() < BUDGET {
                break;
            }
        }
        // A guest attached meanwhile re-arms from its own poll.
        let u = self.user.lock();
        if u.is_none() {
            self.rearm();
        }
    }
}

impl VfPort for VfRx {
    fn ring_size(&self) -> usize {
        RING
    }

    fn dma_dev(&self) -> &DmaDev {
        &self.dma
    }

    fn pf_ifindex(&self) -> Option<i32> {
        self.pf_ifindex
    }

    /// Unbound, or its queue would not stop: no guest from now on.
    fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire) || self.broken.load(Ordering::Acquire)
    }

    /// The PF reset the VF: its queue is stopped until the watchdog has
    /// programmed it again.
    fn in_reset(&self) -> bool {
        self.health.load(Ordering::Acquire) != health::RUNNING
    }

    fn mac(&self) -> [u8; 6] {
        let b = self.mac.load(Ordering::Acquire).to_be_bytes();
        [b[2], b[3], b[4], b[5], b[6], b[7]]
    }

    /// Hands the ring to `user`'s guest: the pool's buffers are taken back
    /// and the ring starts empty, with page-sized buffers. The guest's
    /// queue posts into it from now on, its NAPI poll reaps it, and
    /// re-arms the interrupt when it completes ([`VfRx::rearm`]).
    fn attach(&self, user: Arc<dyn NicUser>) -> Result {
        // Under the user lock: an unbind (which sets `gone` under it) and
        // a reset by the PF (which sets `health` under it) come wholly
        // before or after, so a queue they stopped is never started here.
        let mut u = self.user.lock();
        if self.is_gone() || self.in_reset() || u.is_some() {
            return Err(EBUSY);
        }
        self.with_queue(|q| {
            q.stop_and_reclaim(&mut |_| {});
            if self.is_gone() {
                // The pool's queue would not stop: no guest pages into it.
                return Err(EIO);
            }
            q.st.ring.configure(RING, GUEST_BUF as u32).map_err(|_| EINVAL)?;
            q.st.guest = true;
            q.restart();
            Ok::<(), Error>(())
        })
        .ok_or(ENXIO)??;
        *u = Some(user);
        Ok(())
    }

    /// Takes the guest's buffers back (each token to `f`, in order) once
    /// the queue is stopped, and gives the ring back to the pool. One
    /// section under both locks: neither an unbind nor the watchdog sees
    /// the queue between its stop and its restart. With `wait`, the
    /// guest's queue is kept to be moved back (`VfRx::wait_for`).
    fn detach(&self, wait: bool, f: &mut dyn FnMut(Token)) -> usize {
        let mut u = self.user.lock();
        let n = self.with_queue(|q| {
            let n = q.stop_and_reclaim(f);
            q.st.guest = false;
            // After an unbind nothing starts again; after a reset by the
            // PF the watchdog programs the queue once the PF answers.
            if !self.is_gone() && !self.in_reset() && q.st.ring.configure(RING, BUF as u32).is_ok() {
                q.restart();
                self.fill_pool(q);
                q.unmask();
            }
            n
        });
        let n = match n {
            Some(n) => n,
            // Unbound: unbind stopped the queue (waiting for it) before the
            // registers went; only the bookkeeping is left.
            None => {
                let mut st = self.state.lock();
                st.guest = false;
                st.ring.reclaim(f)
            }
        };
        let user = u.take();
        drop(u);
        if wait {
            if let Some(user) = user {
                self.wait_for(user);
            }
        }
        n
    }

    /// Keeps `q` to be moved onto this VF by the watchdog once it can be
    /// (`QueueCtx::retry_nic`, which checks again and waits again if not).
    fn wait_for(&self, q: Arc<dyn NicUser>) {
        // `gone` read under the lock unbind empties the slot under after
        // setting it: nothing stays parked in a VF that went. What is
        // replaced (or refused) is dropped outside the lock.
        let old = {
            let mut d = self.displaced.lock();
            if self.is_gone() {
                Some(q)
            } else {
                d.replace(q)
            }
        };
        drop(old);
    }

    /// The guest queue's NAPI poll completed: the receive interrupt may
    /// fire again (the NIC masked it when it fired: EIAM).
    fn rearm(&self) {
        // Under the queue's lock, as unbind and the PF's reset mask it:
        // never unmasked after them.
        self.with_queue(|q| {
            if !self.is_gone() && !self.in_reset() {
                q.unmask();
            }
        });
    }

    fn with_queue(&self, f: &mut dyn FnMut(&mut dyn RxQueue<Token = Token>)) -> bool {
        VfRx::with_queue(self, |q| f(q)).is_some()
    }
}

/// Queue 0's enable bit, for `disable_and_wait`.
struct Enable<'a, 'b>(&'a pci::Bar<'b, BAR_SIZE>);

impl QueueEnable for Enable<'_, '_> {
    fn clear_enable(&mut self) {
        self.0.write32(0, reg::RXDCTL);
    }
    fn reads_enabled(&mut self) -> bool {
        self.0.read32(reg::RXDCTL) & reg::RXDCTL_ENABLE != 0
    }
    fn wait_10us(&mut self) {
        kernel::time::delay::udelay(kernel::time::Delta::from_micros(10));
    }
}

/// Queue 0 of a VF, locked: what netback_mq drives through [`RxQueue`].
pub(crate) struct VfQueue<'a, 'b> {
    st: &'a mut RxState,
    bar: &'a pci::Bar<'b, BAR_SIZE>,
    master: &'a BusMaster,
    broken: &'a AtomicBool,
}

impl VfQueue<'_, '_> {
    /// Unmasks the receive interrupt, with the moderation interval the
    /// frames since the last one call for written first if it changed.
    fn unmask(&mut self) {
        self.program_itr();
        self.bar.write32(RX_VECTOR_BIT, reg::EIMS);
    }

    /// Writes the moderation interval the frames since the last interrupt
    /// call for, if it changed.
    fn program_itr(&mut self) {
        if let Some(us) = self.st.itr.rearm() {
            self.bar.write32(eitr_value(us), reg::eitr(RX_VECTOR));
        }
    }

    /// Clears the queue's enable bit and waits until the NIC reports it
    /// clear (`disable_and_wait`): the frame in flight has landed and no
    /// other will. A queue that does not stop loses the VF's bus
    /// mastering, so that no DMA of any kind follows. Atomic context
    /// (busy-waits 1 ms at most).
    fn disable(&mut self) {
        if disable_and_wait(&mut Enable(self.bar)) == Stop::Stopped {
            return;
        }
        let guest = self.st.guest;
        if !self.broken.swap(true, Ordering::AcqRel) {
            pr_err!(
                "igb VF: receive queue still enabled 1 ms after it was disabled: the VF serves no guest until it is bound again{}\n",
                if guest { "; bus mastering cut (a guest's pages were posted)" } else { "" }
            );
        }
        if guest {
            // The guest's pages go back once this returns.
            self.master.cut();
        }
    }
}

impl RxQueue for VfQueue<'_, '_> {
    type Token = Token;

    fn room(&self) -> usize {
        self.st.ring.room()
    }
    fn post(&mut self, dma: u64, token: Token) -> core::result::Result<(), RingError> {
        let RxState { ring, descs, .. } = &mut *self.st;
        ring.post(descs, dma, token)
    }
    fn kick(&mut self) {
        if let Some(tail) = self.st.ring.doorbell() {
            self.bar.write32(u32::from(tail), reg::RDT);
        }
    }
    fn reap(&mut self, budget: usize, f: &mut dyn FnMut(&Frame<Token>)) -> usize {
        let RxState { ring, descs, itr, bytes: total, .. } = &mut *self.st;
        let mut bytes = 0;
        let n = ring.reap(descs, budget, &mut |frame: &Frame<Token>| {
            bytes += frame.len() as u64;
            f(frame)
        });
        *total += bytes;
        itr.count(n, bytes);
        n
    }
    fn stop_and_reclaim(&mut self, f: &mut dyn FnMut(Token)) -> usize {
        // Reclaimed only once the NIC has stopped (or cannot DMA at all).
        self.disable();
        self.st.ring.reclaim(f)
    }
    fn restart(&mut self) {
        if self.master.is_cut() || self.broken.load(Ordering::Acquire) {
            // A queue that would not stop is never started again.
            return;
        }
        let base = self.st.descs.0.dma_address();
        let bar = self.bar;
        bar.write32(base as u32, reg::RDBAL);
        bar.write32((base >> 32) as u32, reg::RDBAH);
        bar.write32((RING * 16) as u32, reg::RDLEN);
        bar.write32(0, reg::RDH);
        bar.write32(0, reg::RDT);
        let bsize = self.st.ring.buf_len() >> 10;
        bar.write32(reg::SRRCTL_ONEBUF | reg::SRRCTL_DROP_EN | bsize, reg::SRRCTL);
        bar.write32(reg::RXDCTL_ON, reg::RXDCTL);
        // Written again with the next unmask: the queue was reprogrammed
        // (a reset by the PF also clears the VF's throttling).
        self.st.itr.forget_programmed();
    }
    fn stats(&self) -> RingStats {
        self.st.ring.stats()
    }
}

/// The VF's registers as the mailbox reaches them: the BAR itself at
/// probe, or (from the watchdog, which sleeps between accesses) the
/// revocable BAR, taken for each access (a gone VF reads 0).
trait Regs {
    fn reg_read(&self, off: usize) -> u32;
    fn reg_write(&self, v: u32, off: usize);
}

impl Regs for pci::Bar<'_, BAR_SIZE> {
    fn reg_read(&self, off: usize) -> u32 {
        self.try_read32(off).unwrap_or(0)
    }
    fn reg_write(&self, v: u32, off: usize) {
        let _ = self.try_write32(v, off);
    }
}

impl Regs for Bar {
    fn reg_read(&self, off: usize) -> u32 {
        self.try_access_with(|b| b.try_read32(off).unwrap_or(0)).unwrap_or(0)
    }
    fn reg_write(&self, v: u32, off: usize) {
        self.try_access_with(|b| b.try_write32(v, off));
    }
}

/// The mailbox to the PF, as igbvf drives it. Bits the PF sets are
/// cleared by reading, so those seen are kept until used.
struct Mailbox<'a, R: Regs> {
    bar: &'a R,
    seen: u32,
}

impl<R: Regs> Mailbox<'_, R> {
    fn read(&mut self) -> u32 {
        let v = self.bar.reg_read(reg::V2PMAILBOX);
        self.seen |= v & (reg::MBX_PFSTS | reg::MBX_PFACK | reg::MBX_RSTD);
        v
    }

    fn wait(&mut self, bit: u32) -> core::result::Result<(), VfInit> {
        for _ in 0..1000 {
            self.read();
            if self.seen & bit != 0 {
                self.seen &= !bit;
                return Ok(());
            }
            xen_sys::sleep_ms(1);
        }
        Err(VfInit::NoAnswer)
    }

    fn lock(&mut self) -> Result {
        for _ in 0..1000 {
            self.bar.reg_write(reg::MBX_VFU, reg::V2PMAILBOX);
            if self.read() & reg::MBX_VFU != 0 {
                return Ok(());
            }
            xen_sys::sleep_ms(1);
        }
        Err(EBUSY)
    }

    /// Sends `req` and returns the PF's reply.
    fn call(&mut self, req: &VfRequest<'_>) -> core::result::Result<[u32; MBX_WORDS], VfInit> {
        let mut words = [0u32; MBX_WORDS];
        let n = req.encode(&mut words).map_err(|_| VfInit::Garbled)?;
        self.lock().map_err(|_| VfInit::NoAnswer)?;
        // An acknowledgement or message left from before is not the answer.
        self.seen = 0;
        for (i, w) in words[..n].iter().enumerate() {
            self.bar.reg_write(*w, reg::VMBMEM + 4 * i);
        }
        self.bar.reg_write(reg::MBX_REQ, reg::V2PMAILBOX);
        self.wait(reg::MBX_PFACK)?;
        self.wait(reg::MBX_PFSTS)?;
        self.lock().map_err(|_| VfInit::NoAnswer)?;
        Ok(self.take_message())
    }

    /// Reads the message the PF left and acknowledges it.
    fn take_message(&mut self) -> [u32; MBX_WORDS] {
        let mut msg = [0u32; MBX_WORDS];
        for (i, w) in msg.iter_mut().enumerate() {
            *w = self.bar.reg_read(reg::VMBMEM + 4 * i);
        }
        self.bar.reg_write(reg::MBX_ACK, reg::V2PMAILBOX);
        msg
    }
}

/// Why the reset handshake with the PF failed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum VfInit {
    /// The PF signals a reset in progress.
    PfInReset,
    /// The PF did not answer in 1 s (its driver gone, or its interface down).
    NoAnswer,
    /// The PF assigned the VF no MAC.
    NoMac,
    /// The PF's reply made no sense.
    Garbled,
    /// The PF refused the frame limit.
    LpeRefused,
}

impl kernel::fmt::Display for VfInit {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        f.write_str(match self {
            VfInit::PfInReset => "the PF is still in reset (is its interface up?)",
            VfInit::NoAnswer => "no answer from the PF in 1 s (is its interface up?)",
            VfInit::NoMac => "the PF assigned no MAC (ip link set PF vf N mac M): VF not used",
            VfInit::Garbled => "garbled reply from the PF",
            VfInit::LpeRefused => "the PF refused the frame limit",
        })
    }
}

impl From<VfInit> for Error {
    fn from(e: VfInit) -> Error {
        match e {
            VfInit::PfInReset => EAGAIN,
            VfInit::NoAnswer => ETIMEDOUT,
            VfInit::NoMac => ENODEV,
            VfInit::Garbled | VfInit::LpeRefused => EIO,
        }
    }
}

/// Resets the VF and asks the PF for its MAC and frame limit, and for
/// the multicast groups its guest needs (`guest_groups`).
fn reset_and_configure(bar: &impl Regs) -> core::result::Result<[u8; 6], VfInit> {
    bar.reg_write(reg::CTRL_RST, reg::CTRL);
    let mut mbx = Mailbox { bar, seen: 0 };
    let mut in_reset = true;
    for _ in 0..200 {
        if mbx.read() & (reg::MBX_RSTI | reg::MBX_RSTD) == 0 {
            in_reset = false;
            break;
        }
        xen_sys::sleep_ms(1);
    }
    if in_reset {
        return Err(VfInit::PfInReset);
    }
    let reset = VfRequest::Reset;
    let mac = match parse_reply(&reset, &mbx.call(&reset)?) {
        Ok(Some(mac)) => mac,
        Ok(None) | Err(MbxError::Refused) => return Err(VfInit::NoMac),
        Err(_) => return Err(VfInit::Garbled),
    };
    let lpe = VfRequest::SetLpe(MAX_FRAME);
    if parse_reply(&lpe, &mbx.call(&lpe)?).is_err() {
        return Err(VfInit::LpeRefused);
    }
    let hashes = guest_groups(mac).map(mc_hash);
    let mc = VfRequest::SetMulticast(&hashes);
    if parse_reply(&mc, &mbx.call(&mc)?).is_err() {
        // Not fatal: only multicast (IPv6 neighbour discovery) is missed.
        pr_warn!("igb VF {}: the PF refused the guest's multicast groups\n", MacFmt(mac));
    }
    Ok(mac)
}

impl VfRx {
    /// Whether the PF reset the VF since the last look: its mailbox's
    /// reset bits, a control message without "clear to send", or the
    /// queue's enable bit cleared under us. Acknowledges the PF's message.
    fn reset_by_pf(&self) -> bool {
        let mut mbx = Mailbox { bar: &self.bar, seen: 0 };
        let v = mbx.read();
        let mut reset = v & (reg::MBX_RSTI | reg::MBX_RSTD) != 0;
        if v & reg::MBX_PFSTS != 0 && mbx.lock().is_ok() {
            reset |= pf_message(mbx.take_message()[0]) == PfMessage::Reset;
        }
        // Read under the queue's lock: attach and detach reprogram it.
        let disabled = self.with_queue(|q| q.bar.read32(reg::RXDCTL) & reg::RXDCTL_ENABLE == 0).unwrap_or(false);
        reset || disabled
    }

    /// The PF reset the VF: stop the queue and hand a guest on it back to
    /// grant copy (its NAPI poll takes the buffers back).
    fn begin_reset(&self) {
        // Under the user lock (attach and detach are excluded) and the
        // queue's (the stop and the new health are seen together).
        let u = self.user.lock();
        let user = u.clone();
        self.retries.store(0, Ordering::Relaxed);
        self.with_queue(|q| {
            self.health.store(health::RESET, Ordering::Release);
            q.bar.write32(!0, reg::EIMC);
            if user.is_some() {
                // The guest's pages stay posted until its poll takes them
                // back (detach); the NIC writes into none of them now.
                q.disable();
            } else {
                // The pool's own buffers: nothing but bookkeeping.
                q.stop_and_reclaim(&mut |_| {});
            }
        });
        drop(u);
        pr_warn!(
            "igb VF {}: reset by its PF (the PF's interface went down or was reconfigured): receive queue stopped{}\n",
            MacFmt(self.mac()),
            if user.is_some() { ", its guest goes back to grant copy" } else { "" }
        );
        if let Some(q) = user {
            q.nic_event();
            self.wait_for(q);
        }
    }

    /// Programs the queue again once the PF answers a reset handshake,
    /// and moves the displaced guest back onto it. Process context.
    fn recover(this: &Arc<Self>) {
        if this.user.lock().is_some() {
            // The guest's queue has not let go of the ring yet.
            return;
        }
        let bar = &this.bar;
        let mac = match reset_and_configure(bar) {
            Ok(mac) => mac,
            Err(e) => {
                if this.retries.fetch_add(1, Ordering::Relaxed) == 0 {
                    pr_warn!("igb VF {}: waiting for the PF: {}\n", MacFmt(this.mac()), e);
                }
                if e == VfInit::NoMac {
                    // Unassigned by the administrator: no guest can use it.
                    nicreg::unregister(this);
                    let d = this.displaced.lock().take();
                    drop(d);
                }
                return;
            }
        };
        bar.reg_write(0, reg::RXDCTL);
        xen_sys::sleep_ms(10);
        this.pool_base.store(bar.reg_read(reg::VFGPRC), Ordering::Relaxed);
        let old = this.mac();
        if mac != old {
            nicreg::unregister(this);
            this.mac.store(mac_bits(mac), Ordering::Release);
            pr_info!("igb VF {}: the PF now steers MAC {} into it\n", MacFmt(old), MacFmt(mac));
            // Any guest with the old MAC no longer gets its frames here.
            let d = this.displaced.lock().take();
            drop(d);
        }
        // Whatever the pool had posted (a detach may have restarted it
        // before the reset was seen) comes back first.
        let ok = this
            .with_queue(|q| {
                q.stop_and_reclaim(&mut |_| {});
                q.st.ring.configure(RING, BUF as u32).is_ok()
            })
            .unwrap_or(false);
        if !ok || start_rx(this).is_err() {
            pr_err!("igb VF {}: receive queue not restarted after the PF's reset\n", MacFmt(mac));
            return;
        }
        if mac != old {
            let _ = nicreg::register(mac, this.clone());
        }
        this.health.store(health::RUNNING, Ordering::Release);
        pr_info!("igb VF {}: the PF's reset is over: receive queue up again\n", MacFmt(mac));
        let displaced = this.displaced.lock().take();
        if let Some(q) = displaced {
            q.retry_nic();
        }
    }
}

impl Tick for VfRx {
    /// The watchdog: a reset by the PF noticed, or recovered from.
    fn tick(this: &Arc<Self>) {
        // A VF whose queue would not stop stays off until bound again.
        if this.is_gone() || this.master.is_cut() {
            return;
        }
        if !this.in_reset() {
            if this.reset_by_pf() {
                this.begin_reset();
                return;
            }
            let user = this.user.lock().clone();
            match user {
                // The guest's poll looks at the vif's bridge again, even
                // with no traffic (it ends the path if the PF left it).
                Some(q) => q.nic_event(),
                None => {
                    // A guest's queue waiting for this VF asks again.
                    let waiting = this.displaced.lock().take();
                    if let Some(q) = waiting {
                        q.retry_nic();
                    }
                }
            }
            return;
        }
        Self::recover(this);
    }
}

/// Starts queue 0 (disabled by the reset) with every buffer of the pool
/// posted, then unmasks its interrupts. Atomic context.
fn start_rx(rx: &VfRx) -> Result {
    rx.with_queue(|q| {
        q.restart();
        rx.fill_pool(q);
        q.program_itr();
    })
    .ok_or(ENXIO)?;
    let bar = rx.bar.try_access().ok_or(ENXIO)?;
    // Receive queue 0 on vector 1, transmit queue 0 on vector 0, mailbox on 2.
    bar.write32(0x80 | RX_VECTOR | (0x80 << 8), reg::IVAR0);
    bar.write32(0x80 | 2, reg::IVAR_MISC);
    let all = (1 << VECTORS) - 1;
    bar.write32(all, reg::EIAC);
    bar.write32(all, reg::EIAM);
    bar.write32(all, reg::EIMS);
    Ok(())
}

/// A VF netback_mq drives.
pub(crate) struct IgbVf {
    rx: Arc<VfRx>,
    irq: MsixIrq<VfRx>,
    /// Looks for a reset by the PF; stopped first at unbind.
    watchdog: Periodic<VfRx>,
}

// No device matches by ID: a VF is ours only when an administrator names
// netback_mq in its `driver_override` (then the PCI core binds it whatever
// the table says), so VFs meant for igbvf or passthrough are never taken.
// 0xffff is no device's ID.
kernel::pci_device_table!(
    PCI_TABLE,
    <IgbVf as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_id(pci::Vendor::INTEL, 0xffff), ())]
);

/// The 82576 VF's device ID; probe refuses any other function.
const IGB_VF_DEVICE: u16 = 0x10ca;

impl pci::Driver for IgbVf {
    type IdInfo = ();
    type Data<'bound> = Self;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self, Error> + 'bound {
        if pdev.vendor_id() != pci::Vendor::INTEL || pdev.device_id() != IGB_VF_DEVICE {
            pr_warn!("only Intel 82576 VFs (8086:{:04x}) can be driven\n", IGB_VF_DEVICE);
            return Err(ENODEV);
        }
        pdev.enable_device_mem()?;
        pdev.set_master();
        let bar = pdev.iomap_region_sized::<BAR_SIZE>(0, c"netback_mq")?;
        let mac = reset_and_configure(&bar).inspect_err(|e| pr_warn!("igb VF: {}\n", e))?;
        let pool_base = bar.read32(reg::VFGPRC);
        // The reset disabled the queue; give the NIC igbvf's 10 ms to settle.
        bar.write32(0, reg::RXDCTL);
        xen_sys::sleep_ms(10);
        // Kept past probe (the interrupt uses it): revoked when unbound.
        let bar = bar.into_devres()?;
        let dev: &kernel::device::Device<kernel::device::Bound> = pdev.as_ref();
        let descs = Descs(Coherent::<u64>::zeroed_slice(dev, 2 * RING, GFP_KERNEL)?);
        let bufs = Coherent::<u8>::zeroed_slice(dev, RING * BUF, GFP_KERNEL)?;
        let mut ring = xen_sys::new_zeroed_box::<RxRing<Token, IgbAdv>>()?;
        ring.configure(RING, BUF as u32).map_err(|_| EINVAL)?;
        let rx = Arc::pin_init(
            pin_init!(VfRx {
                bar,
                bufs,
                state <- new_spinlock_irq!(RxState { ring, descs, bytes: 0, itr: Moderation::new(crate::nic_itr_mode()), guest: false }, "igbvf_rx"),
                mac: AtomicU64::new(mac_bits(mac)),
                pf_ifindex: pci_pf_ifindex(pdev),
                dma: DmaDev::of(pdev),
                master: BusMaster::of(pdev),
                user <- new_spinlock_irq!(None, "igbvf_user"),
                gone: AtomicBool::new(false),
                broken: AtomicBool::new(false),
                health: AtomicU8::new(health::RUNNING),
                displaced <- new_spinlock_irq!(None, "igbvf_displaced"),
                pool_base: AtomicU32::new(pool_base),
                retries: AtomicU32::new(0),
            }),
            GFP_KERNEL,
        )?;
        let irq = MsixIrq::request(pdev, VECTORS, RX_VECTOR, c"netback_mq-vf-rx", rx.clone())?;
        if let Err(e) = start_rx(&rx) {
            // Nothing posted may stay with the NIC once we free it.
            rx.with_queue(|q| q.stop_and_reclaim(&mut |_| {}));
            return Err(e);
        }
        let watchdog = match Periodic::start(rx.clone(), WATCHDOG_MS) {
            Ok(w) => w,
            Err(e) => {
                rx.with_queue(|q| q.stop_and_reclaim(&mut |_| {}));
                return Err(e);
            }
        };
        if let Err(e) = nicreg::register(mac, rx.clone()) {
            pr_warn!("igb VF: another VF is steered by the same MAC ({:?}): not offered to guests\n", e);
        }
        pr_info!(
            "igb VF: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} from the PF, receive queue up ({} buffers of {} bytes)\n",
            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
            RING - 1,
            BUF
        );
        Ok(IgbVf { rx, irq, watchdog })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self>) {
        let _ = pdev;
        let rx = &this.rx;
        this.watchdog.stop();
        nicreg::unregister(rx);
        // First `gone`, under the user lock: from here no attach, detach or
        // recovery starts the queue again (they look under that lock).
        let user = {
            let u = rx.user.lock();
            rx.gone.store(true, Ordering::Release);
            u.clone()
        };
        // Then no queue waits here any more (`wait_for` looks at `gone`
        // under this lock); dropped outside it.
        let waiting = rx.displaced.lock().take();
        drop(waiting);
        // Then the NIC stopped, waiting for it: no interrupt, no DMA into
        // any posted buffer, before the registers go.
        let pool_frames = rx
            .with_queue(|q| {
                q.bar.write32(!0, reg::EIMC);
                q.disable();
                q.bar.read32(reg::VFGPRC).wrapping_sub(rx.pool_base.load(Ordering::Relaxed))
            })
            .unwrap_or(0);
        this.irq.synchronize();
        // And bus mastering off: the function does no DMA while unbound.
        rx.master.cut();
        if let Some(q) = user {
            // A guest's pages are in the ring: its queue takes them back
            // (answering their requests) and goes on by grant copy.
            pr_warn!(
                "igb VF {}: unbound while serving a guest: its queue falls back to grant copy\n",
                MacFmt(rx.mac())
            );
            q.nic_event();
            drop(q);
            // Its poll takes the pages back (and ends their DMA mappings)
            // while the VF is still bound: wait for that, 1 s at most.
            for _ in 0..100 {
                if rx.user.lock().is_none() {
                    return;
                }
                xen_sys::sleep_ms(10);
            }
            pr_warn!(
                "igb VF {}: the guest's queue did not let go of the VF within 1 s: its pages come back when it next polls or disconnects\n",
                MacFmt(rx.mac())
            );
            return;
        }
        // What completed before the stop, then every buffer still posted.
        while rx.poll() == BUDGET {}
        let (reclaimed, s, bytes) = {
            let mut st = rx.state.lock();
            (st.ring.reclaim(&mut |_| {}), st.ring.stats(), st.bytes)
        };
        pr_info!(
            "igb VF {}: {} frames ({} bytes) received, {} dropped, {} checksums verified; {} buffers reclaimed; the pool counted {} frames since probe\n",
            MacFmt(rx.mac()),
            s.frames, bytes, s.dropped, s.csum_verified, reclaimed, pool_frames
        );
    }
}
