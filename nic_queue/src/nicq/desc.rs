//! Receive descriptor formats: how a NIC family is told where a buffer is,
//! and how it reports what it wrote there.
//!
//! A descriptor is 16 bytes, two little-endian 64-bit words, in memory the
//! NIC and the driver share. The driver writes the "read" format (the
//! buffer's bus address); the NIC overwrites it with a write-back whose
//! second word carries the status, error bits and length. Reading that one
//! word (a single 64-bit load) gives a consistent view of a completion.

/// What a NIC reported for one receive descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBack {
    /// The NIC is done with the descriptor (nothing else is valid until set).
    pub done: bool,
    /// Last descriptor of its frame.
    pub end_of_frame: bool,
    /// Bytes written into this descriptor's buffer.
    pub len: u16,
    /// Frame-level receive error (CRC, symbol, sequence, carrier, ...).
    pub frame_error: bool,
    /// The NIC's verdict on the layer-4 checksum.
    pub csum: Csum,
}

/// The NIC's checksum verdict for a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Csum {
    /// Not checked (not TCP/UDP, or offload off).
    Unchecked,
    /// IP header and TCP/UDP checksum verified good.
    Verified,
    /// The NIC found a bad IP or TCP/UDP checksum (the stack checks again).
    Bad,
}

/// A NIC family's receive descriptor format. Porting the queue to another
/// family (82599/X540 VFs: `ixgbevf`) means one more implementation and
/// the family's register programming; the ring logic stays.
pub trait DescFormat {
    /// The read-format descriptor for a buffer at bus address `dma`. Its
    /// "done" bit must read clear, so a recycled slot is never mistaken
    /// for a completion.
    fn read_format(dma: u64) -> [u64; 2];
    /// Decodes the second word of a written-back descriptor.
    fn parse(word1: u64) -> WriteBack;
    /// Buffer sizes the NIC can be programmed with: multiples of this.
    const BUF_UNIT: u32;
    /// Largest buffer the NIC can be told about.
    const BUF_MAX: u32;
}

/// Intel 82576 (igb) advanced one-buffer receive descriptors, the only
/// receive format QEMU's igb model implements (`SRRCTL.DESCTYPE` = 1).
///
/// Read: word 0 = packet buffer address, word 1 = header buffer address
/// (0: no header split; its bit 0 is where the NIC writes "done").
/// Write-back word 1: bits 0-31 extended status and errors, 32-47 length,
/// 48-63 VLAN tag.
pub struct IgbAdv;

/// igb extended status and error bits (Linux `e1000_defines.h`,
/// `E1000_RXD_STAT_*` and `E1000_RXDEXT_STATERR_*`).
pub mod igb_rx {
    /// Descriptor done.
    pub const STAT_DD: u32 = 0x01;
    /// End of packet.
    pub const STAT_EOP: u32 = 0x02;
    /// Ignore the checksum indications.
    pub const STAT_IXSM: u32 = 0x04;
    /// UDP checksum calculated.
    pub const STAT_UDPCS: u32 = 0x10;
    /// TCP checksum calculated.
    pub const STAT_TCPCS: u32 = 0x20;
    /// IP checksum calculated.
    pub const STAT_IPCS: u32 = 0x40;
    /// CRC error.
    pub const ERR_CE: u32 = 0x0100_0000;
    /// Symbol error.
    pub const ERR_SE: u32 = 0x0200_0000;
    /// Sequence error.
    pub const ERR_SEQ: u32 = 0x0400_0000;
    /// Carrier extension error.
    pub const ERR_CXE: u32 = 0x1000_0000;
    /// TCP/UDP checksum error.
    pub const ERR_TCPE: u32 = 0x2000_0000;
    /// IP checksum error.
    pub const ERR_IPE: u32 = 0x4000_0000;
    /// Receive data error.
    pub const ERR_RXE: u32 = 0x8000_0000;
    /// The errors that make the frame itself bad (`igbvf`'s frame error mask).
    pub const FRAME_ERRORS: u32 = ERR_CE | ERR_SE | ERR_SEQ | ERR_CXE | ERR_RXE;
}

impl DescFormat for IgbAdv {
    fn read_format(dma: u64) -> [u64; 2] {
        [dma, 0]
    }

    fn parse(word1: u64) -> WriteBack {
        use igb_rx::*;
        let st = word1 as u32;
        let csum = if st & STAT_IXSM != 0 {
            Csum::Unchecked
        } else if st & (ERR_TCPE | ERR_IPE) != 0 {
            Csum::Bad
        } else if st & (STAT_TCPCS | STAT_UDPCS) != 0 {
            Csum::Verified
        } else {
            Csum::Unchecked
        };
        WriteBack {
            done: st & STAT_DD != 0,
            end_of_frame: st & STAT_EOP != 0,
            len: (word1 >> 32) as u16,
            frame_error: st & FRAME_ERRORS != 0,
            csum,
        }
    }

    /// `SRRCTL.BSIZEPKT` counts 1 KB units in 7 bits.
    const BUF_UNIT: u32 = 1024;
    const BUF_MAX: u32 = 127 * 1024;
}

/// Encodes an igb write-back (for simulations and tests).
pub fn igb_write_back(status_error: u32, len: u16) -> u64 {
    u64::from(status_error) | (u64::from(len) << 32)
}

#[cfg(test)]
mod tests {
    use super::igb_rx::*;
    use super::*;

    #[test]
    fn read_format_clears_done() {
        let d = IgbAdv::read_format(0x1234_5000);
        assert_eq!(d[0], 0x1234_5000);
        assert!(!IgbAdv::parse(d[1]).done);
    }

    #[test]
    fn write_back_fields() {
        let wb = IgbAdv::parse(igb_write_back(STAT_DD | STAT_EOP | STAT_TCPCS | STAT_IPCS, 1514));
        assert_eq!(
            wb,
            WriteBack { done: true, end_of_frame: true, len: 1514, frame_error: false, csum: Csum::Verified }
        );
        let wb = IgbAdv::parse(igb_write_back(STAT_DD | STAT_TCPCS | ERR_TCPE, 4096));
        assert_eq!((wb.end_of_frame, wb.csum, wb.frame_error), (false, Csum::Bad, false));
        let wb = IgbAdv::parse(igb_write_back(STAT_DD | STAT_EOP | STAT_IXSM | STAT_UDPCS | ERR_CE, 60));
        assert_eq!((wb.csum, wb.frame_error), (Csum::Unchecked, true));
        // The VLAN tag (bits 48-63) does not leak into the length.
        let wb = IgbAdv::parse(igb_write_back(STAT_DD, 100) | (0xabcd << 48));
        assert_eq!(wb.len, 100);
    }
}
