// SPDX-License-Identifier: GPL-2.0

//! Net devices for both modules: the device itself ([`NetDevice`]), socket
//! buffers ([`Skb`]), NAPI contexts and queue timers, and the adapter that
//! owns the C callbacks (`net_device_ops`) for a driver's [`NetDriver`]
//! implementation, registered by [`Registration`]. Drivers built on it hold
//! no raw pointer to the kernel's networking objects.

use core::ffi::c_int;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::types::Opaque;

use super::batch::Batch;
use super::bindings as b;
use super::netif::{split_contiguous, FlowKeys, Frame, Seg, PAGE_SIZE};

/// Counters of one queue. `rx`/`tx` are from this net device's side (for
/// the backend's vif, `rx` is what the guest sent). `copy_ops` and
/// `notifies` are counted by the backend only.
#[derive(Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) rx_packets: u64,
    pub(crate) rx_bytes: u64,
    pub(crate) rx_errors: u64,
    pub(crate) rx_dropped: u64,
    pub(crate) tx_packets: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) tx_errors: u64,
    pub(crate) tx_dropped: u64,
    /// Grant-copy operations issued (both directions).
    pub(crate) copy_ops: u64,
    /// Grant-copy hypercalls (batches of those operations).
    pub(crate) copy_calls: u64,
    /// Bytes those operations moved.
    pub(crate) copy_bytes: u64,
    /// Notifications sent to the peer.
    pub(crate) notifies: u64,
    /// Packets to the guest that waited for it to post buffers (backend).
    pub(crate) tx_held: u64,
    /// Multicast frames for groups the guest did not join (backend).
    pub(crate) mcast_filtered: u64,
    /// Bytes copied through static grants (grant reuse, backend): by the
    /// CPU, without a hypercall.
    pub(crate) static_bytes: u64,
    /// Static grants held, data-path lookups that found one or not, and
    /// the map and unmap operations done for them (backend, filled in when
    /// read).
    pub(crate) static_mapped: u64,
    pub(crate) static_hits: u64,
    pub(crate) static_misses: u64,
    pub(crate) gref_map_ops: u64,
    pub(crate) gref_unmap_ops: u64,
    pub(crate) static_del_in_use: u64,
    /// The map and unmap hypercalls for static grants (one per batch), and
    /// `ADD` requests refused (backend, filled in when read).
    pub(crate) static_map_calls: u64,
    pub(crate) static_unmap_calls: u64,
    pub(crate) static_add_refused: u64,
    /// The NIC queue (backend): frames the NIC wrote into the guest's
    /// pages and their bytes (no copy in dom0), frames it dropped, buffers
    /// posted to it, DMA mappings that bounced (a hidden copy), frames for
    /// the guest sent through the PF into the NIC, and frames for other
    /// MACs that reached the vif meanwhile (not delivered).
    pub(crate) nic_frames: u64,
    pub(crate) nic_bytes: u64,
    pub(crate) nic_dropped: u64,
    pub(crate) nic_posted: u64,
    pub(crate) nic_bounces: u64,
    /// Buffers posted that needed a new DMA mapping (the rest reused one).
    pub(crate) nic_dma_maps: u64,
    pub(crate) nic_redirected: u64,
    pub(crate) nic_unsteered: u64,
    /// Group frames that reached the vif while on the NIC and were not sent
    /// through the PF again (the NIC replicates the one copy sent).
    pub(crate) nic_group_dups: u64,
    /// Received packets carrying the backend's hash (frontend).
    pub(crate) rx_hashed: u64,
    /// Of those, arrived on another queue than our RSS table names.
    pub(crate) rx_misrouted: u64,
    /// Native XDP (frontend): frames the program passed, dropped, sent back
    /// (`XDP_TX`) or redirected; failures (`XDP_ABORTED`, an unknown
    /// action, a failed redirect or transmit); frames dropped unseen for
    /// spanning several buffers (GSO or jumbo); frames other devices
    /// redirected to us and sent.
    pub(crate) xdp_pass: u64,
    pub(crate) xdp_drop: u64,
    pub(crate) xdp_tx: u64,
    pub(crate) xdp_redirect: u64,
    pub(crate) xdp_aborted: u64,
    pub(crate) xdp_oversize: u64,
    pub(crate) xdp_xmit: u64,
    /// Packets sent with their fragments' pages lent to the backend
    /// (netfront_opt's zero-copy transmit), and the pieces lent.
    pub(crate) tx_lent: u64,
    pub(crate) tx_lent_pieces: u64,
    /// netfront_opt's receive profile (`profile=1`): nanoseconds its polls
    /// spent reaping TX completions, in the receive pass (reading the
    /// ring, building skbs, reposting buffers), and in that the skb
    /// allocations, the copies out of the granted pages and the offload
    /// setup; then handing the skbs to the stack (GRO and up); the receive
    /// passes; and in `ndo_start_xmit` (the copy into a TX page, the push).
    pub(crate) prof_reap_ns: u64,
    pub(crate) prof_rx_ns: u64,
    pub(crate) prof_alloc_ns: u64,
    pub(crate) prof_copy_ns: u64,
    pub(crate) prof_finish_ns: u64,
    pub(crate) prof_deliver_ns: u64,
    pub(crate) prof_polls: u64,
    pub(crate) prof_xmit_ns: u64,
}

impl Stats {
    /// Adds another queue's counters.
    pub(crate) fn add(&mut self, o: &Stats) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_errors += o.rx_errors;
        self.rx_dropped += o.rx_dropped;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.tx_dropped += o.tx_dropped;
        self.copy_ops += o.copy_ops;
        self.copy_calls += o.copy_calls;
        self.copy_bytes += o.copy_bytes;
        self.notifies += o.notifies;
        self.tx_held += o.tx_held;
        self.mcast_filtered += o.mcast_filtered;
        self.rx_hashed += o.rx_hashed;
        self.rx_misrouted += o.rx_misrouted;
        self.nic_frames += o.nic_frames;
        self.nic_bytes += o.nic_bytes;
        self.nic_dropped += o.nic_dropped;
        self.nic_posted += o.nic_posted;
        self.nic_bounces += o.nic_bounces;
        self.nic_dma_maps += o.nic_dma_maps;
        self.nic_redirected += o.nic_redirected;
        self.nic_unsteered += o.nic_unsteered;
        self.nic_group_dups += o.nic_group_dups;
        self.xdp_pass += o.xdp_pass;
        self.xdp_drop += o.xdp_drop;
        self.xdp_tx += o.xdp_tx;
        self.xdp_redirect += o.xdp_redirect;
        self.xdp_aborted += o.xdp_aborted;
        self.xdp_oversize += o.xdp_oversize;
        self.xdp_xmit += o.xdp_xmit;
        self.tx_lent += o.tx_lent;
        self.tx_lent_pieces += o.tx_lent_pieces;
        self.prof_reap_ns += o.prof_reap_ns;
        self.prof_rx_ns += o.prof_rx_ns;
        self.prof_alloc_ns += o.prof_alloc_ns;
        self.prof_copy_ns += o.prof_copy_ns;
        self.prof_finish_ns += o.prof_finish_ns;
        self.prof_deliver_ns += o.prof_deliver_ns;
        self.prof_polls += o.prof_polls;
        self.prof_xmit_ns += o.prof_xmit_ns;
    }

    /// Counts one grant-copy hypercall that carried `ops` (none when empty).
    pub(crate) fn count_copy_batch(&mut self, ops: &[b::gnttab_copy]) {
        if ops.is_empty() {
            return;
        }
        self.copy_calls += 1;
        self.copy_ops += ops.len() as u64;
        self.copy_bytes += ops.iter().map(|op| u64::from(op.len)).sum::<u64>();
    }

    /// Sums `queues` and writes the device totals `ndo_get_stats64` reports.
    pub(crate) fn fill_link_stats(queues: impl Iterator<Item = Stats>, out: &mut b::rtnl_link_stats64) {
        let mut s = Stats::default();
        for q in queues {
            s.add(&q);
        }
        out.rx_packets = s.rx_packets;
        out.rx_bytes = s.rx_bytes;
        out.rx_errors = s.rx_errors;
        out.rx_dropped = s.rx_dropped;
        out.tx_packets = s.tx_packets;
        out.tx_bytes = s.tx_bytes;
        out.tx_errors = s.tx_errors;
        out.tx_dropped = s.tx_dropped;
    }
}


