//! Finishing a partial checksum in a frame we hold a private copy of.
//!
//! A frame received with `NETRXF_csum_blank` has its TCP or UDP checksum
//! left for someone to fill in (the sender offloaded it): the field holds
//! the pseudo-header's folded sum, as Linux's `CHECKSUM_PARTIAL` leaves it.
//! netfront_opt completes it before an XDP program sees the frame, so a
//! frame the program sends elsewhere (`XDP_REDIRECT`) carries a valid
//! checksum and a program that checks one sees the real thing.

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Where a frame's TCP or UDP checksum is summed: the L4 header's start,
/// the end of the L4 data (from the IP header's length, so Ethernet padding
/// stays out), the checksum field's offset, and whether it is UDP. For
/// Ethernet with IPv4 (any header length, not a fragment) or IPv6 (no
/// extension header); `None` for anything else or anything cut short.
pub fn l4_checksum_at(frame: &[u8]) -> Option<L4Checksum> {
    let be16 = |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?])) };
    let (start, end, proto) = match be16(12)? {
        ETH_P_IP => {
            let vihl = *frame.get(ETH_HLEN)?;
            let ihl = usize::from(vihl & 0xf) * 4;
            // A fragment has no whole L4 datagram to sum.
            if vihl >> 4 != 4 || ihl < 20 || be16(ETH_HLEN + 6)? & 0x3fff != 0 {
                return None;
            }
            (ETH_HLEN + ihl, ETH_HLEN + usize::from(be16(ETH_HLEN + 2)?), *frame.get(ETH_HLEN + 9)?)
        }
        ETH_P_IPV6 => {
            if *frame.get(ETH_HLEN)? >> 4 != 6 {
                return None;
            }
            let start = ETH_HLEN + 40;
            (start, start + usize::from(be16(ETH_HLEN + 4)?), *frame.get(ETH_HLEN + 6)?)
        }
        _ => return None,
    };
    let (field, header, udp) = match proto {
        IPPROTO_TCP => (16, 20, false),
        IPPROTO_UDP => (6, 8, true),
        _ => return None,
    };
    if end > frame.len() || end < start + header {
        return None;
    }
    Some(L4Checksum { start, end, field: start + field, udp })
}

/// What [`l4_checksum_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4Checksum {
    /// The L4 header's first byte.
    pub start: usize,
    /// One past the L4 data's last byte.
    pub end: usize,
    /// The checksum field.
    pub field: usize,
    /// UDP (a computed 0 goes out as 0xffff).
    pub udp: bool,
}

