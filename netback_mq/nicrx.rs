// SPDX-License-Identifier: GPL-2.0

//! Guest receive through a NIC queue: the guest's receive buffers, which
//! it registered as static grants (grant reuse), are posted to the igb VF
//! steered by its MAC; the NIC writes frames straight into them and this
//! turns completions into netif receive responses. dom0 copies nothing.
//!
//! Order: netfront matches responses to requests by ring position. The
//! requests are posted in ring order, the NIC completes them in that order,
//! and while the queue is on the NIC nothing else answers its requests
//! (frames reaching the vif through the bridge are sent through the PF and
//! come back through the NIC). When the NIC path ends (a request naming a
//! page that is not a static grant, the VF going away, disconnection), the
//! queue is stopped and the requests it held are answered, in order, with
//! an error status; then grant copy takes over.
//!
//! A posted buffer holds its static grant (`dma_acquire`): a `DEL` of it is
//! refused for that entry while the NIC has the page, and nothing is
//! unmapped before the queue is stopped and the buffer taken back. A page's
//! DMA mapping stays in place from one frame to the next (the guest posts
//! the same pages again): it goes with the grant's mapping, or when the
//! path ends.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::nic::VfPort;
use crate::netif::{RspStatus, RxBack, RxExtras, RxRequest};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::netdev::Stats;
use crate::xen_sys::nic_queue::{frame_to_netif, FRAME_MAX_BUFS};
use crate::xen_sys::reuse::{DmaBuf, StaticGrants};
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xenbus::MappedRing;

/// Frames reaped per poll at most.
pub(crate) const BUDGET: usize = 64;

type Rx = OnRing<RxBack<XenBarriers>, MappedRing>;

/// A guest buffer the NIC holds (its DMA mapping with it: moved, never
/// copied, so it is released once).
struct Posted {
    req: RxRequest,
    buf: DmaBuf,
}

/// Why the NIC path ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum NicEnd {
    /// A request named a page that is not a writable static grant.
    NotStatic(u32),
    /// The VF was unbound (or its PF went).
    VfGone,
    /// The PF reset the VF (the path comes back once it is up again).
    VfReset,
    /// The guest sent from this MAC, which the VF is not steered by.
    ForeignMac([u8; 6]),
    /// The NIC refused a buffer, or mapping it for DMA failed.
    PostFailed,
    /// A request named a grant that could not be mapped (per-buffer mode).
    MapFailed(u32),
    /// The connection goes.
    Disconnect,
    /// The frontend's receive ring is corrupt (the connection is broken).
    Ring(crate::netif::Error),
    /// The vif and the PF are no longer ports of one plain bridge (the
    /// path comes back once they are).
    Bridge(crate::xen_sys::netdev::NicBridge),
}

impl kernel::fmt::Display for NicEnd {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            NicEnd::NotStatic(g) => write!(f, "a request names grant {g}, not a writable static grant"),
            NicEnd::VfGone => f.write_str("the VF was unbound, or its queue would not stop"),
            NicEnd::VfReset => f.write_str("the PF reset the VF"),
            NicEnd::ForeignMac(m) => write!(
                f,
                "the guest sends from {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, not the MAC its VF is steered by: a changed MAC or a bridge in the guest",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            NicEnd::PostFailed => f.write_str("a buffer could not be posted"),
            NicEnd::MapFailed(g) => write!(f, "a request names grant {g}, which could not be mapped"),
            NicEnd::Disconnect => f.write_str("disconnected"),
            NicEnd::Ring(e) => write!(f, "receive ring: {}", e.as_str()),
            NicEnd::Bridge(b) => f.write_str(b.as_str()),
        }
    }
}