/// `skb->ip_summed` values (`include/linux/skbuff.h`).
pub(crate) mod csum {
    pub(crate) const NONE: u8 = super::b::CHECKSUM_NONE as u8;
    pub(crate) const UNNECESSARY: u8 = super::b::CHECKSUM_UNNECESSARY as u8;
    pub(crate) const PARTIAL: u8 = super::b::CHECKSUM_PARTIAL as u8;
}

/// `ETH_HLEN`: an Ethernet header's length.
pub(crate) const ETH_HLEN: usize = b::ETH_HLEN as usize;

/// A net device.
///
/// # Invariants
///
/// A `&NetDevice` points to a live, allocated `struct net_device` for at
/// least as long as the borrow: it is only made by this module, from the
/// device a [`Registration`] owns or that the stack passes to a callback.
#[repr(transparent)]
pub(crate) struct NetDevice(Opaque<b::net_device>);

// SAFETY: the net device functions wrapped here may be called from any
// thread; they do their own locking.
unsafe impl Sync for NetDevice {}

impl NetDevice {
    /// # Safety
    ///
    /// `dev` must be a live net device for `'a`.
    unsafe fn from_raw<'a>(dev: *mut b::net_device) -> &'a Self {
        // SAFETY: transparent wrapper; liveness is the caller's contract.
        unsafe { &*dev.cast() }
    }

    /// Whether the device `ifindex` is a port of the same bridge (or other
    /// master) as this one.
    pub(crate) fn same_master_as(&self, ifindex: i32) -> bool {
        // SAFETY: live (type invariant); the shim looks `ifindex` up under RCU.
        unsafe { b::xennet_shim_same_master(self.as_raw(), ifindex) }
    }

    /// The device's index (fixed once registered).
    pub(crate) fn ifindex(&self) -> i32 {
        // SAFETY: live (type invariant); a plain read of a field.
        unsafe { b::xennet_shim_netdev_ifindex(self.as_raw()) }
    }

    pub(super) fn as_raw(&self) -> *mut b::net_device {
        self.0.get()
    }

    /// The interface name, for log lines.
    pub(crate) fn name(&self) -> &str {
        // SAFETY: the device is live (type invariant); its name is a
        // NUL-terminated array inside it.
        let name = unsafe { CStr::from_char_ptr(b::xennet_shim_netdev_name(self.as_raw())) };
        name.to_str().unwrap_or("?")
    }

    pub(crate) fn carrier_on(&self) {
        // SAFETY: the device is live (type invariant).
        unsafe { b::netif_carrier_on(self.as_raw()) };
    }

    pub(crate) fn carrier_off(&self) {
        // SAFETY: the device is live (type invariant).
        unsafe { b::netif_carrier_off(self.as_raw()) };
    }

    /// Stops transmit queue `q` (below the device's queue count).
    pub(crate) fn stop_subqueue(&self, q: usize) {
        // SAFETY: the device is live; the shim ignores out-of-range queues.
        unsafe { b::xennet_shim_netif_stop_subqueue(self.as_raw(), q as u16) };
    }

    pub(crate) fn wake_subqueue(&self, q: usize) {
        // SAFETY: as above.
        unsafe { b::xennet_shim_netif_wake_subqueue(self.as_raw(), q as u16) };
    }

    pub(crate) fn subqueue_stopped(&self, q: usize) -> bool {
        // SAFETY: as above.
        unsafe { b::xennet_shim_netif_subqueue_stopped(self.as_raw(), q as u16) }
    }

    /// Stops every transmit queue (the stack holds packets back).
    pub(crate) fn stop_all_queues(&self) {
        // SAFETY: the device is live (type invariant).
        unsafe { b::xennet_shim_netif_tx_stop_all_queues(self.as_raw()) };
    }

    /// Sets the transmit and receive queue counts in use. Process context
    /// (takes the RTNL lock).
    pub(crate) fn set_real_num_queues(&self, n: usize) -> Result {
        // SAFETY: the device is live and registered.
        kernel::error::to_result(unsafe { b::xennet_shim_set_real_num_queues(self.as_raw(), n as u32) })
    }

    /// Re-evaluates the device's features (`ndo_fix_features`). Process
    /// context (takes the RTNL lock).
    pub(crate) fn update_features(&self) {
        // SAFETY: the device is live and registered.
        unsafe { b::xennet_shim_netdev_update_features(self.as_raw()) };
    }

    /// The MTU now.
    pub(crate) fn mtu(&self) -> usize {
        // SAFETY: live.
        unsafe { b::xennet_shim_netdev_mtu(self.as_raw()) as usize }
    }

    pub(crate) fn set_max_mtu(&self, mtu: usize) {
        // SAFETY: the device is live; a plain field store.
        unsafe { b::xennet_shim_netdev_set_max_mtu(self.as_raw(), mtu as u32) };
    }

    /// The stack's own queue choice for `skb` (`netdev_pick_tx`), in range.
    pub(crate) fn pick_tx(&self, skb: &Skb) -> u16 {
        // SAFETY: the device and the skb are live.
        unsafe { b::xennet_shim_netdev_pick_tx(self.as_raw(), skb.as_raw()) }
    }

    /// The device's multicast list: copies up to `out.len() / 6` addresses
    /// into `out`; returns the list's length and whether the device wants
    /// every multicast frame (all-multicast or promiscuous). `locked`: the
    /// caller holds the address-list lock (`ndo_set_rx_mode`).
    pub(crate) fn mc_list(&self, out: &mut [u8], locked: bool) -> (usize, bool) {
        let mut all = false;
        // SAFETY: the device is live; `out` has room for `max` addresses.
        let n = unsafe {
            b::xennet_shim_netdev_mc_list(self.as_raw(), out.as_mut_ptr(), (out.len() / 6) as u32, !locked, &mut all)
        };
        (n as usize, all)
    }
}

/// True inside `start_xmit` when the stack has more packets for this queue
/// right behind the current one (`netdev_xmit_more`): a driver may then
/// defer the doorbell (a hypercall, a notification) to the last of them.
pub(crate) fn xmit_more() -> bool {
    // SAFETY: reads a per-CPU flag; meaningful in `ndo_start_xmit`, harmless
    // elsewhere.
    unsafe { b::xennet_shim_netdev_xmit_more() }
}

