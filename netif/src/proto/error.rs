//! One error value per class of malformed input from a (possibly hostile) peer.
//!
//! This enum is created by our code only; it is never read from shared memory.

use core::fmt;

/// Everything that can go wrong when consuming data written by the peer, plus
/// the few local conditions (full ring, exhausted ids) the caller must handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    // --- shared ring (both sides) ---
    /// The peer's producer index is more than a ring's worth ahead of our
    /// consumer index (XSA-39 class: soft lockup on a bogus `req_prod`).
    RingOverflow,
    /// The peer published more responses than we have requests outstanding.
    ResponseOverrun,
    /// The peer's producer index moved backwards.
    IndexBackwards,
    /// Local: no free slot to push a request or response.
    RingFull,
    /// The page handed to a ring is too small or misaligned.
    BadRingPage,

    // --- request / response ids ---
    /// Local: all ids are in use.
    IdsExhausted,
    /// Local: claiming an id that is already outstanding.
    IdInUse,
    /// A response carries an id we never issued (or is out of range).
    UnknownId,
    /// A response carries an id that is not outstanding (already answered,
    /// or never issued).
    DuplicateResponse,
    /// An RX response id differs from the id posted in the same ring slot.
    RxIdSlotMismatch,

    // --- guest TX (backend parsing frontend requests) ---
    /// More than `XEN_NETIF_NR_SLOTS_MIN` data slots in one packet.
    TxTooManySlots,
    /// A TX slot's `offset + size` crosses the end of its page.
    TxSlotCrossesPage,
    /// The first slot's size (the packet size) is smaller than the sum of the
    /// following fragments.
    TxFirstSlotTooSmall,
    /// Every slot of the chain has length 0 (XSA-448 class).
    TxAllZeroLength,
    /// The packet is shorter than an Ethernet header.
    TxPacketTooShort,
    /// Local: a packet longer than `XEN_NETIF_MAX_TX_SIZE`.
    TxPacketTooLarge,
    /// An extra-info segment has type NONE or an unknown type.
    ExtraBadType,
    /// Two extra-info segments of the same type in one packet.
    ExtraDuplicate,
    /// More extra-info segments than there are extra types.
    ExtraTooMany,
    /// GSO extra with an unknown GSO type.
    GsoBadType,
    /// GSO extra with a segment size of 0.
    GsoZeroSize,
    /// Multicast add/del extra whose address is not a multicast address.
    McastNotMulticast,
    /// Hash extra with an unknown hash type or algorithm.
    HashExtraInvalid,
    /// XDP extra with a headroom over `XEN_NETIF_MAX_XDP_HEADROOM`.
    XdpHeadroomTooLarge,
    /// Multicast control extra on a request that also carries data.
    McastWithData,
    /// Frontend's multicast filter list is full.
    McastListFull,

    // --- guest TX responses (frontend parsing backend responses) ---
    /// A TX response status outside OKAY/ERROR/DROPPED/NULL.
    TxBadStatus,

    // --- guest RX (frontend parsing backend responses) ---
    /// An RX response status below `NETIF_RSP_DROPPED`.
    RxBadStatus,
    /// The backend answered an RX slot with ERROR or DROPPED (packet dropped).
    RxErrorStatus,
    /// An RX response's `offset + size` crosses the end of the page.
    RxCrossesPage,
    /// An RX packet made of more slots than the frontend allows.
    RxChainTooLong,
    /// An RX response for a ring slot with no buffer posted.
    RxNoBufferPosted,

    // --- control ring (backend parsing frontend requests) ---
    /// Unknown or INVALID control request type.
    CtrlBadType,
    /// Control request with non-zero reserved data words.
    CtrlReservedNonZero,
    /// Unknown hash algorithm.
    CtrlBadAlgorithm,
    /// Unknown hash-type flag bits.
    CtrlBadHashFlags,
    /// Hash operation before an algorithm was selected.
    CtrlNoAlgorithm,
    /// Hash key larger than the backend supports.
    CtrlKeyTooLarge,
    /// Mapping table size larger than the backend supports.
    CtrlMappingSizeTooLarge,
    /// Mapping sub-table `offset + size` outside the table (XSA-270 class).
    CtrlMappingOutOfRange,
    /// Mapping sub-table larger than one granted page.
    CtrlMappingTooLargeForPage,
    /// Mapping entry names a queue that does not exist (XSA-270 class).
    CtrlMappingBadQueue,
    /// Queue index out of range.
    CtrlBadQueue,
    /// Gref list length 0, larger than a page, or beyond the table capacity.
    CtrlGrefListBadSize,
    /// A gref-mapping entry with unknown flag bits.
    CtrlGrefBadFlags,
    /// ADD of a gref that is already mapped.
    CtrlGrefAlreadyMapped,
    /// A control response whose id/type does not match the request in flight.
    CtrlResponseMismatch,
    /// A control response status outside the four defined values.
    CtrlBadStatus,

    // --- grant operations (reported by the environment) ---
    /// A grant reference that does not exist or is not granted to us (XSA-362).
    GrantBad,
    /// A write through a read-only grant.
    GrantReadOnly,
    /// A grant copy/map outside the page.
    GrantOutOfPage,
    /// Local: ending access to a grant the peer still has mapped (XSA-396).
    GrantStillMapped,
}