/// One queue's receive path through a VF.
pub(crate) struct NicRx {
    vf: Arc<dyn VfPort>,
    /// Posted buffers, by the token the ring hands back (an index).
    posted: KVec<Option<Posted>>,
    free: KVec<u16>,
    /// Requests taken from the ring but not posted (from the one that
    /// could not be): answered, in order, after those the NIC holds.
    unposted: KVec<RxRequest>,
    /// The VF's ring is ours (between `attached` and `end`).
    live: bool,
    /// At `end`, the guest's queue waits for the VF to be usable again
    /// (the PF back on the vif's bridge).
    wait_after_end: bool,
    /// Per-buffer mode, for a frontend without static grants (the stock C
    /// netfront): each request's grant is mapped when posted and unmapped
    /// when its frame completes, through a table of our own.
    own: Option<KBox<StaticGrants>>,
    /// Requests taken for one refill (mapped in one batch).
    batch: KVec<RxRequest>,
    /// Of those, the ones mapped and ready to post (with their tokens).
    ready: KVec<(u16, Posted)>,
    /// Buffers the NIC completed in one poll, and (per-buffer mode) their
    /// grants, released after the VF's lock.
    done: KVec<Posted>,
    done_grefs: KVec<u32>,
}

/// The grants behind the posted pages: our own (per-buffer mode) or the
/// frontend's static grants.
fn grants<'a>(own: &'a mut Option<KBox<StaticGrants>>, statics: Option<&'a mut StaticGrants>) -> Option<&'a mut StaticGrants> {
    match own.as_deref_mut() {
        Some(g) => Some(g),
        None => statics,
    }
}

impl NicRx {
    /// The path over `vf`, posting the frontend's static grants, or (with
    /// `per_buffer` naming the frontend's domain) mapping each request's
    /// grant itself. Process context.
    pub(crate) fn new(vf: Arc<dyn VfPort>, per_buffer: Option<u16>) -> Result<Self> {
        let n = vf.ring_size();
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for t in (0..n as u16).rev() {
            free.push(t, GFP_KERNEL)?;
        }
        let own = match per_buffer {
            Some(domid) => Some(StaticGrants::new(domid, n)?),
            None => None,
        };
        Ok(Self {
            vf,
            posted: {
                let mut v = KVec::with_capacity(n, GFP_KERNEL)?;
                for _ in 0..n {
                    v.push(None, GFP_KERNEL)?;
                }
                v
            },
            free,
            unposted: KVec::with_capacity(n, GFP_KERNEL)?,
            live: false,
            wait_after_end: false,
            own,
            batch: KVec::with_capacity(n, GFP_KERNEL)?,
            ready: KVec::with_capacity(n, GFP_KERNEL)?,
            done: KVec::with_capacity(n, GFP_KERNEL)?,
            done_grefs: KVec::with_capacity(n, GFP_KERNEL)?,
        })
    }

    /// The VF was handed this queue's guest (`VfPort::attach`): the ring is
    /// ours until `end`.
    pub(crate) fn attached(&mut self) {
        self.live = true;
    }

    /// The per-buffer mappings' counters (map and unmap operations).
    pub(crate) fn own_stats(&self) -> Option<crate::xen_sys::grant_reuse::ReuseStats> {
        self.own.as_deref().map(|g| g.stats())
    }

    pub(crate) fn vf(&self) -> &Arc<dyn VfPort> {
        &self.vf
    }

    /// At `end`, leave the guest's queue waiting on the VF: the watchdog
    /// moves it back once the reason the path ended is gone.
    pub(crate) fn wait_after_end(&mut self) {
        self.wait_after_end = true;
    }

    /// Reaps completed frames into responses, then posts the guest's new
    /// requests. Returns the frames delivered and whether the NIC has room
    /// for more buffers, or why the path must end.
    pub(crate) fn poll(&mut self, rx: &mut Rx, mut statics: Option<&mut StaticGrants>, stats: &mut Stats) -> core::result::Result<(usize, bool), NicEnd> {
        if self.vf.is_gone() {
            return Err(NicEnd::VfGone);
        }
        if self.vf.in_reset() {
            return Err(NicEnd::VfReset);
        }
        let frames = self.complete(rx, statics.as_deref_mut(), stats);
        let room = self.refill(rx, statics, stats)?;
        Ok((frames, room))
    }