/// A socket buffer we own: freed when dropped, unless handed on (to the
/// stack, or back to it from `ndo_start_xmit`).
///
/// # Invariants
///
/// `self.0` is a live skb that nothing else references.
pub(crate) struct Skb(NonNull<b::sk_buff>);

// SAFETY: an skb we own exclusively may move between threads.
unsafe impl Send for Skb {}

impl Drop for Skb {
    fn drop(&mut self) {
        // SAFETY: ours (type invariant); freed once, from any context.
        unsafe { b::xennet_shim_kfree_skb_any(self.as_raw()) };
    }
}

impl Skb {
    /// # Safety
    ///
    /// `skb` must be a live skb whose ownership passes to the result.
    unsafe fn from_raw(skb: *mut b::sk_buff) -> Option<Self> {
        NonNull::new(skb).map(Self)
    }

    pub(super) fn as_raw(&self) -> *mut b::sk_buff {
        self.0.as_ptr()
    }

    fn into_raw(self) -> *mut b::sk_buff {
        let p = self.as_raw();
        core::mem::forget(self);
        p
    }

    /// Sends the frame (Ethernet header first) on the network device
    /// `ifindex`, if it exists and is up; it is dropped otherwise.
    pub(crate) fn xmit_on(self, ifindex: i32) -> Result {
        // SAFETY: ours; the shim takes ownership (sends or frees it).
        let rc = unsafe { b::xennet_shim_xmit_on(self.into_raw(), ifindex) };
        if rc < 0 {
            Err(Error::from_errno(rc))
        } else {
            Ok(())
        }
    }
    /// Bytes of data (linear area and fragments).
    pub(crate) fn len(&self) -> usize {
        // SAFETY: live (type invariant).
        unsafe { b::xennet_shim_skb_len(self.as_raw()) as usize }
    }

    /// Bytes in the linear area.
    pub(crate) fn headlen(&self) -> usize {
        // SAFETY: live (type invariant).
        unsafe { b::xennet_shim_skb_headlen(self.as_raw()) as usize }
    }

    /// The transmit queue the stack picked.
    pub(crate) fn queue_mapping(&self) -> usize {
        // SAFETY: live (type invariant).
        unsafe { usize::from(b::xennet_shim_skb_get_queue_mapping(self.as_raw())) }
    }

    /// `ip_summed` (see [`csum`]).
    pub(crate) fn ip_summed(&self) -> u8 {
        // SAFETY: live (type invariant).
        unsafe { b::xennet_shim_skb_ip_summed(self.as_raw()) }
    }

    pub(crate) fn set_ip_summed(&mut self, v: u8) {
        // SAFETY: ours (type invariant).
        unsafe { b::xennet_shim_skb_set_ip_summed(self.as_raw(), v) };
    }

    /// The GSO segment size and whether it is TCPv6, for a GSO packet.
    pub(crate) fn gso(&self) -> Option<(u16, bool)> {
        // SAFETY: live (type invariant).
        let (size, v6) = unsafe {
            (b::xennet_shim_skb_gso_size(self.as_raw()), b::xennet_shim_skb_gso_is_tcpv6(self.as_raw()))
        };
        (size > 0).then_some((size as u16, v6))
    }

    /// Marks a packet from a peer as TCP GSO (its headers are checked by
    /// the stack before segmentation: `SKB_GSO_DODGY`).
    pub(crate) fn set_gso(&mut self, size: u16, tcpv6: bool) {
        // SAFETY: ours (type invariant).
        unsafe { b::xennet_shim_skb_set_gso(self.as_raw(), size, tcpv6) };
    }

    /// Sets the protocol from the Ethernet header and the network header
    /// after it (`eth_type_trans`); the data must hold an Ethernet header.
    pub(crate) fn eth_type_trans(&mut self, dev: &NetDevice) -> Result {
        if self.headlen() < ETH_HLEN {
            return Err(EINVAL);
        }
        // SAFETY: ours, with an Ethernet header in the linear area; `dev`
        // is live.
        unsafe {
            let proto = b::eth_type_trans(self.as_raw(), dev.as_raw());
            b::xennet_shim_skb_set_protocol(self.as_raw(), proto);
            b::xennet_shim_skb_reset_network_header(self.as_raw());
        }
        Ok(())
    }

    /// Locates the transport checksum field from the headers for a partial
    /// checksum (`skb_checksum_setup`); `recalculate`: also fill in the
    /// pseudo-header sum. Fails on headers that do not parse.
    pub(crate) fn checksum_setup(&mut self, recalculate: bool) -> Result {
        // SAFETY: ours (type invariant), network header set.
        kernel::error::to_result(unsafe { b::skb_checksum_setup(self.as_raw(), recalculate) })
    }

    /// The Ethernet destination address, if the linear area holds it.
    pub(crate) fn dest_mac(&self) -> Option<[u8; 6]> {
        if self.headlen() < 6 {
            return None;
        }
        let mut mac = [0u8; 6];
        // SAFETY: at least 6 bytes at `data` are the skb's linear data.
        unsafe { core::ptr::copy_nonoverlapping(b::xennet_shim_skb_data(self.as_raw()).cast::<u8>(), mac.as_mut_ptr(), 6) };
        Some(mac)
    }

    /// The Ethernet source address, if the linear area holds it (before
    /// `eth_type_trans` moves the data past the header).
    pub(crate) fn src_mac(&self) -> Option<[u8; 6]> {
        if self.headlen() < 12 {
            return None;
        }
        let mut mac = [0u8; 6];
        // SAFETY: at least 12 bytes at `data` are the skb's linear data.
        unsafe {
            core::ptr::copy_nonoverlapping(b::xennet_shim_skb_data(self.as_raw()).cast::<u8>().add(6), mac.as_mut_ptr(), 6)
        };
        Some(mac)
    }

    /// The addresses and ports (flow dissector), if IPv4 or IPv6.
    pub(crate) fn flow_keys(&self) -> Option<FlowKeys> {
        let mut f = FlowKeys::default();
        let mut ports = [0u8; 4];
        let mut tcp = false;
        // SAFETY: live; the out-pointers are valid and sized as the shim
        // writes them (16, 16 and 4 bytes).
        let ok = unsafe {
            b::xennet_shim_skb_flow(self.as_raw(), &mut f.v6, f.src.as_mut_ptr(), f.dst.as_mut_ptr(), ports.as_mut_ptr(), &mut tcp)
        };
        if !ok {
            return None;
        }
        if tcp {
            f.tcp_ports = Some(([ports[0], ports[1]], [ports[2], ports[3]]));
        }
        Some(f)
    }

    /// Sets a received packet's hash (L4 or L3), as a NIC's RSS would.
    pub(crate) fn set_rx_hash(&mut self, hash: u32, l4: bool) {
        // SAFETY: ours (type invariant).
        unsafe { b::xennet_shim_skb_set_rx_hash(self.as_raw(), hash, l4) };
    }

