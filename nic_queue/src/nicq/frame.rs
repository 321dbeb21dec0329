//! A completed frame as what netif's receive responses carry.
//!
//! Each buffer the NIC filled answers the guest request it came from, in
//! order, at offset 0 (the NIC writes from the start of the buffer) with
//! the bytes it holds; the first carries `data_validated` when the NIC
//! verified the TCP/UDP checksum. netif's `RxBack::respond` writes them
//! (with `more_data` on all but the last). A dropped frame has nothing to
//! deliver: each of its requests is answered with an error status, so the
//! guest gets every buffer back and the ring order holds.

use super::super::netif::{RxFlags, RxOut};
use super::desc::Csum;
use super::ring::{Frame, FrameStatus, FRAME_MAX_BUFS};

/// The response contents of an intact frame: flags for its first buffer,
/// and each buffer's offset and length (`count` of them). `None` for a
/// dropped frame.
pub fn frame_to_netif<T: Copy>(frame: &Frame<T>) -> Option<(RxFlags, [RxOut; FRAME_MAX_BUFS], usize)> {
    let FrameStatus::Good(csum) = frame.status else { return None };
    let mut outs = [RxOut { offset: 0, len: 0 }; FRAME_MAX_BUFS];
    for (o, (_, len)) in outs.iter_mut().zip(frame.buffers()) {
        o.len = len;
    }
    let flags = if csum == Csum::Verified { RxFlags::DATA_VALIDATED } else { RxFlags(0) };
    Some((flags, outs, frame.buffer_count()))
}

#[cfg(test)]
mod tests {
    use super::super::desc::{igb_rx::*, igb_write_back, IgbAdv};
    use super::super::ring::{PlainDescs, RxRing};
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn a_jumbo_frame_and_a_dropped_one() {
        let mut r = RxRing::<u16, IgbAdv>::new_box_zeroed().unwrap();
        r.configure(8, 4096).unwrap();
        let mut m = PlainDescs([[0; 2]; 8]);
        for id in 0..4u16 {
            r.post(&mut m, 0x10000 + u64::from(id) * 4096, 100 + id).unwrap();
        }
        m.0[0][1] = igb_write_back(STAT_DD, 4096);
        m.0[1][1] = igb_write_back(STAT_DD, 4096);
        m.0[2][1] = igb_write_back(STAT_DD | STAT_EOP | STAT_TCPCS | STAT_IPCS, 822);
        m.0[3][1] = igb_write_back(STAT_DD | STAT_EOP | ERR_RXE, 60);
        let mut got = std::vec::Vec::new();
        r.reap(&m, 8, |f| got.push(frame_to_netif(f).map(|(fl, o, n)| (fl, o[..n].iter().map(|x| (x.offset, x.len)).collect::<std::vec::Vec<_>>()))));
        assert_eq!(
            got,
            std::vec![Some((RxFlags::DATA_VALIDATED, std::vec![(0, 4096), (0, 4096), (0, 822)])), None]
        );
    }
}