    /// Under the VF's lock only the ring's bookkeeping and the responses;
    /// the buffers' DMA and per-buffer grant unmaps (one batch) after it.
    fn complete(&mut self, rx: &mut Rx, statics: Option<&mut StaticGrants>, stats: &mut Stats) -> usize {
        let Self { vf, posted, free, own, done, done_grefs, .. } = self;
        let per_buffer = own.is_some();
        let Some(statics) = grants(own, statics) else { return 0 };
        done.clear();
        let mut frames = 0;
        vf.with_queue(&mut |q| {
            frames = q.reap(BUDGET, &mut |f| {
                let mut reqs = [RxRequest::zeroed(); FRAME_MAX_BUFS];
                let mut n = 0;
                for ((token, _), r) in f.buffers().zip(reqs.iter_mut()) {
                    let Some(p) = posted.get_mut(usize::from(token)).and_then(Option::take) else { continue };
                    *r = p.req;
                    n += 1;
                    // Room for each: at most one per posted buffer.
                    let _ = done.push_within_capacity(p);
                    let _ = free.push_within_capacity(token);
                }
                let reqs = &reqs[..n];
                let answered = match frame_to_netif(f) {
                    Some((flags, outs, k)) if k == n => {
                        // Delivered to the guest, as the copy path's are.
                        stats.tx_packets += 1;
                        stats.tx_bytes += f.len() as u64;
                        stats.nic_frames += 1;
                        stats.nic_bytes += f.len() as u64;
                        rx.respond(reqs, &outs[..k], flags, &RxExtras::default())
                    }
                    _ => {
                        stats.nic_dropped += 1;
                        reqs.iter().try_for_each(|r| rx.respond_error(r, RspStatus::ERROR))
                    }
                };
                // A response we cannot write means a broken ring: the
                // connection's next checks find it.
                let _ = answered;
            });
        });
        // The NIC is done with these pages. Per-buffer mappings go before
        // the responses are pushed (the guest cannot post a page again
        // before it sees its response).
        let dev = vf.dma_dev();
        done_grefs.clear();
        for p in done.drain_all() {
            statics.dma_release(p.buf, dev);
            if per_buffer {
                let _ = done_grefs.push_within_capacity(p.req.gref());
            }
        }
        if per_buffer {
            statics.remove_batch(done_grefs);
        }
        frames
    }