    /// The page segments of the packet's data, in order, as grant-copy
    /// sources; `None` if `out` is too short.
    pub(crate) fn segments(&self, out: &mut [Seg]) -> Option<usize> {
        // SAFETY: live; these read its layout, which does not change while
        // we own it.
        let (data, headlen, nr_frags) = unsafe {
            (
                b::xennet_shim_skb_data(self.as_raw()) as usize,
                b::xennet_shim_skb_headlen(self.as_raw()) as usize,
                b::xennet_shim_skb_nr_frags(self.as_raw()) as usize,
            )
        };
        let mut n = linear_segments(data, headlen, out)?;
        for i in 0..nr_frags {
            // SAFETY: `i` is below the skb's fragment count.
            let (page, off, size) = unsafe {
                (
                    b::xennet_shim_skb_frag_page(self.as_raw(), i as u32),
                    b::xennet_shim_skb_frag_off(self.as_raw(), i as u32) as usize,
                    b::xennet_shim_skb_frag_size(self.as_raw(), i as u32) as usize,
                )
            };
            let first = off / PAGE_SIZE;
            n += split_contiguous(
                off,
                size,
                // SAFETY: a fragment lies within its (possibly compound) page.
                |j| Frame::Local(unsafe { b::xennet_shim_page_nth_gfn(page, first + j) } as u64),
                out.get_mut(n..)?,
            )?;
        }
        Some(n)
    }

}

/// An skb we allocated and are still building (never one the stack
/// handed us: that one may be a clone sharing its data). Derefs to [`Skb`].
pub(crate) struct NewSkb(Skb);

impl Deref for NewSkb {
    type Target = Skb;
    fn deref(&self) -> &Skb {
        &self.0
    }
}

impl DerefMut for NewSkb {
    fn deref_mut(&mut self) -> &mut Skb {
        &mut self.0
    }
}

impl NewSkb {
    /// Takes an skb we allocated (null: none).
    ///
    /// # Safety
    ///
    /// `skb` is null or a fresh skb that only the caller holds.
    pub(super) unsafe fn from_raw(skb: *mut b::sk_buff) -> Option<Self> {
        // SAFETY: the caller's contract.
        unsafe { Skb::from_raw(skb) }.map(NewSkb)
    }

    /// Extends the linear area by `len` bytes (within the room allocated)
    /// and describes the new bytes as grant-copy destinations in `out`.
    pub(crate) fn put_segments(&mut self, len: usize, out: &mut [Seg]) -> Option<usize> {
        // SAFETY: live; `skb_put` checks the room (it BUGs past the end, so
        // callers allocate the skb with at least `len` bytes).
        let data = unsafe { b::xennet_shim_skb_put(self.0.as_raw(), len as u32) } as usize;
        linear_segments(data, len, out)
    }

    /// Appends `page` as a fragment holding its first `len` bytes.
    pub(crate) fn add_frag(&mut self, page: FragPage, len: usize) -> Result {
        // SAFETY: live.
        let nr = unsafe { b::xennet_shim_skb_nr_frags(self.0.as_raw()) };
        if nr as usize >= MAX_SKB_FRAGS || len > PAGE_SIZE {
            return Err(EINVAL);
        }
        let page = core::mem::ManuallyDrop::new(page.0);
        // SAFETY: ours; the page is ours and passes to the skb (freed with
        // it); `nr` is the next free fragment slot.
        unsafe { b::xennet_shim_skb_add_rx_frag(self.0.as_raw(), nr as i32, page.as_ptr(), 0, len as i32) };
        Ok(())
    }

    /// Appends `len` bytes from our granted page `src` at `offset` to the
    /// linear area (within the room allocated).
    pub(crate) fn put_from_granted(&mut self, src: &super::grant::GrantedPage, offset: usize, len: usize) -> Result {
        if offset.checked_add(len).is_none_or(|end| end > PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: `src` is a page we own, `offset + len` within it; the skb
        // has room for `len` more bytes (caller).
        unsafe { b::xennet_shim_skb_put_data(self.0.as_raw(), src.as_ptr().add(offset).cast(), len as u32) };
        Ok(())
    }
}

/// Most fragments an skb holds (`MAX_SKB_FRAGS` of a default build).
const MAX_SKB_FRAGS: usize = 17;

/// A linear kernel address range as page segments.
fn linear_segments(addr: usize, len: usize, out: &mut [Seg]) -> Option<usize> {
    let page_base = addr & !(PAGE_SIZE - 1);
    split_contiguous(
        addr,
        len,
        // SAFETY: a linear skb area is directly mapped kernel memory; each
        // page it covers has a frame number.
        |i| Frame::Local(unsafe { b::xennet_shim_virt_to_gfn((page_base + i * PAGE_SIZE) as *const _) } as u64),
        out,
    )
}

/// A page allocated for an skb fragment.
///
/// # Invariants
///
/// The page is ours alone until [`Skb::add_frag`] hands it to an skb.
pub(crate) struct FragPage(kernel::page::Page);

impl FragPage {
    /// Allocates a page in atomic context.
    pub(crate) fn alloc_atomic() -> Result<Self> {
        Ok(Self(kernel::page::Page::alloc_page(GFP_ATOMIC)?))
    }

    /// `len` bytes of the page from `at`, to work on in place.
    pub(crate) fn bytes_mut(&mut self, at: usize, len: usize) -> Option<&mut [u8]> {
        if at.checked_add(len)? > PAGE_SIZE {
            return None;
        }
        // SAFETY: the page is ours alone (type invariant) and `&mut self`
        // keeps the slice the only access to it; the range lies within it.
        Some(unsafe { core::slice::from_raw_parts_mut(self.address().add(at), len) })
    }

    /// The page itself (for the XDP glue, which keeps it ours or hands it on).
    pub(super) fn as_raw(&self) -> *mut b::page {
        self.0.as_ptr()
    }

    /// The page's kernel address.
    pub(super) fn address(&self) -> *mut u8 {
        // SAFETY: a valid page we own.
        unsafe { b::xennet_shim_page_address(self.0.as_ptr()).cast() }
    }

    /// The page as a grant-copy destination of `len` bytes from its start.
    pub(crate) fn segment(&self, len: usize) -> Option<Seg> {
        // SAFETY: a valid page we own.
        let gfn = unsafe { b::xennet_shim_page_to_gfn(self.0.as_ptr()) };
        Seg::new(Frame::Local(gfn as u64), 0, len)
    }

    /// Copies `len` bytes of our granted page `src` at `src_off` to `at`.
    pub(crate) fn fill_from_granted(
        &mut self,
        at: usize,
        src: &super::grant::GrantedPage,
        src_off: usize,
        len: usize,
    ) -> Result {
        if at.checked_add(len).is_none_or(|e| e > PAGE_SIZE) || src_off.checked_add(len).is_none_or(|e| e > PAGE_SIZE) {
            return Err(EINVAL);
        }
        // SAFETY: both ranges lie within pages we own (checked above); the
        // shim copies with `memcpy`, so a peer writing `src` meanwhile
        // changes only the bytes copied.
        unsafe {
            let dst = b::xennet_shim_page_address(self.0.as_ptr()).cast::<u8>().add(at);
            b::xennet_shim_copy_from_shared(dst.cast(), src.as_ptr().add(src_off).cast(), len);
        }
        Ok(())
    }
}

/// A NAPI context, embedded in a driver's queue (`NapiQueue::napi`).
///
/// # Invariants
///
/// Once added by [`Registration::register`], `owner` points to the queue
/// holding this context, which outlives the registration's net device.
#[pin_data]
pub(crate) struct Napi {
    #[pin]
    inner: Opaque<b::napi_struct>,
    owner: AtomicPtr<kernel::ffi::c_void>,
}

// SAFETY: the NAPI functions wrapped here may be called from any thread;
// the kernel serialises polls and scheduling of one context.
unsafe impl Send for Napi {}
// SAFETY: as above.
unsafe impl Sync for Napi {}

impl Napi {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { inner <- Opaque::zeroed(), owner: AtomicPtr::new(core::ptr::null_mut()) })
    }

    fn as_raw(&self) -> *mut b::napi_struct {
        self.inner.get()
    }

    fn added(&self) -> bool {
        !self.owner.load(Ordering::Acquire).is_null()
    }

    /// Schedules a poll (no-op while disabled or before registration).
    pub(crate) fn schedule(&self) {
        if self.added() {
            // SAFETY: added to a live net device (type invariant).
            unsafe { b::xennet_shim_napi_schedule(self.as_raw()) };
        }
    }

}

