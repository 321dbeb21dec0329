// SPDX-License-Identifier: GPL-2.0

//! The NIC layer: VF receive queues that DMA frames straight into a
//! guest's granted pages.
//!
//! The vif side (`vif.rs`, `nicrx.rs`, `queue.rs`) speaks only
//! [`VfPort`]: find the VF steered by the guest's MAC, hand it the ring
//! (`attach`), post and reap through [`RxQueue`], take every buffer back
//! once the queue is stopped (`detach`). The VF calls the guest's queue
//! back through [`NicUser`] (an interrupt, a move back after a reset), so
//! nothing here imports the vif.
//!
//! One file per NIC family: `igb.rs` (Intel 82576 VFs). A new family (the
//! ixgbe VF, say) adds its file with a PCI driver, a type implementing
//! [`VfPort`], its arm in [`find`], and its driver registration in
//! `main.rs`; the ring's bookkeeping and the descriptor formats are
//! `nic_queue`'s (host-tested).

pub(crate) mod igb;

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::xen_sys::nic_queue::RxQueue;
use crate::xen_sys::nicreg;
use crate::xen_sys::pci::DmaDev;

/// What the ring hands back with each buffer: the guest queue's own index
/// of it (or, with no guest attached, the VF's own pool's).
pub(crate) type Token = u16;

/// A MAC as the kernel prints one.
pub(crate) struct MacFmt(pub(crate) [u8; 6]);

impl kernel::fmt::Display for MacFmt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// The guest queue a VF serves, as the VF sees it.
pub(crate) trait NicUser: Send + Sync {
    /// The NIC completed frames into the guest's pages, or the VF stopped
    /// (unbound, reset by its PF): the queue's poll deals with it. Any
    /// context.
    fn nic_event(&self);

    /// The VF can serve the queue (again): after the PF's reset, or once
    /// the reason it waited for is gone. The queue checks and starts its
    /// NIC path, or asks to wait again. Process context.
    fn retry_nic(self: Arc<Self>);
}

/// A VF receive queue, as the vif side drives it.
pub(crate) trait VfPort: Send + Sync {
    /// The MAC the PF steers into the VF's pool.
    fn mac(&self) -> [u8; 6];
    /// Descriptors in its ring.
    fn ring_size(&self) -> usize;
    /// The device guest pages are DMA-mapped for.
    fn dma_dev(&self) -> &DmaDev;
    /// The PF's network device (frames for the guest go out there).
    fn pf_ifindex(&self) -> Option<i32>;
    /// Unbound, or its queue would not stop when disabled: stopped for
    /// good, no guest from now on.
    fn is_gone(&self) -> bool;
    /// Reset by its PF: its queue is stopped until the watchdog programs
    /// it again.
    fn in_reset(&self) -> bool;
    /// Hands the (emptied) ring to `user`'s guest pages. Process or
    /// softirq context.
    fn attach(&self, user: Arc<dyn NicUser>) -> Result;
    /// Stops the queue, hands every guest buffer back (each token to `f`,
    /// in order), returns the ring to the VF's own pool. With `wait`, the
    /// user is kept to be moved back ([`NicUser::retry_nic`]).
    fn detach(&self, wait: bool, f: &mut dyn FnMut(Token)) -> usize;
    /// The user's poll is done: the receive interrupt may fire again.
    fn rearm(&self);
    /// Keeps `user` to be moved onto the VF once it can be.
    fn wait_for(&self, user: Arc<dyn NicUser>);
    /// Runs `f` on the queue, locked (post, kick, reap); false (and `f`
    /// not run) once the VF is gone.
    fn with_queue(&self, f: &mut dyn FnMut(&mut dyn RxQueue<Token = Token>)) -> bool;
}

/// The VF steered by `mac`, of whichever family, if netback_mq drives one.
pub(crate) fn find(mac: [u8; 6]) -> Option<Arc<dyn VfPort>> {
    let igb: Option<Arc<dyn VfPort>> = nicreg::find::<igb::VfRx>(mac).map(|v| v as Arc<dyn VfPort>);
    igb
}

/// How many VFs netback_mq drives.
pub(crate) fn count() -> usize {
    nicreg::count()
}