    /// Takes the guest's new requests (as many as the NIC has room for),
    /// maps them (per-buffer mode, one batch) and for DMA outside the VF's
    /// lock, then posts them under it. Returns whether room is left.
    fn refill(&mut self, rx: &mut Rx, statics: Option<&mut StaticGrants>, stats: &mut Stats) -> core::result::Result<bool, NicEnd> {
        let Self { vf, posted, free, own, batch, unposted, ready, .. } = self;
        let per_buffer = own.is_some();
        let Some(statics) = grants(own, statics) else { return Err(NicEnd::Disconnect) };
        let dev = vf.dma_dev();
        // Only our poll posts while the guest is attached: the room read
        // here is there when posting.
        let mut room = 0;
        if !vf.with_queue(&mut |q| room = q.room()) {
            return Err(NicEnd::VfGone);
        }
        batch.clear();
        let mut end = None;
        while batch.len() < room.min(free.len()) {
            let mut req = [RxRequest::zeroed()];
            match rx.take_buffers(&mut req) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    end = Some((NicEnd::Ring(e), batch.len()));
                    break;
                }
            }
            let _ = batch.push_within_capacity(req[0]);
        }
        if batch.is_empty() {
            return match end {
                Some((why, _)) => Err(why),
                None => Ok(room > 0),
            };
        }
        let mapped = if per_buffer { map_batch(statics, batch) } else { batch.len() };
        ready.clear();
        for (i, &req) in batch.iter().enumerate() {
            if i >= mapped {
                end = Some((NicEnd::MapFailed(req.gref()), i));
                break;
            }
            let Some(hit) = statics.lookup(req.gref()).filter(|h| !h.readonly) else {
                end = Some((NicEnd::NotStatic(req.gref()), i));
                break;
            };
            let Ok(buf) = statics.dma_acquire(hit, dev) else {
                end = Some((NicEnd::PostFailed, i));
                break;
            };
            // Tokens were counted for the whole batch.
            let Some(token) = free.pop() else {
                statics.dma_release(buf, dev);
                end = Some((NicEnd::PostFailed, i));
                break;
            };
            let _ = ready.push_within_capacity((token, Posted { req, buf }));
        }
        let (mut n, mut room_left) = (0, false);
        vf.with_queue(&mut |q| {
            for (token, p) in ready.iter() {
                if q.post(p.buf.addr, *token).is_err() {
                    break;
                }
                n += 1;
            }
            q.kick();
            room_left = q.room() > 0;
        });
        let total = ready.len();
        for (i, (token, p)) in ready.drain_all().enumerate() {
            if i < n {
                stats.nic_posted += 1;
                stats.nic_bounces += u64::from(p.buf.bounced);
                stats.nic_dma_maps += u64::from(p.buf.fresh);
                posted[usize::from(token)] = Some(p);
            } else {
                // The NIC refused one (or the VF went): those not posted go back.
                statics.dma_release(p.buf, dev);
                let _ = free.push_within_capacity(token);
            }
        }
        if n < total {
            let why = if vf.is_gone() { NicEnd::VfGone } else { NicEnd::PostFailed };
            end = Some((why, n));
        }
        match end {
            None => Ok(room_left),
            Some((why, at)) => {
                // Taken but not posted: answered (after the NIC's requests)
                // when the path ends; their per-buffer mappings go now.
                for r in &batch[at..] {
                    let _ = unposted.push_within_capacity(*r);
                }
                if per_buffer {
                    unmap_unposted(&batch[at..mapped.max(at)], statics);
                }
                Err(why)
            }
        }
    }

    /// Ends the NIC path: delivers what completed, stops the queue, takes
    /// every other buffer back and answers its request with an error, in
    /// order, then the request that could not be posted. The ring goes
    /// back to the VF's own pool. The caller pushes the responses.
    pub(crate) fn end(&mut self, rx: &mut Rx, mut statics: Option<&mut StaticGrants>, stats: &mut Stats) {
        if !self.live {
            return;
        }
        self.complete(rx, statics.as_deref_mut(), stats);
        let Self { vf, posted, free, unposted, live, own, done, done_grefs, wait_after_end, .. } = self;
        let per_buffer = own.is_some();
        done.clear();
        // The queue stopped, every buffer comes back (under the VF's lock);
        // their DMA and mappings are let go after it.
        vf.detach(*wait_after_end, &mut |token| {
            if let Some(p) = posted.get_mut(usize::from(token)).and_then(Option::take) {
                let _ = rx.respond_error(&p.req, RspStatus::ERROR);
                let _ = done.push_within_capacity(p);
                let _ = free.push_within_capacity(token);
            }
        });
        if let Some(g) = grants(own, statics) {
            let dev = vf.dma_dev();
            done_grefs.clear();
            for p in done.drain_all() {
                g.dma_release(p.buf, dev);
                let _ = done_grefs.push_within_capacity(p.req.gref());
            }
            if per_buffer {
                g.remove_batch(done_grefs);
            }
            // Every buffer is back: nothing the VF could still reach.
            g.dma_forget();
        }
        for r in unposted.drain_all() {
            let _ = rx.respond_error(&r, RspStatus::ERROR);
        }
        *live = false;
    }
}

impl Drop for NicRx {
    fn drop(&mut self) {
        if self.live {
            // Never left to this (`Connection` ends the path first): the
            // NIC at least stops before the static grants' pages go.
            pr_err!("NIC receive path dropped without ending: queue stopped, buffers abandoned\n");
            self.vf.detach(false, &mut |_| {});
        }
    }
}

/// Unmaps the per-buffer mappings of requests that were not posted.
fn unmap_unposted(reqs: &[RxRequest], g: &mut StaticGrants) {
    for r in reqs {
        let _ = g.remove(r.gref());
    }
}

/// Maps the grants of `reqs` (writable) in one batch; if the batch fails
/// (a bad grant among them), one by one up to the first that fails.
/// Returns how many, from the start, are mapped.
fn map_batch(g: &mut StaticGrants, reqs: &[RxRequest]) -> usize {
    let staged = reqs.iter().take_while(|r| g.stage(r.gref(), false).is_ok()).count();
    if staged == reqs.len() && g.commit().is_ok() {
        return staged;
    }
    g.abort();
    for (i, r) in reqs.iter().enumerate() {
        if g.stage(r.gref(), false).is_err() || g.commit().is_err() {
            g.abort();
            return i;
        }
    }
    reqs.len()
}