/// A NAPI context being polled: what only its poll function may do. Made
/// by the adapter for the length of one `NapiQueue::poll`.
pub(crate) struct Polling<'a>(&'a Napi);

impl Polling<'_> {
    /// Allocates an skb with `len` bytes of linear room for this context's
    /// device (the NAPI allocation cache).
    pub(crate) fn alloc_skb(&self, len: usize) -> Option<NewSkb> {
        // SAFETY: called from this context's poll; a new skb is ours.
        unsafe { Skb::from_raw(b::napi_alloc_skb(self.0.as_raw(), len as u32)) }.map(NewSkb)
    }

    /// Ends a poll that did `done` (< budget) units of work; false if the
    /// context must keep polling (busy polling, or rescheduled meanwhile).
    pub(crate) fn complete_done(&self, done: usize) -> bool {
        // SAFETY: called from this context's poll function.
        unsafe { b::napi_complete_done(self.0.as_raw(), done as c_int) }
    }

    /// Hands a received packet to the stack (GRO).
    pub(crate) fn gro_receive(&self, skb: NewSkb) {
        // SAFETY: we are polling this context; the skb passes to the stack.
        unsafe { b::xennet_shim_napi_gro_receive(self.0.as_raw(), skb.0.into_raw()) };
    }

    /// Hands a received packet to the stack without GRO.
    pub(crate) fn receive(&self, skb: NewSkb) {
        // SAFETY: softirq context (this poll); the skb passes to the stack.
        unsafe { b::netif_receive_skb(skb.0.into_raw()) };
    }

    /// Schedules another poll.
    pub(crate) fn schedule(&self) {
        self.0.schedule();
    }
}

/// A timer embedded in a driver's queue (`NapiQueue::timer`), firing
/// `NapiQueue::timer_fired` in softirq context.
///
/// # Invariants
///
/// Once set up by [`Registration::register`], `owner` points to the queue
/// holding it; the registration shuts it down before that queue can go.
#[pin_data]
pub(crate) struct Timer {
    #[pin]
    inner: Opaque<b::timer_list>,
    owner: AtomicPtr<kernel::ffi::c_void>,
}

// SAFETY: the timer functions wrapped here may be called from any thread;
// the timer core does its own locking.
unsafe impl Send for Timer {}
// SAFETY: as above.
unsafe impl Sync for Timer {}

impl Timer {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self { inner <- Opaque::zeroed(), owner: AtomicPtr::new(core::ptr::null_mut()) })
    }

    /// Fires in `delay_us` µs, or at its earlier expiry if already armed.
    /// No-op before setup and after shutdown.
    pub(crate) fn arm_us(&self, delay_us: u64) {
        if !self.owner.load(Ordering::Acquire).is_null() {
            // SAFETY: set up (type invariant); after `timer_shutdown_sync`
            // arming does nothing.
            unsafe { b::xennet_shim_timer_arm_us(self.inner.get(), delay_us) };
        }
    }
}

/// A queue of a [`NetDriver`]: a NAPI context and what it polls.
pub(crate) trait NapiQueue: Send + Sync + 'static {
    /// This queue's NAPI context.
    fn napi(&self) -> &Napi;

    /// NAPI poll: up to `budget` (at least 1) units of work; returns the
    /// work done (`budget` to be polled again at once).
    fn poll(&self, dev: &NetDevice, napi: &Polling<'_>, budget: usize) -> usize;

    /// A timer of this queue, if it has one.
    fn timer(&self) -> Option<&Timer> {
        None
    }

    /// The timer fired (softirq context).
    fn timer_fired(&self) {}

    /// The queue's XDP receive-queue info, for a driver with native XDP
    /// (`NetDriver::xdp_install`): registered with the device by
    /// [`Registration::register`].
    fn xdp_rxq(&self) -> Option<&super::xdp::RxqInfo> {
        None
    }
}

/// The offloads a peer's features allow (see `ndo_fix_features`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Offloads {
    pub(crate) sg: bool,
    pub(crate) tso4: bool,
    pub(crate) tso6: bool,
    pub(crate) csum4: bool,
    pub(crate) csum6: bool,
}

impl Offloads {
    pub(crate) const ALL: Self = Self { sg: true, tso4: true, tso6: true, csum4: true, csum6: true };

    fn mask(self) -> b::netdev_features_t {
        // SAFETY: a pure function of its arguments.
        unsafe { b::xennet_shim_offload_mask(self.sg, self.tso4, self.tso6, self.csum4, self.csum6) }
    }
}

/// What `start_xmit` did with a packet.
pub(crate) enum Xmit {
    /// Taken (sent, queued or dropped).
    Done,
    /// No room: the stack keeps the packet and retries later (the driver
    /// stopped the queue).
    Busy(Skb),
}

/// A net device driver: the data of one device and its callbacks. The
/// [`Registration`] owns the net device and the C callbacks; the driver
/// sees only `&self`, `&NetDevice` and owned [`Skb`]s.
#[vtable]
pub(crate) trait NetDriver: super::ethtool::PerQueueStats + Send + Sync + Sized + 'static {
    /// The driver's queues.
    type Queue: NapiQueue;

    /// Every queue, each with its NAPI context.
    fn queues(&self) -> &[Arc<Self::Queue>];

    /// Transmits `skb` on queue `queue` (below `queues().len()`).
    fn start_xmit(&self, dev: &NetDevice, queue: usize, skb: Skb) -> Xmit;

    /// The offloads the peer currently accepts.
    fn offloads(&self) -> Offloads;

    /// Picks the transmit queue for `skb`; `None` leaves it to the stack.
    fn select_queue(&self, _dev: &NetDevice, _skb: &Skb) -> Option<u16> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// The device's multicast list or flags changed (address-list lock held).
    fn set_rx_mode(&self, _dev: &NetDevice) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Native XDP (under RTNL): can a program be attached now (`attach`),
    /// or detached? `Err` gives the reason, for the user's tool.
    fn xdp_check(&self, _dev: &NetDevice, _attach: bool) -> core::result::Result<(), &'static CStr> {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Native XDP (under RTNL, after `xdp_check` allowed it): runs `prog`
    /// from now on (`None`: none).
    fn xdp_install(&self, _dev: &NetDevice, _prog: Option<super::xdp::Prog>) {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }

    /// Transmits the first frames of `frames` (redirected to this device
    /// by a program) by copying them; returns how many. `flush`: publish
    /// them now. The adapter returns the frames sent to their owner.
    fn xdp_xmit(&self, _dev: &NetDevice, _frames: &super::xdp::XdpFrames<'_>, _flush: bool) -> usize {
        build_error!(kernel::error::VTABLE_DEFAULT_ERROR)
    }
}

