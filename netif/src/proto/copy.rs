//! Grant-copy planning: turning a packet's byte stream, described as a list
//! of page segments on each side, into `GNTTABOP_copy` operations.
//!
//! A grant copy moves bytes between two frames, and neither side of one
//! operation may cross the end of its 4 KiB page. The backend copies guest
//! TX fragments (granted pages) into a local skb, and local skb data into the
//! guest's posted RX buffers; both are the same walk over two segment lists,
//! cut wherever either side reaches the end of a segment. This module does
//! that walk, with no kernel dependency, so the splitting rules are tested on
//! the host.

use super::wire::{GrantRef, PAGE_SIZE};

/// A frame on one side of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A page of the peer domain, by grant reference.
    Grant(GrantRef),
    /// A page of our own, by guest frame number.
    Local(u64),
}

/// A run of bytes within one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    /// The page.
    pub frame: Frame,
    /// Offset in the page.
    pub offset: u16,
    /// Bytes; `offset + len` never exceeds the page size.
    pub len: u16,
}

impl Seg {
    /// An empty segment (initialises working arrays).
    pub const EMPTY: Self = Self {
        frame: Frame::Local(0),
        offset: 0,
        len: 0,
    };

    /// A segment, or `None` if it would cross the end of its page.
    pub fn new(frame: Frame, offset: usize, len: usize) -> Option<Self> {
        (offset + len <= PAGE_SIZE).then_some(Self {
            frame,
            offset: offset as u16,
            len: len as u16,
        })
    }
}

/// One copy operation: `len` bytes from `src` to `dst` (both within a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOp {
    /// Source page and offset.
    pub src: Frame,
    /// Offset in the source page.
    pub src_offset: u16,
    /// Destination page.
    pub dst: Frame,
    /// Offset in the destination page.
    pub dst_offset: u16,
    /// Bytes to copy.
    pub len: u16,
    /// Index of the destination segment this op writes into.
    pub dst_seg: u16,
}

impl CopyOp {
    /// An empty operation (initialises working arrays).
    pub const EMPTY: Self = Self {
        src: Frame::Local(0),
        src_offset: 0,
        dst: Frame::Local(0),
        dst_offset: 0,
        len: 0,
        dst_seg: 0,
    };
}

/// Why a plan could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// More operations than the output holds.
    TooManyOps,
    /// The destination segments hold fewer bytes than the sources.
    DestinationTooSmall,
    /// A segment crosses the end of its page.
    SegmentCrossesPage,
}

/// Plans the copies that move the bytes of `src` (in order) into `dst` (in
/// order), filling each destination segment before the next. Writes the
/// operations to `out` and returns how many; zero-length source segments
/// produce no operation. Every operation stays within one page on each side.
pub fn plan(src: &[Seg], dst: &[Seg], out: &mut [CopyOp]) -> Result<usize, PlanError> {
    let crosses = |s: &Seg| usize::from(s.offset) + usize::from(s.len) > PAGE_SIZE;
    if src.iter().chain(dst.iter()).any(crosses) {
        return Err(PlanError::SegmentCrossesPage);
    }
    let mut n = 0;
    let mut d = 0;
    let mut d_used: u16 = 0;
    for s in src {
        let mut s_used: u16 = 0;
        while s_used < s.len {
            // Skip full (or empty) destination segments.
            while d < dst.len() && d_used == dst[d].len {
                d += 1;
                d_used = 0;
            }
            let Some(ds) = dst.get(d) else {
                return Err(PlanError::DestinationTooSmall);
            };
            let len = (s.len - s_used).min(ds.len - d_used);
            let op = out.get_mut(n).ok_or(PlanError::TooManyOps)?;
            *op = CopyOp {
                src: s.frame,
                src_offset: s.offset + s_used,
                dst: ds.frame,
                dst_offset: ds.offset + d_used,
                len,
                dst_seg: d as u16,
            };
            n += 1;
            s_used += len;
            d_used += len;
        }
    }
    Ok(n)
}

