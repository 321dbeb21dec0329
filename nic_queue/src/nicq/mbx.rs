//! The igb VF mailbox: messages a VF driver sends the PF driver (Linux's
//! `igb`) and the replies it gets, as Linux `igbvf` speaks them.
//!
//! The PF owns the pool's filters: a VF asks it to reset the VF (which
//! enables the pool's receive and transmit and returns the MAC the
//! administrator assigned), to accept large frames, and to join multicast
//! hashes. The PF's reply is untrusted input here only in the sense that a
//! malformed one is refused, never acted on.

/// Mailbox memory: 16 words.
pub const MBX_WORDS: usize = 16;

/// Message types (`E1000_VF_*`, word 0 bits 0-15).
pub mod msg {
    /// Reset the VF; reply carries the MAC.
    pub const RESET: u32 = 0x01;
    /// Set the VF's MAC.
    pub const SET_MAC_ADDR: u32 = 0x02;
    /// Multicast hash list.
    pub const SET_MULTICAST: u32 = 0x03;
    /// Largest frame the pool accepts.
    pub const SET_LPE: u32 = 0x05;
    /// Reply: request done.
    pub const ACK: u32 = 0x8000_0000;
    /// Reply: request refused.
    pub const NACK: u32 = 0x4000_0000;
    /// Reply flag: the PF reset the VF and it may send ("clear to send").
    pub const CTS: u32 = 0x2000_0000;
    /// Word 0 bits 16-23: a count (multicast hashes).
    pub const INFO_SHIFT: u32 = 16;
    /// Most multicast hashes one message carries.
    pub const MAX_MC_HASHES: usize = 30;
    /// A message the PF sends unasked (`E1000_PF_CONTROL_MSG`): with CTS a
    /// ping, without it "I reset you: reset and ask again".
    pub const PF_CONTROL: u32 = 0x0100;
}

/// What a message the PF sent unasked means for the VF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PfMessage {
    /// The PF reset the VF (its pool no longer receives): start over.
    Reset,
    /// Nothing to do (a ping with CTS, or a message of no known kind).
    Nothing,
}

/// Classifies word 0 of a message the PF sent on its own.
pub fn pf_message(w0: u32) -> PfMessage {
    if w0 & 0xffff == msg::PF_CONTROL && w0 & msg::CTS == 0 {
        PfMessage::Reset
    } else {
        PfMessage::Nothing
    }
}

/// The multicast groups a pool steered by `mac` joins on its guest's
/// behalf, since neither netfront tells the backend its groups: IPv4 all
/// hosts, IPv6 all nodes, and the IPv6 solicited-node group of the
/// guest's MAC-derived (EUI-64) addresses, which neighbour discovery
/// needs.
pub fn guest_groups(mac: [u8; 6]) -> [[u8; 6]; 3] {
    [
        [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
        [0x33, 0x33, 0x00, 0x00, 0x00, 0x01],
        [0x33, 0x33, 0xff, mac[3], mac[4], mac[5]],
    ]
}

/// A request to the PF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VfRequest<'a> {
    /// Reset: the PF enables the pool and answers with the assigned MAC.
    Reset,
    /// Ask for a MAC (refused when the administrator set one).
    SetMac([u8; 6]),
    /// Multicast hash values (the upper 12 bits of each group's CRC).
    SetMulticast(&'a [u16]),
    /// The largest frame (bytes, FCS included) the pool accepts.
    SetLpe(u32),
}

/// Why a message could not be built or a reply was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbxError {
    /// More multicast hashes than one message carries.
    TooMany,
    /// The PF refused (NACK), e.g. no MAC assigned to the VF.
    Refused,
    /// A reply to another request, or neither ACK nor NACK.
    Garbled,
}

impl VfRequest<'_> {
    /// The request's type (word 0, low bits).
    pub fn ty(&self) -> u32 {
        match self {
            VfRequest::Reset => msg::RESET,
            VfRequest::SetMac(_) => msg::SET_MAC_ADDR,
            VfRequest::SetMulticast(_) => msg::SET_MULTICAST,
            VfRequest::SetLpe(_) => msg::SET_LPE,
        }
    }

    /// Encodes into mailbox words; returns how many to write.
    pub fn encode(&self, out: &mut [u32; MBX_WORDS]) -> Result<usize, MbxError> {
        *out = [0; MBX_WORDS];
        out[0] = self.ty();
        Ok(match *self {
            VfRequest::Reset => 1,
            VfRequest::SetMac(mac) => {
                put_mac(out, mac);
                3
            }
            VfRequest::SetMulticast(h) => {
                if h.len() > msg::MAX_MC_HASHES {
                    return Err(MbxError::TooMany);
                }
                out[0] |= (h.len() as u32) << msg::INFO_SHIFT;
                // Two 16-bit hashes per word, little end first.
                for (i, &v) in h.iter().enumerate() {
                    out[1 + i / 2] |= u32::from(v) << (16 * (i % 2));
                }
                1 + h.len().div_ceil(2)
            }
            VfRequest::SetLpe(max) => {
                out[1] = max;
                2
            }
        })
    }
}