/// What a net device's private area points to: the driver data and the
/// queues as they were at registration, each with the NAPI context and
/// timer that were added then (the adapter never asks the driver again).
struct Inner<T: NetDriver> {
    data: Pin<KBox<T>>,
    queues: KVec<QueueEntry<T::Queue>>,
}

/// A queue as registered.
///
/// # Invariants
///
/// `napi` (and `timer`) point into memory that `queue` keeps alive: what
/// `NapiQueue::napi`/`timer` returned, borrowed from the queue.
struct QueueEntry<Q: NapiQueue> {
    queue: Arc<Q>,
    napi: NonNull<Napi>,
    timer: Option<NonNull<Timer>>,
}

impl<Q: NapiQueue> QueueEntry<Q> {
    fn napi(&self) -> &Napi {
        // SAFETY: kept alive by `queue` (type invariant).
        unsafe { self.napi.as_ref() }
    }
    fn timer(&self) -> Option<&Timer> {
        // SAFETY: as above.
        self.timer.map(|t| unsafe { t.as_ref() })
    }
}

/// The registration data of one of `T`'s net devices.
///
/// # Safety
///
/// `dev` must be a live net device made by `Registration::<T>::register`.
unsafe fn data_of<'a, T: NetDriver>(dev: *mut b::net_device) -> &'a Inner<T> {
    // SAFETY: `register` stored a pointer to the `Inner`, which lives until
    // after the net device is freed.
    unsafe { &**b::xennet_shim_netdev_priv(dev).cast::<*const Inner<T>>() }
}

/// The driver data, for the ethtool callbacks.
///
/// # Safety
///
/// As [`data_of`].
pub(super) unsafe fn driver_of<'a, T: NetDriver>(dev: *mut b::net_device) -> &'a T {
    // SAFETY: the caller's contract is `data_of`'s.
    unsafe { &data_of::<T>(dev).data }
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`].
unsafe extern "C" fn ndo_open<T: NetDriver>(dev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let (inner, ndev) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev)) };
    for q in &inner.queues {
        // SAFETY: added at registration; disabled while the device is down.
        unsafe { b::napi_enable(q.napi().as_raw()) };
    }
    // SAFETY: live.
    unsafe { b::xennet_shim_netif_tx_start_all_queues(ndev.as_raw()) };
    for q in &inner.queues {
        q.napi().schedule();
    }
    0
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`].
unsafe extern "C" fn ndo_stop<T: NetDriver>(dev: *mut b::net_device) -> c_int {
    // SAFETY: the stack calls us with our live net device.
    let inner = unsafe { data_of::<T>(dev) };
    // SAFETY: live.
    unsafe { b::xennet_shim_netif_tx_stop_all_queues(dev) };
    for q in &inner.queues {
        // SAFETY: enabled in `ndo_open`.
        unsafe { b::napi_disable(q.napi().as_raw()) };
    }
    0
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`] and an skb it hands over.
unsafe extern "C" fn ndo_start_xmit<T: NetDriver>(skb: *mut b::sk_buff, dev: *mut b::net_device) -> b::netdev_tx_t {
    // SAFETY: the stack calls us with our live device and hands us the skb.
    let (inner, ndev, skb) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev), Skb::from_raw(skb)) };
    let Some(skb) = skb else {
        return b::netdev_tx_NETDEV_TX_OK;
    };
    // The stack never picks a queue beyond `real_num_tx_queues`.
    let q = skb.queue_mapping().min(inner.queues.len().saturating_sub(1));
    match inner.data.start_xmit(ndev, q, skb) {
        Xmit::Done => b::netdev_tx_NETDEV_TX_OK,
        Xmit::Busy(skb) => {
            // The stack keeps it.
            let _ = skb.into_raw();
            b::netdev_tx_NETDEV_TX_BUSY
        }
    }
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`] and a stats structure to fill.
unsafe extern "C" fn ndo_get_stats64<T: NetDriver>(dev: *mut b::net_device, out: *mut b::rtnl_link_stats64) {
    // SAFETY: the stack calls us with our live device.
    let data = unsafe { &data_of::<T>(dev).data };
    // `out` may be only 4-byte aligned: rtnetlink hands over the payload of
    // an IFLA_STATS64 attribute, which is not padded to 8 bytes where
    // unaligned access is cheap (x86). No reference to it is made.
    // SAFETY: the stack gives a stats structure valid for reads and writes.
    let mut stats = unsafe { out.read_unaligned() };
    Stats::fill_link_stats((0..data.nr_queues()).map(|q| data.queue_stats(q)), &mut stats);
    // SAFETY: as above.
    unsafe { out.write_unaligned(stats) };
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`].
unsafe extern "C" fn ndo_fix_features<T: NetDriver>(
    dev: *mut b::net_device,
    features: b::netdev_features_t,
) -> b::netdev_features_t {
    // SAFETY: the stack calls us with our live device.
    let data = unsafe { &data_of::<T>(dev).data };
    let (offered, allowed) = (Offloads::ALL.mask(), data.offloads().mask());
    (features & !offered) | (features & allowed)
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`] and a live skb it keeps.
unsafe extern "C" fn ndo_select_queue<T: NetDriver>(
    dev: *mut b::net_device,
    skb: *mut b::sk_buff,
    _sb_dev: *mut b::net_device,
) -> u16 {
    // SAFETY: the stack calls us with our live device and a live skb, which
    // it keeps: it is borrowed here, never freed.
    let (inner, ndev, skb) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev), Skb::from_raw(skb)) };
    let Some(skb) = skb.map(core::mem::ManuallyDrop::new) else {
        return 0;
    };
    match inner.data.select_queue(ndev, &skb) {
        Some(q) if usize::from(q) < inner.queues.len() => q,
        _ => ndev.pick_tx(&skb),
    }
}

/// # Safety
///
/// Called by the stack with a net device of `T`'s [`Registration`].
unsafe extern "C" fn ndo_set_rx_mode<T: NetDriver>(dev: *mut b::net_device) {
    // SAFETY: the stack calls us with our live device.
    let (inner, ndev) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev)) };
    inner.data.set_rx_mode(ndev);
}

/// `ndo_bpf`: only `XDP_SETUP_PROG` (native XDP).
///
/// # Safety
///
/// Called by the stack (RTNL held) with a net device of `T`'s [`Registration`].
unsafe extern "C" fn ndo_bpf<T: NetDriver>(dev: *mut b::net_device, bpf: *mut b::netdev_bpf) -> c_int {
    // SAFETY: the stack calls us with our live device and a request.
    let (inner, ndev) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev)) };
    // SAFETY: a live request.
    if !unsafe { b::xennet_shim_bpf_is_setup_prog(bpf) } {
        return EINVAL.to_errno();
    }
    // SAFETY: as above.
    let raw = unsafe { b::xennet_shim_bpf_prog(bpf) };
    if let Err(why) = inner.data.xdp_check(ndev, !raw.is_null()) {
        // SAFETY: a live request; the message is static.
        unsafe { b::xennet_shim_bpf_set_err(bpf, why.as_char_ptr()) };
        // The core drops the reference it moved to us.
        return EINVAL.to_errno();
    }
    // SAFETY: the core moved one reference on the program to us (it keeps
    // its own): it goes with the `Prog`.
    inner.data.xdp_install(ndev, unsafe { super::xdp::Prog::from_raw(raw) });
    0
}