/// Splits `len` bytes starting at byte `start` of a virtually contiguous
/// buffer into per-page segments, calling `frame_of(page_index)` for the
/// frame of each page the buffer touches (`page_index` counts pages from the
/// one holding `start`). Returns the segments written to `out`, or `None` if
/// `out` is too small.
pub fn split_contiguous(
    start: usize,
    len: usize,
    mut frame_of: impl FnMut(usize) -> Frame,
    out: &mut [Seg],
) -> Option<usize> {
    let mut n = 0;
    let mut pos = start;
    let end = start + len;
    let first_page = start / PAGE_SIZE;
    while pos < end {
        let page = pos / PAGE_SIZE;
        let off = pos % PAGE_SIZE;
        let chunk = (PAGE_SIZE - off).min(end - pos);
        *out.get_mut(n)? = Seg {
            frame: frame_of(page - first_page),
            offset: off as u16,
            len: chunk as u16,
        };
        n += 1;
        pos += chunk;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn g(r: u32, off: usize, len: usize) -> Seg {
        Seg::new(Frame::Grant(r), off, len).unwrap()
    }
    fn l(f: u64, off: usize, len: usize) -> Seg {
        Seg::new(Frame::Local(f), off, len).unwrap()
    }

    #[test]
    fn one_to_one() {
        let mut out = [CopyOp::EMPTY; 4];
        let n = plan(&[l(7, 100, 1000)], &[g(3, 0, 4096)], &mut out).unwrap();
        assert_eq!(n, 1);
        assert_eq!(out[0].src, Frame::Local(7));
        assert_eq!(out[0].src_offset, 100);
        assert_eq!(out[0].dst, Frame::Grant(3));
        assert_eq!(out[0].len, 1000);
    }

    #[test]
    fn source_split_across_destinations() {
        let mut out = [CopyOp::EMPTY; 4];
        let n = plan(
            &[l(1, 0, 4096), l(2, 0, 1000)],
            &[g(10, 0, 3000), g(11, 0, 4096)],
            &mut out,
        )
        .unwrap();
        let lens: Vec<_> = out[..n]
            .iter()
            .map(|o| (o.len, o.dst_seg, o.dst_offset))
            .collect();
        assert_eq!(lens, [(3000, 0, 0), (1096, 1, 0), (1000, 1, 1096)]);
    }

    #[test]
    fn zero_length_sources_and_errors() {
        let mut out = [CopyOp::EMPTY; 1];
        assert_eq!(plan(&[g(1, 0, 0), g(2, 10, 0)], &[], &mut out), Ok(0));
        assert_eq!(
            plan(&[g(1, 0, 10)], &[], &mut out),
            Err(PlanError::DestinationTooSmall)
        );
        assert_eq!(
            plan(&[g(1, 0, 10), g(2, 0, 10)], &[l(1, 0, 100)], &mut out),
            Err(PlanError::TooManyOps)
        );
        let bad = Seg {
            frame: Frame::Grant(1),
            offset: 4000,
            len: 200,
        };
        assert_eq!(
            plan(&[bad], &[l(1, 0, 4096)], &mut out),
            Err(PlanError::SegmentCrossesPage)
        );
        assert!(Seg::new(Frame::Grant(1), 4000, 200).is_none());
    }

    #[test]
    fn split_contiguous_pages() {
        let mut out = [l(0, 0, 0); 4];
        let n = split_contiguous(
            4096 * 5 + 4000,
            200,
            |i| Frame::Local(50 + i as u64),
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..n], &[l(50, 4000, 96), l(51, 0, 104)]);
        assert_eq!(
            split_contiguous(0, 0, |_| Frame::Local(0), &mut out),
            Some(0)
        );
        assert_eq!(
            split_contiguous(100, 4096 * 4, |_| Frame::Local(0), &mut out),
            None
        );
    }

    fn segs(lens: &[u16], grant: bool) -> Vec<Seg> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| {
                let off = usize::from(len % 97).min(PAGE_SIZE - usize::from(len));
                let f = if grant {
                    Frame::Grant(i as u32)
                } else {
                    Frame::Local(i as u64)
                };
                Seg::new(f, off, usize::from(len)).unwrap()
            })
            .collect()
    }

    proptest! {
        /// Byte-level model: every source byte lands at its stream position
        /// in the destination stream, once, and no op crosses a page.
        #[test]
        fn plan_matches_byte_model(
            src_lens in proptest::collection::vec(0u16..=4096, 0..20),
            dst_lens in proptest::collection::vec(0u16..=4096, 0..20),
        ) {
            let src = segs(&src_lens, true);
            let dst = segs(&dst_lens, false);
            let total_src: usize = src_lens.iter().map(|&x| usize::from(x)).sum();
            let total_dst: usize = dst_lens.iter().map(|&x| usize::from(x)).sum();
            let mut out = std::vec![CopyOp::EMPTY; 64];
            match plan(&src, &dst, &mut out) {
                Err(PlanError::DestinationTooSmall) => prop_assert!(total_src > total_dst),
                Err(e) => prop_assert!(false, "unexpected {:?}", e),
                Ok(n) => {
                    prop_assert!(total_src <= total_dst);
                    prop_assert!(n <= src.len() + dst.len());
                    // Walk both streams and compare with the ops.
                    let mut src_bytes = Vec::new();
                    for s in &src { for b in 0..s.len { src_bytes.push((s.frame, s.offset + b)); } }
                    let mut dst_bytes = Vec::new();
                    for d in &dst { for b in 0..d.len { dst_bytes.push((d.frame, d.offset + b)); } }
                    let mut pos = 0;
                    for op in &out[..n] {
                        prop_assert!(op.len > 0);
                        prop_assert!(usize::from(op.src_offset) + usize::from(op.len) <= PAGE_SIZE);
                        prop_assert!(usize::from(op.dst_offset) + usize::from(op.len) <= PAGE_SIZE);
                        prop_assert_eq!(dst[usize::from(op.dst_seg)].frame, op.dst);
                        for b in 0..op.len {
                            prop_assert_eq!(src_bytes[pos], (op.src, op.src_offset + b));
                            prop_assert_eq!(dst_bytes[pos], (op.dst, op.dst_offset + b));
                            pos += 1;
                        }
                    }
                    prop_assert_eq!(pos, total_src);
                }
            }
        }
    }
}