/// The 16-bit one's complement sum of `data` (big-endian words; an odd last
/// byte is the high half of a word), folded.
pub fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Completes the checksum the sender left partial (its field holding the
/// pseudo-header's folded sum): the sum over the L4 header and data, field
/// included, inverted, goes into the field. False, the frame unchanged, if
/// [`l4_checksum_at`] does not know it.
pub fn finish_partial_checksum(frame: &mut [u8]) -> bool {
    let Some(c) = l4_checksum_at(frame) else {
        return false;
    };
    let mut csum = !ones_complement_sum(&frame[c.start..c.end]);
    if c.udp && csum == 0 {
        csum = 0xffff;
    }
    frame[c.field..c.field + 2].copy_from_slice(&csum.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The pseudo-header's sum for IPv4 or IPv6 addresses.
    fn pseudo(src: &[u8], dst: &[u8], proto: u8, len: usize) -> u16 {
        let mut b = [src, dst].concat();
        b.extend_from_slice(&[0, proto]);
        b.extend_from_slice(&(len as u32).to_be_bytes());
        ones_complement_sum(&b)
    }

    fn ipv4_frame(proto: u8, l4: &[u8], pad: usize) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let tot = (20 + l4.len()) as u16;
        f[16..18].copy_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(l4);
        f.resize(f.len() + pad, 0xee);
        f
    }

    fn ipv6_frame(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        f.extend_from_slice(&[proto, 64]);
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        f.extend_from_slice(l4);
        f
    }

    /// A 1020-byte TCP segment (header and a patterned payload) between
    /// the two addresses of `ipv6_frame`, its field zero, and the
    /// pseudo-header's sum.
    fn tcp6_segment() -> (Vec<u8>, u16) {
        let mut l4 = vec![0u8; 20 + 1000];
        for (i, b) in l4.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        l4[12] = 0x50;
        l4[16..18].copy_from_slice(&[0, 0]);
        let src = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        let ps = pseudo(&src, &dst, IPPROTO_TCP, l4.len());
        (l4, ps)
    }

    /// The checksum computed the plain way: pseudo-header plus L4 bytes
    /// with a zero field, inverted.
    fn reference(pseudo_sum: u16, l4: &[u8], field: usize) -> u16 {
        let mut b = l4.to_vec();
        b[field..field + 2].copy_from_slice(&[0, 0]);
        !add(ones_complement_sum(&b), pseudo_sum)
    }

    /// One's complement addition.
    fn add(a: u16, b: u16) -> u16 {
        let s = u32::from(a) + u32::from(b);
        ((s & 0xffff) + (s >> 16)) as u16
    }

    // Known answers, computed independently of this module (RFC 1071's
    // worked example; the IPv4 header in RFC 1071's style that every
    // tutorial uses; the frames below summed by a separate Python script),
    // so a wrong sum cannot pass by agreeing with itself.

    #[test]
    fn rfc1071_example() {
        assert_eq!(ones_complement_sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0xddf2);
        // An odd length: the last byte is a word's high half.
        assert_eq!(ones_complement_sum(&[0x00, 0x01, 0xf2]), 0xf201);
    }

    #[test]
    fn ipv4_header_known_answer() {
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(!ones_complement_sum(&h), 0xb861);
        h[10..12].copy_from_slice(&[0xb8, 0x61]);
        assert_eq!(ones_complement_sum(&h), 0xffff);
    }

    #[test]
    fn udp_and_tcp_known_answers() {
        // UDP 10.0.0.1:12345 -> 10.0.0.2:7, "hello".
        let mut l4 = vec![0x30, 0x39, 0, 7, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o'];
        let ps = pseudo(&[10, 0, 0, 1], &[10, 0, 0, 2], IPPROTO_UDP, l4.len());
        l4[6..8].copy_from_slice(&ps.to_be_bytes());
        let mut f = ipv4_frame(IPPROTO_UDP, &l4, 0);
        assert!(finish_partial_checksum(&mut f));
        assert_eq!(&f[40..42], &[0x77, 0xbf]);
        // TCP over IPv6 (the frame of `tcp_over_ipv6`).
        let (mut l4, ps) = tcp6_segment();
        l4[16..18].copy_from_slice(&ps.to_be_bytes());
        let mut f = ipv6_frame(IPPROTO_TCP, &l4);
        assert!(finish_partial_checksum(&mut f));
        assert_eq!(&f[54 + 16..54 + 18], &[0xf9, 0xed]);
    }

    #[test]
    fn udp_over_ipv4_with_padding() {
        // 5 bytes of payload: an odd length; Ethernet padding after it.
        let mut l4 = vec![0x30, 0x39, 0, 7, 0, 13, 0, 0, b'h', b'e', b'l', b'l', b'o'];
        let ps = pseudo(&[10, 0, 0, 1], &[10, 0, 0, 2], IPPROTO_UDP, l4.len());
        let want = reference(ps, &l4, 6);
        l4[6..8].copy_from_slice(&ps.to_be_bytes());
        let mut f = ipv4_frame(IPPROTO_UDP, &l4, 20);
        assert!(finish_partial_checksum(&mut f));
        assert_eq!(u16::from_be_bytes([f[40], f[41]]), want);
        // The receiver's check: the whole sum, pseudo-header included, is 0xffff.
        let pseudo_sum = pseudo(&[10, 0, 0, 1], &[10, 0, 0, 2], IPPROTO_UDP, l4.len());
        assert_eq!(add(ones_complement_sum(&f[34..34 + l4.len()]), pseudo_sum), 0xffff);
    }

    #[test]
    fn tcp_over_ipv6() {
        let (mut l4, ps) = tcp6_segment();
        let want = reference(ps, &l4, 16);
        l4[16..18].copy_from_slice(&ps.to_be_bytes());
        let mut f = ipv6_frame(IPPROTO_TCP, &l4);
        assert!(finish_partial_checksum(&mut f));
        assert_eq!(u16::from_be_bytes([f[54 + 16], f[54 + 17]]), want);
    }

    #[test]
    fn udp_zero_goes_out_as_ffff() {
        // A field and payload that sum to 0xffff: the checksum would be 0.
        let l4 = [0xff, 0xff, 0, 0, 0, 8, 0, 0];
        let ps = 0xffff - ones_complement_sum(&l4);
        let mut l4 = l4;
        l4[6..8].copy_from_slice(&ps.to_be_bytes());
        let mut f = ipv4_frame(IPPROTO_UDP, &l4, 0);
        assert!(finish_partial_checksum(&mut f));
        assert_eq!(&f[40..42], &[0xff, 0xff]);
    }

    #[test]
    fn unknown_or_short_frames_are_left_alone() {
        let udp = [0u8; 8];
        let good = ipv4_frame(IPPROTO_UDP, &udp, 0);
        // ICMP, a fragment, an IP length past the frame, a cut header, ARP.
        let mut icmp = ipv4_frame(1, &udp, 0);
        let mut frag = good.clone();
        frag[20] = 0x20; // more fragments
        let mut long = good.clone();
        long[16..18].copy_from_slice(&200u16.to_be_bytes());
        let mut cut = good.clone();
        cut.truncate(30);
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        for f in [&mut icmp, &mut frag, &mut long, &mut cut, &mut arp] {
            let before = f.clone();
            assert!(!finish_partial_checksum(f));
            assert_eq!(*f, before);
        }
        assert!(l4_checksum_at(&good).is_some());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Frames of random bytes with a plausible start: Ethernet type and
        // IP version right, the rest (lengths, protocol) anything.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..20_000 {
            let len = (i % 200) + 1;
            let mut f: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            if len > 14 {
                let v6 = i % 2 == 0;
                f[12..14].copy_from_slice(if v6 { &[0x86, 0xdd] } else { &[0x08, 0x00] });
                f[14] = if v6 { 0x60 } else { 0x40 | (f[14] & 0xf) };
            }
            if let Some(c) = l4_checksum_at(&f) {
                assert!(c.start < c.end && c.end <= f.len() && c.field + 2 <= c.end);
            }
            let _ = finish_partial_checksum(&mut f);
        }
    }

    #[test]
    fn every_prefix_of_a_frame_is_safe() {
        let f = ipv6_frame(IPPROTO_TCP, &[0u8; 40]);
        for n in 0..=f.len() {
            let mut p = f[..n].to_vec();
            let _ = finish_partial_checksum(&mut p);
        }
    }
}