impl Error {
    /// Short, stable text for log lines.
    pub fn as_str(&self) -> &'static str {
        use Error::*;
        match self {
            RingOverflow => "producer index beyond ring size",
            ResponseOverrun => "more responses than outstanding requests",
            IndexBackwards => "producer index moved backwards",
            RingFull => "ring full",
            BadRingPage => "bad ring page",
            IdsExhausted => "request ids exhausted",
            IdInUse => "request id already in use",
            UnknownId => "response with unknown id",
            DuplicateResponse => "response for id not outstanding",
            RxIdSlotMismatch => "rx response id does not match its slot",
            TxTooManySlots => "tx packet has too many slots",
            TxSlotCrossesPage => "tx slot crosses page boundary",
            TxFirstSlotTooSmall => "tx first slot smaller than rest of chain",
            TxAllZeroLength => "tx chain of zero-length slots",
            TxPacketTooShort => "tx packet shorter than ethernet header",
            TxPacketTooLarge => "tx packet larger than maximum",
            ExtraBadType => "extra info with bad type",
            ExtraDuplicate => "duplicate extra info type",
            ExtraTooMany => "too many extra info segments",
            GsoBadType => "gso extra with bad type",
            GsoZeroSize => "gso extra with zero size",
            McastNotMulticast => "mcast extra with non-multicast address",
            HashExtraInvalid => "hash extra with bad type or algorithm",
            XdpHeadroomTooLarge => "xdp extra with headroom over the maximum",
            McastWithData => "multicast control request carrying data",
            McastListFull => "too many multicast addresses",
            TxBadStatus => "tx response with bad status",
            RxBadStatus => "rx response with bad status",
            RxErrorStatus => "rx response with error status",
            RxCrossesPage => "rx response crosses page boundary",
            RxChainTooLong => "rx response chain too long",
            RxNoBufferPosted => "rx response for slot without buffer",
            CtrlBadType => "control request with bad type",
            CtrlReservedNonZero => "control request with non-zero reserved data",
            CtrlBadAlgorithm => "control request with bad hash algorithm",
            CtrlBadHashFlags => "control request with bad hash flags",
            CtrlNoAlgorithm => "control hash request without algorithm",
            CtrlKeyTooLarge => "control hash key too large",
            CtrlMappingSizeTooLarge => "control hash mapping size too large",
            CtrlMappingOutOfRange => "control hash mapping offset/size out of range",
            CtrlMappingTooLargeForPage => "control hash mapping larger than a page",
            CtrlMappingBadQueue => "control hash mapping names bad queue",
            CtrlBadQueue => "control request queue index out of range",
            CtrlGrefListBadSize => "control gref list bad size",
            CtrlGrefBadFlags => "control gref entry with bad flags",
            CtrlGrefAlreadyMapped => "control gref already mapped",
            CtrlResponseMismatch => "control response does not match request",
            CtrlBadStatus => "control response with bad status",
            GrantBad => "bad grant reference",
            GrantReadOnly => "write to read-only grant",
            GrantOutOfPage => "grant access outside page",
            GrantStillMapped => "grant still mapped by peer",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result alias for protocol operations.
pub type Result<T> = core::result::Result<T, Error>;

/// A count of one kind of failure a peer caused, logged at the 1st, 2nd,
/// 4th, 8th... occurrence: a single bad request is always logged and a
/// flood costs log lines logarithmic in its size. (The stack-wide
/// `net_ratelimit` budget can be used up by other messages, so one bad
/// request could go unlogged.)
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DoublingCount(u64);

impl DoublingCount {
    /// Adds `n` failures; the new total when it crossed a power of two
    /// (log it then), `None` otherwise.
    pub fn add(&mut self, n: u64) -> Option<u64> {
        let before = self.0;
        self.0 = before.saturating_add(n);
        (n > 0 && before.leading_zeros() != self.0.leading_zeros()).then_some(self.0)
    }

    /// The failures counted so far.
    pub fn total(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod doubling_tests {
    use super::DoublingCount;

    #[test]
    fn logs_at_each_power_of_two() {
        let mut c = DoublingCount::default();
        let logged: std::vec::Vec<u64> = (0..100).filter_map(|_| c.add(1)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(c.total(), 100);
    }

    #[test]
    fn batches_and_saturation() {
        let mut c = DoublingCount::default();
        assert_eq!(c.add(0), None);
        assert_eq!(c.add(3), Some(3));
        assert_eq!(c.add(0), None);
        assert_eq!(c.add(1), Some(4));
        assert_eq!(c.add(3), None);
        assert_eq!(c.add(u64::MAX), Some(u64::MAX));
        assert_eq!(c.add(1), None);
        assert_eq!(c.total(), u64::MAX);
    }
}