/// A MAC as the mailbox carries it: bytes in order from word 1's low byte.
fn put_mac(out: &mut [u32; MBX_WORDS], mac: [u8; 6]) {
    out[1] = u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]);
    out[2] = u32::from(u16::from_le_bytes([mac[4], mac[5]]));
}

fn get_mac(w: &[u32; MBX_WORDS]) -> [u8; 6] {
    let a = w[1].to_le_bytes();
    let b = w[2].to_le_bytes();
    [a[0], a[1], a[2], a[3], b[0], b[1]]
}

/// Checks the PF's reply to `req`. For a reset, returns the MAC it
/// assigned (an all-zero or multicast one counts as none: refused).
pub fn parse_reply(req: &VfRequest<'_>, reply: &[u32; MBX_WORDS]) -> Result<Option<[u8; 6]>, MbxError> {
    let w0 = reply[0];
    if w0 & 0xffff != req.ty() {
        return Err(MbxError::Garbled);
    }
    match (w0 & msg::ACK != 0, w0 & msg::NACK != 0) {
        (true, false) => {}
        (false, true) => return Err(MbxError::Refused),
        _ => return Err(MbxError::Garbled),
    }
    if let VfRequest::Reset = req {
        let mac = get_mac(reply);
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(MbxError::Refused);
        }
        return Ok(Some(mac));
    }
    Ok(None)
}

/// The multicast hash igb's filter uses for a group address with the PF's
/// default filter type 0: bits 4-15 of `mac[4] >> 4 | mac[5] << 4`.
pub fn mc_hash(mac: [u8; 6]) -> u16 {
    ((u16::from(mac[4]) >> 4) | (u16::from(mac[5]) << 4)) & 0xfff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pf_messages() {
        assert_eq!(pf_message(msg::PF_CONTROL), PfMessage::Reset);
        assert_eq!(pf_message(msg::PF_CONTROL | msg::CTS), PfMessage::Nothing);
        assert_eq!(pf_message(msg::RESET | msg::ACK), PfMessage::Nothing);
        assert_eq!(pf_message(0), PfMessage::Nothing);
    }

    #[test]
    fn groups_of_a_guest() {
        let g = guest_groups([0x00, 0x16, 0x3e, 0x99, 0x00, 0x01]);
        assert_eq!(g[2], [0x33, 0x33, 0xff, 0x99, 0x00, 0x01]);
        assert!(g.iter().all(|m| m[0] & 1 == 1));
        // The solicited-node group follows the MAC's last three bytes.
        assert_eq!(guest_groups([0, 0, 0, 0xab, 0xcd, 0xef])[2], [0x33, 0x33, 0xff, 0xab, 0xcd, 0xef]);
    }

    #[test]
    fn encode_requests() {
        let mut w = [0; MBX_WORDS];
        assert_eq!(VfRequest::Reset.encode(&mut w), Ok(1));
        assert_eq!(w[0], 1);
        assert_eq!(VfRequest::SetMac([0x00, 0x16, 0x3e, 0x01, 0x02, 0x03]).encode(&mut w), Ok(3));
        assert_eq!(&w[..3], &[2, 0x013e_1600, 0x0302]);
        assert_eq!(VfRequest::SetMulticast(&[0x111, 0x222, 0x333]).encode(&mut w), Ok(3));
        assert_eq!(&w[..3], &[3 | 3 << 16, 0x0222_0111, 0x333]);
        assert_eq!(VfRequest::SetMulticast(&[0; 31]).encode(&mut w), Err(MbxError::TooMany));
        assert_eq!(VfRequest::SetLpe(9018).encode(&mut w), Ok(2));
        assert_eq!(&w[..2], &[5, 9018]);
    }

    #[test]
    fn replies_checked() {
        let mut r = [0; MBX_WORDS];
        r[0] = msg::RESET | msg::ACK | msg::CTS;
        put_mac(&mut r, [0x00, 0x16, 0x3e, 0xaa, 0xbb, 0xcc]);
        assert_eq!(parse_reply(&VfRequest::Reset, &r), Ok(Some([0x00, 0x16, 0x3e, 0xaa, 0xbb, 0xcc])));
        assert_eq!(parse_reply(&VfRequest::SetLpe(1518), &r), Err(MbxError::Garbled));
        r[0] = msg::RESET | msg::NACK;
        assert_eq!(parse_reply(&VfRequest::Reset, &r), Err(MbxError::Refused));
        r[0] = msg::RESET | msg::NACK | msg::ACK;
        assert_eq!(parse_reply(&VfRequest::Reset, &r), Err(MbxError::Garbled));
        r[0] = msg::RESET | msg::ACK;
        r[1] = 0;
        r[2] = 0;
        assert_eq!(parse_reply(&VfRequest::Reset, &r), Err(MbxError::Refused));
        r[0] = msg::SET_LPE | msg::ACK;
        assert_eq!(parse_reply(&VfRequest::SetLpe(1518), &r), Ok(None));
    }

    #[test]
    fn multicast_hash() {
        // 01:00:5e:00:00:fb (mDNS): (0x00 >> 4) | (0xfb << 4) = 0xfb0.
        assert_eq!(mc_hash([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]), 0xfb0);
    }
}
