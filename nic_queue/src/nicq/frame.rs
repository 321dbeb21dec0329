//! A completed frame as netif receive responses.
//!
//! Each buffer the NIC filled answers the guest request it came from, in
//! order: offset 0 (the NIC writes from the start of the buffer), the bytes
//! it holds as status, `more_data` on all but the last, and on the first
//! `data_validated` when the NIC verified the TCP/UDP checksum. A dropped
//! frame answers each of its requests with an error status, so the guest
//! gets every buffer back and the ring order holds.

use super::super::netif::{RspStatus, RxFlags, RxResponse};
use super::desc::Csum;
use super::ring::{Frame, FrameStatus, FRAME_MAX_BUFS};

/// Writes `frame`'s responses into `out`, the netif request id of each
/// buffer given by `id`; returns how many (one per buffer).
pub fn frame_responses<T: Copy>(
    frame: &Frame<T>,
    id: impl Fn(&T) -> u16,
    out: &mut [RxResponse; FRAME_MAX_BUFS],
) -> usize {
    let n = frame.buffer_count();
    for (k, ((token, len), rsp)) in frame.buffers().zip(out.iter_mut()).enumerate() {
        *rsp = match frame.status {
            FrameStatus::Good(csum) => {
                let mut fl = RxFlags(0);
                if k == 0 && csum == Csum::Verified {
                    fl = fl.with(RxFlags::DATA_VALIDATED);
                }
                if k + 1 < n {
                    fl = fl.with(RxFlags::MORE_DATA);
                }
                // A length is at most one page (the ring checks it), so it fits.
                RxResponse::new(id(&token), 0, fl, len as i16)
            }
            FrameStatus::Dropped(_) => RxResponse::new(id(&token), 0, RxFlags(0), RspStatus::ERROR.0),
        };
    }
    n
}

#[cfg(test)]
mod tests {
    use super::super::desc::{igb_rx::*, igb_write_back, IgbAdv};
    use super::super::ring::{DescMem, RxRing};
    use super::*;
    use zerocopy::FromZeros;

    struct Mem([[u64; 2]; 8]);
    impl DescMem for Mem {
        fn write(&mut self, i: usize, d: [u64; 2]) {
            self.0[i] = d;
        }
        fn read_word1(&self, i: usize) -> u64 {
            self.0[i][1]
        }
    }

    #[test]
    fn responses_of_a_jumbo_and_a_dropped_frame() {
        let mut r = RxRing::<u16, IgbAdv>::new_box_zeroed().unwrap();
        r.configure(8, 4096).unwrap();
        let mut m = Mem([[0; 2]; 8]);
        for id in 0..4u16 {
            r.post(&mut m, 0x10000 + u64::from(id) * 4096, 100 + id).unwrap();
        }
        m.0[0][1] = igb_write_back(STAT_DD | STAT_TCPCS, 4096);
        m.0[1][1] = igb_write_back(STAT_DD | STAT_TCPCS, 4096);
        m.0[2][1] = igb_write_back(STAT_DD | STAT_EOP | STAT_TCPCS | STAT_IPCS, 822);
        m.0[3][1] = igb_write_back(STAT_DD | STAT_EOP | ERR_RXE, 60);
        let mut out = [RxResponse::zeroed(); FRAME_MAX_BUFS];
        let mut all = std::vec::Vec::new();
        r.reap(&m, 8, |f| {
            let n = frame_responses(f, |t| *t, &mut out);
            all.extend(out[..n].iter().map(|x| (x.id(), x.offset(), x.flags(), x.status())));
        });
        let v = RxFlags::DATA_VALIDATED;
        let more = RxFlags::MORE_DATA;
        assert_eq!(
            all,
            std::vec![
                (100, 0, v.with(more), 4096),
                (101, 0, more, 4096),
                (102, 0, RxFlags(0), 822),
                (103, 0, RxFlags(0), RspStatus::ERROR.0),
            ]
        );
    }
}