/// `XDP_XMIT_FLUSH`, the only flag of `ndo_xdp_xmit`.
const XDP_XMIT_FLUSH: u32 = 1;

/// `ndo_xdp_xmit`: frames redirected to us.
///
/// # Safety
///
/// Called by the XDP core with a net device of `T`'s [`Registration`] and
/// `n` live frames, of which we return (and free) the first ones we sent.
unsafe extern "C" fn ndo_xdp_xmit<T: NetDriver>(
    dev: *mut b::net_device,
    n: c_int,
    frames: *mut *mut b::xdp_frame,
    flags: u32,
) -> c_int {
    // SAFETY: the core calls us with our live device.
    let (inner, ndev) = unsafe { (data_of::<T>(dev), NetDevice::from_raw(dev)) };
    if flags & !XDP_XMIT_FLUSH != 0 || n < 0 || frames.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `n` frame pointers, live until we return them.
    let list = unsafe { core::slice::from_raw_parts(frames, n as usize) };
    // SAFETY: as above.
    let sent = inner.data.xdp_xmit(ndev, &unsafe { super::xdp::XdpFrames::new(list) }, flags & XDP_XMIT_FLUSH != 0);
    let sent = sent.min(list.len());
    for &f in &list[..sent] {
        // SAFETY: copied: the frame goes back to its owner (the core
        // returns the rest).
        unsafe { b::xdp_return_frame(f) };
    }
    sent as c_int
}

/// # Safety
///
/// Called by the NAPI core with a context added by [`Registration::register`] for a `Q`.
unsafe extern "C" fn napi_poll<Q: NapiQueue>(napi: *mut b::napi_struct, budget: c_int) -> c_int {
    // SAFETY: our NAPI contexts are the `inner` field of a `Napi`, whose
    // owner is the live queue holding it (type invariant of `Napi`), added
    // to a live device.
    let (q, n, dev) = unsafe {
        let n = &*kernel::container_of!(napi.cast::<Opaque<b::napi_struct>>(), Napi, inner);
        (&*n.owner.load(Ordering::Acquire).cast::<Q>(), n, NetDevice::from_raw(b::xennet_shim_napi_dev(napi)))
    };
    // Budget 0 (netpoll, with interrupts off): nothing to do that is safe there.
    let budget = budget.max(0) as usize;
    if budget == 0 {
        return 0;
    }
    q.poll(dev, &Polling(n), budget).min(budget) as c_int
}

/// # Safety
///
/// Called by the timer core with a timer set up by [`Registration::register`] for a `Q`.
unsafe extern "C" fn timer_callback<Q: NapiQueue>(t: *mut b::timer_list) {
    // SAFETY: our timers are the `inner` field of a `Timer`, whose owner is
    // the live queue holding it (type invariant of `Timer`).
    let q = unsafe {
        let tm = &*kernel::container_of!(t.cast::<Opaque<b::timer_list>>(), Timer, inner);
        &*tm.owner.load(Ordering::Acquire).cast::<Q>()
    };
    q.timer_fired();
}

/// How the net device is made.
pub(crate) enum Kind<'a> {
    /// A guest's Ethernet device (`eth%d`) with its MAC address and the
    /// offloads it offers.
    Ether { mac: [u8; 6], offered: Offloads },
    /// A backend's `vifD.N`: a bridge port with a fixed name, its own MAC
    /// address (not the guest's) and transmit queue length.
    Vif { name: &'a CStr, mac: [u8; 6], tx_queue_len: u32 },
}

/// A registered net device and the driver data behind it. Dropping it
/// unregisters the device (stopping it), shuts the queues' timers down,
/// frees the device (deleting the NAPI contexts), then drops the data.
///
/// # Invariants
///
/// `dev` is an allocated, registered net device whose private area points
/// to `*inner`; each queue's NAPI context in `inner` was added to it (once:
/// each is distinct) and each timer set up.
pub(crate) struct Registration<T: NetDriver> {
    dev: NonNull<b::net_device>,
    inner: Pin<KBox<Inner<T>>>,
}

// SAFETY: the device is used only through thread-safe kernel functions;
// `T` and its queues are `Send + Sync`.
unsafe impl<T: NetDriver> Send for Registration<T> {}
// SAFETY: as above.
unsafe impl<T: NetDriver> Sync for Registration<T> {}

impl<T: NetDriver> Registration<T> {
    const OPS: b::net_device_ops = {
        // SAFETY: all-zero is a valid `net_device_ops` (every callback `None`).
        let mut ops: b::net_device_ops = unsafe { core::mem::zeroed() };
        ops.ndo_open = Some(ndo_open::<T>);
        ops.ndo_stop = Some(ndo_stop::<T>);
        ops.ndo_start_xmit = Some(ndo_start_xmit::<T>);
        ops.ndo_get_stats64 = Some(ndo_get_stats64::<T>);
        ops.ndo_fix_features = Some(ndo_fix_features::<T>);
        // As the C drivers: the address may change while the device is down.
        ops.ndo_set_mac_address = Some(b::eth_mac_addr);
        if T::HAS_SELECT_QUEUE {
            ops.ndo_select_queue = Some(ndo_select_queue::<T>);
        }
        if T::HAS_SET_RX_MODE {
            ops.ndo_set_rx_mode = Some(ndo_set_rx_mode::<T>);
        }
        if T::HAS_XDP_INSTALL {
            ops.ndo_bpf = Some(ndo_bpf::<T>);
        }
        if T::HAS_XDP_XMIT {
            ops.ndo_xdp_xmit = Some(ndo_xdp_xmit::<T>);
        }
        ops
    };
    const ETHTOOL_OPS: b::ethtool_ops = super::ethtool::ops::<T>();
    const STAT_OPS: b::netdev_stat_ops = super::ethtool::stat_ops::<T>();

    /// The queues of `data` as they are now, each with its NAPI context and
    /// timer; refused (`EINVAL`) if two share a context or timer, or one
    /// belongs to another device already.
    fn snapshot_queues(data: &T) -> Result<KVec<QueueEntry<T::Queue>>> {
        let mut queues = KVec::with_capacity(data.queues().len(), GFP_KERNEL)?;
        for q in data.queues() {
            let napi = q.napi();
            let timer = q.timer();
            let taken = napi.added() || timer.is_some_and(|t| !t.owner.load(Ordering::Acquire).is_null());
            let shared = queues.iter().any(|e: &QueueEntry<T::Queue>| {
                core::ptr::eq(e.napi(), napi) || matches!((e.timer(), timer), (Some(a), Some(b)) if core::ptr::eq(a, b))
            });
            if taken || shared {
                return Err(EINVAL);
            }
            let entry = QueueEntry { queue: q.clone(), napi: NonNull::from(napi), timer: timer.map(NonNull::from) };
            queues.push(entry, GFP_KERNEL)?;
        }
        Ok(queues)
    }

