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
//! A posted buffer holds its static grant (`dma_acquire`): a `DEL` of it
//! waits until the NIC is done with the page, and nothing is unmapped
//! before the queue is stopped and the buffer taken back.

use kernel::prelude::*;
use kernel::sync::Arc;

use crate::igbvf::VfRx;
use crate::netif::{RspStatus, RxBack, RxExtras, RxRequest};
use crate::xen_sys::barrier::XenBarriers;
use crate::xen_sys::grant_reuse::Hit;
use crate::xen_sys::netdev::Stats;
use crate::xen_sys::nic_queue::{frame_to_netif, RxQueue, FRAME_MAX_BUFS};
use crate::xen_sys::reuse::{DmaBuf, StaticGrants};
use crate::xen_sys::ring::OnRing;
use crate::xen_sys::xenbus::MappedRing;

/// Frames reaped per poll at most.
pub(crate) const BUDGET: usize = 64;

type Rx = OnRing<RxBack<XenBarriers>, MappedRing>;

/// A guest buffer the NIC holds.
#[derive(Clone, Copy)]
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
    /// The NIC refused a buffer, or mapping it for DMA failed.
    PostFailed,
    /// The connection goes.
    Disconnect,
}

impl kernel::fmt::Display for NicEnd {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        match self {
            NicEnd::NotStatic(g) => write!(f, "a request names grant {g}, not a writable static grant"),
            NicEnd::VfGone => f.write_str("the VF was unbound"),
            NicEnd::PostFailed => f.write_str("a buffer could not be posted"),
            NicEnd::Disconnect => f.write_str("disconnected"),
        }
    }
}

/// One queue's receive path through a VF.
pub(crate) struct NicRx {
    vf: Arc<VfRx>,
    /// Posted buffers, by the token the ring hands back (an index).
    posted: KVec<Option<Posted>>,
    free: KVec<u16>,
    /// A request taken from the ring that could not be posted: answered
    /// after those the NIC holds.
    unposted: Option<RxRequest>,
    /// `end` ran (the VF's ring no longer holds our buffers).
    ended: bool,
}

impl NicRx {
    pub(crate) fn new(vf: Arc<VfRx>) -> Result<Self> {
        let n = vf.ring_size();
        let mut free = KVec::with_capacity(n, GFP_KERNEL)?;
        for t in (0..n as u16).rev() {
            free.push(t, GFP_KERNEL)?;
        }
        Ok(Self { vf, posted: KVec::from_elem(None, n, GFP_KERNEL)?, free, unposted: None, ended: false })
    }

    pub(crate) fn vf(&self) -> &Arc<VfRx> {
        &self.vf
    }

    /// Reaps completed frames into responses, then posts the guest's new
    /// requests. Returns the frames delivered, or why the path must end.
    pub(crate) fn poll(&mut self, rx: &mut Rx, statics: &mut StaticGrants, stats: &mut Stats) -> core::result::Result<usize, NicEnd> {
        if self.vf.is_gone() {
            return Err(NicEnd::VfGone);
        }
        let frames = self.complete(rx, statics, stats);
        self.refill(rx, statics, stats)?;
        Ok(frames)
    }

    fn complete(&mut self, rx: &mut Rx, statics: &mut StaticGrants, stats: &mut Stats) -> usize {
        let Self { vf, posted, free, .. } = self;
        let dev = vf.dma_dev();
        vf.queue(|q| {
            q.reap(BUDGET, &mut |f| {
                let mut reqs = [RxRequest::zeroed(); FRAME_MAX_BUFS];
                let mut n = 0;
                for ((token, _), r) in f.buffers().zip(reqs.iter_mut()) {
                    let Some(p) = posted.get_mut(usize::from(token)).and_then(Option::take) else { continue };
                    *r = p.req;
                    n += 1;
                    statics.dma_release(p.buf, dev);
                    let _ = free.push_within_capacity(token);
                }
                let reqs = &reqs[..n];
                let answered = match frame_to_netif(f) {
                    Some((flags, outs, k)) if k == n => {
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
            })
        })
        .unwrap_or(0)
    }

    fn refill(&mut self, rx: &mut Rx, statics: &mut StaticGrants, stats: &mut Stats) -> core::result::Result<(), NicEnd> {
        let Self { vf, posted, free, .. } = self;
        let dev = vf.dma_dev();
        let r = vf.queue(|q| {
            let mut end = Ok(());
            while q.room() > 0 && !free.is_empty() {
                let mut req = [RxRequest::zeroed()];
                match rx.take_buffers(&mut req) {
                    Ok(true) => {}
                    _ => break,
                }
                let req = req[0];
                let hit: Option<Hit> = statics.lookup(req.gref()).filter(|h| !h.readonly);
                let Some(hit) = hit else {
                    // Answered (in order) once the NIC's requests are.
                    end = Err((NicEnd::NotStatic(req.gref()), Some(req)));
                    break;
                };
                let buf = match statics.dma_acquire(hit, dev) {
                    Ok(b) => b,
                    Err(_) => {
                        end = Err((NicEnd::PostFailed, Some(req)));
                        break;
                    }
                };
                let Some(token) = free.pop() else { break };
                if q.post(buf.addr, token).is_err() {
                    statics.dma_release(buf, dev);
                    let _ = free.push_within_capacity(token);
                    end = Err((NicEnd::PostFailed, Some(req)));
                    break;
                }
                posted[usize::from(token)] = Some(Posted { req, buf });
                stats.nic_posted += 1;
                stats.nic_bounces += u64::from(buf.bounced);
            }
            q.kick();
            end
        });
        match r {
            None => Err(NicEnd::VfGone),
            Some(Ok(())) => Ok(()),
            Some(Err((why, req))) => {
                self.unposted = req;
                Err(why)
            }
        }
    }

    /// Ends the NIC path: delivers what completed, stops the queue, takes
    /// every other buffer back and answers its request with an error, in
    /// order, then the request that could not be posted. The ring goes
    /// back to the VF's own pool. The caller pushes the responses.
    pub(crate) fn end(&mut self, rx: &mut Rx, statics: &mut StaticGrants, stats: &mut Stats) {
        if self.ended {
            return;
        }
        self.complete(rx, statics, stats);
        let Self { vf, posted, free, unposted, ended } = self;
        let dev = vf.dma_dev();
        vf.detach(&mut |token| {
            if let Some(p) = posted.get_mut(usize::from(token)).and_then(Option::take) {
                let _ = rx.respond_error(&p.req, RspStatus::ERROR);
                statics.dma_release(p.buf, dev);
                let _ = free.push_within_capacity(token);
            }
        });
        if let Some(r) = unposted.take() {
            let _ = rx.respond_error(&r, RspStatus::ERROR);
        }
        *ended = true;
    }
}

impl Drop for NicRx {
    fn drop(&mut self) {
        if !self.ended {
            // Never left to this (`Connection` ends the path first): the
            // NIC at least stops before the static grants' pages go.
            pr_err!("NIC receive path dropped without ending: queue stopped, buffers abandoned\n");
            self.vf.detach(&mut |_| {});
        }
    }
}