    /// Allocates a net device of `kind` for `data` (one transmit and
    /// receive queue per `data.queues()`), child of the xenbus device
    /// `parent`, adds the NAPI contexts, sets up the timers and registers
    /// it with its carrier off.
    pub(crate) fn register(kind: Kind<'_>, parent: &super::xenbus::Device, data: Pin<KBox<T>>) -> Result<Self> {
        let queues = Self::snapshot_queues(&data)?;
        let inner = KBox::pin(Inner { data, queues }, GFP_KERNEL)?;
        let nq = inner.queues.len().max(1) as u32;
        let psize = size_of::<*const Inner<T>>() as c_int;
        // SAFETY: plain allocations; the private area holds one pointer; the
        // name is copied.
        let dev = NonNull::new(unsafe {
            match &kind {
                Kind::Ether { .. } => b::xennet_shim_alloc_etherdev(psize, nq),
                Kind::Vif { name, .. } => b::xennet_shim_alloc_vif_netdev(psize, name.as_char_ptr(), nq),
            }
        })
        .ok_or(ENOMEM)?;
        let raw = dev.as_ptr();
        let ptr: *const Inner<T> = &*inner;
        // SAFETY: `raw` is ours and not registered; its private area holds
        // one pointer, to data that outlives the device (dropped after it
        // is freed); the ops tables are 'static promotions of constants;
        // `parent` is live.
        unsafe {
            b::xennet_shim_netdev_priv(raw).cast::<*const Inner<T>>().write(ptr);
            match &kind {
                Kind::Ether { mac, offered } => {
                    b::xennet_shim_netdev_init(raw, &Self::OPS, &Self::ETHTOOL_OPS, parent.as_raw(), mac.as_ptr());
                    b::xennet_shim_netdev_set_hw_features(raw, offered.mask());
                }
                Kind::Vif { mac, tx_queue_len, .. } => b::xennet_shim_vif_netdev_init(
                    raw,
                    &Self::OPS,
                    &Self::ETHTOOL_OPS,
                    parent.as_raw(),
                    mac.as_ptr(),
                    *tx_queue_len,
                ),
            }
            b::xennet_shim_netdev_set_stat_ops(raw, &Self::STAT_OPS);
            if T::HAS_XDP_INSTALL && T::HAS_XDP_XMIT {
                b::xennet_shim_netdev_set_xdp_features(raw);
            }
        }
        for q in &inner.queues {
            let owner = Arc::as_ptr(&q.queue).cast_mut().cast();
            let napi = q.napi();
            napi.owner.store(owner, Ordering::Release);
            // SAFETY: the NAPI context is kept alive by the queue, which
            // `inner` holds until after the device (and so the context) is
            // freed; it was never added (checked above); the poll function
            // matches the queue type.
            unsafe { b::xennet_shim_napi_add(raw, napi.as_raw(), Some(napi_poll::<T::Queue>)) };
            if let Some(t) = q.timer() {
                // SAFETY: the timer is kept alive by the queue; `free` shuts
                // it down before `inner` (and the queue) can go.
                unsafe { b::xennet_shim_timer_setup(t.inner.get(), Some(timer_callback::<T::Queue>)) };
                t.owner.store(owner, Ordering::Release);
            }
        }
        if T::HAS_XDP_INSTALL {
            for (i, q) in inner.queues.iter().enumerate() {
                let Some(rxq) = q.queue.xdp_rxq() else { continue };
                // SAFETY: `raw` is allocated (not registered yet).
                if let Err(e) = rxq.register(unsafe { NetDevice::from_raw(raw) }, i as u32) {
                    Self::free(dev, &inner, false);
                    return Err(e);
                }
            }
        }
        // SAFETY: `raw` is fully set up and not registered.
        let rc = unsafe {
            b::netif_carrier_off(raw);
            b::register_netdev(raw)
        };
        if rc < 0 {
            Self::free(dev, &inner, false);
            // `inner` is dropped after the device is gone.
            return Err(Error::from_errno(rc));
        }
        Ok(Self { dev, inner })
    }

    /// Tears a device down: unregisters it (if registered), stops the
    /// timers, frees the device. The data is dropped by the caller after.
    fn free(dev: NonNull<b::net_device>, inner: &Inner<T>, registered: bool) {
        let raw = dev.as_ptr();
        if registered {
            // SAFETY: registered; stops the device (and NAPI).
            unsafe { b::unregister_netdev(raw) };
        }
        for q in &inner.queues {
            if let Some(t) = q.timer() {
                // SAFETY: set up in `register`; after this it never fires.
                unsafe { b::xennet_shim_timer_shutdown(t.inner.get()) };
            }
            // No poll runs any more: no frame refers to the queue's info.
            if let Some(rxq) = q.queue.xdp_rxq() {
                rxq.unregister();
            }
        }
        // SAFETY: unregistered (or never registered); frees the device and
        // deletes its NAPI contexts; nothing uses the pointer after.
        unsafe { b::free_netdev(raw) };
    }

    /// The net device.
    pub(crate) fn device(&self) -> &NetDevice {
        // SAFETY: allocated and registered while `self` lives (type invariant).
        unsafe { NetDevice::from_raw(self.dev.as_ptr()) }
    }

    /// The driver data.
    pub(crate) fn data(&self) -> &T {
        &self.inner.data
    }
}

impl<T: NetDriver> Drop for Registration<T> {
    fn drop(&mut self) {
        Self::free(self.dev, &self.inner, true);
        // `inner` is dropped after this, with the device gone.
    }
}

/// Skbs built under a queue lock, handed to the stack after it is released
/// (the stack may transmit in reply, which takes the lock). Any left are
/// freed with the batch.
pub(crate) type SkbBatch = Batch<NewSkb, 64>;

impl SkbBatch {
    /// Hands every skb to the stack through the context being polled:
    /// to GRO, or (`gro` false) straight up the stack.
    pub(crate) fn deliver(&mut self, napi: &Polling<'_>, gro: bool) {
        for skb in self.drain() {
            if gro {
                napi.gro_receive(skb);
            } else {
                napi.receive(skb);
            }
        }
    }
}

/// How a vif and a NIC's PF are bridged: the NIC path (frames the NIC
/// writes into the guest, frames for the guest sent out of the PF) may
/// only stand in for a Linux bridge that both are ports of and that
/// filters no VLANs; anything else (another bridge, Open vSwitch's flows,
/// per-port VLANs) is a policy the NIC would bypass.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NicBridge {
    /// Ports of one Linux bridge without VLAN filtering.
    Shared,
    /// Not ports of one master (or one of them is gone).
    Apart,
    /// Ports of one master that is not a Linux bridge.
    NotLinuxBridge,
    /// Ports of a bridge with VLAN filtering on.
    VlanFiltering,
}

impl NicBridge {
    /// Looks the devices up by index (under RCU). Any context.
    pub(crate) fn of(vif_ifindex: i32, pf_ifindex: i32) -> Self {
        // SAFETY: the shim takes indexes, looked up under RCU.
        let rc = unsafe { b::xennet_shim_nic_bridge(vif_ifindex, pf_ifindex) };
        match rc as u32 {
            b::XENNET_NIC_BRIDGE_OK => Self::Shared,
            b::XENNET_NIC_BRIDGE_NOT_LINUX_BRIDGE => Self::NotLinuxBridge,
            b::XENNET_NIC_BRIDGE_VLAN_FILTERING => Self::VlanFiltering,
            _ => Self::Apart,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "the vif and the PF are ports of one bridge",
            Self::Apart => "the PF is not a port of the vif's bridge",
            Self::NotLinuxBridge => "the vif's switch is not a Linux bridge (its rules would be bypassed)",
            Self::VlanFiltering => "the vif's bridge filters VLANs (the NIC would bypass them)",
        }
    }
}
