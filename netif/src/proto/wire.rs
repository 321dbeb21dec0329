//! Wire types: safe newtypes over the bindgen-generated netif structs.
//!
//! Every type here is `FromBytes` (any bit pattern is a valid value), so a slot
//! copied out of shared memory can never be an invalid Rust value. Flags and
//! enumerated fields are integer newtypes with associated consts: unknown
//! values stay representable and are rejected by validation, never by UB.

use super::xen_if;
use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, IntoBytes};
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of a Xen page (grants and rings are always 4 KiB).
pub const PAGE_SIZE: usize = 4096;
/// Max data slots per packet every backend must accept (`XEN_NETIF_NR_SLOTS_MIN`).
pub const NR_SLOTS_MIN: usize = xen_if::XEN_NETIF_NR_SLOTS_MIN as usize;
/// Largest TX packet (`XEN_NETIF_MAX_TX_SIZE`).
pub const MAX_TX_SIZE: usize = xen_if::XEN_NETIF_MAX_TX_SIZE as usize;
/// Ethernet header length: the shortest acceptable packet.
pub const ETH_HLEN: usize = 14;

/// A grant reference.
pub type GrantRef = xen_if::grant_ref_t;

macro_rules! int_newtype {
    ($(#[$m:meta])* $name:ident($t:ty) { $($(#[$cm:meta])* $c:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default,
                 FromBytes, IntoBytes, KnownLayout, Immutable)]
        pub struct $name(pub $t);
        impl $name {
            $($(#[$cm])* pub const $c: Self = Self($v as $t);)*
        }
    };
}

macro_rules! flag_ops {
    ($name:ident) => {
        impl $name {
            /// True if every bit of `other` is set.
            #[inline]
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// Union of two flag sets.
            #[inline]
            pub const fn with(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }
            /// Bits of `self` outside `known`.
            #[inline]
            pub const fn unknown_bits(self, known: Self) -> Self {
                Self(self.0 & !known.0)
            }
        }
    };
}

int_newtype!(
    /// `NETTXF_*` flags of a TX request.
    TxFlags(u16) {
        /// Checksum field blank (offload).
        CSUM_BLANK = xen_if::NETTXF_csum_blank;
        /// Data validated against protocol checksum.
        DATA_VALIDATED = xen_if::NETTXF_data_validated;
        /// Packet continues in the next slot.
        MORE_DATA = xen_if::NETTXF_more_data;
        /// Followed by extra-info segment(s).
        EXTRA_INFO = xen_if::NETTXF_extra_info;
    }
);
flag_ops!(TxFlags);

int_newtype!(
    /// `NETRXF_*` flags of an RX response.
    RxFlags(u16) {
        /// Data validated against protocol checksum.
        DATA_VALIDATED = xen_if::NETRXF_data_validated;
        /// Checksum field blank (offload).
        CSUM_BLANK = xen_if::NETRXF_csum_blank;
        /// Packet continues in the next slot.
        MORE_DATA = xen_if::NETRXF_more_data;
        /// Followed by extra-info segment(s).
        EXTRA_INFO = xen_if::NETRXF_extra_info;
        /// Deprecated GSO prefix.
        GSO_PREFIX = xen_if::NETRXF_gso_prefix;
    }
);
flag_ops!(RxFlags);

int_newtype!(
    /// `NETIF_RSP_*` status of a TX response (and negative RX statuses).
    RspStatus(i16) {
        /// Packet dropped.
        DROPPED = xen_if::NETIF_RSP_DROPPED;
        /// Error.
        ERROR = xen_if::NETIF_RSP_ERROR;
        /// Success.
        OKAY = xen_if::NETIF_RSP_OKAY;
        /// No response: slot of an extra-info segment.
        NULL = xen_if::NETIF_RSP_NULL;
    }
);

int_newtype!(
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    ExtraType(u8) {
        /// Invalid.
        NONE = xen_if::XEN_NETIF_EXTRA_TYPE_NONE;
        /// GSO parameters.
        GSO = xen_if::XEN_NETIF_EXTRA_TYPE_GSO;
        /// Multicast add.
        MCAST_ADD = xen_if::XEN_NETIF_EXTRA_TYPE_MCAST_ADD;
        /// Multicast delete.
        MCAST_DEL = xen_if::XEN_NETIF_EXTRA_TYPE_MCAST_DEL;
        /// Hash value.
        HASH = xen_if::XEN_NETIF_EXTRA_TYPE_HASH;
        /// XDP headroom the backend left before the data (guest receive).
        /// In Linux's netif.h; Xen 4.17's public header predates it.
        XDP = 5;
        /// One past the last valid type.
        MAX = 6;
    }
);

int_newtype!(
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    ExtraFlags(u8) {
        /// Another extra-info segment follows.
        MORE = xen_if::XEN_NETIF_EXTRA_FLAG_MORE;
    }
);
flag_ops!(ExtraFlags);

int_newtype!(
    /// `XEN_NETIF_GSO_TYPE_*`.
    GsoType(u8) {
        /// No GSO.
        NONE = xen_if::XEN_NETIF_GSO_TYPE_NONE;
        /// TCP over IPv4.
        TCPV4 = xen_if::XEN_NETIF_GSO_TYPE_TCPV4;
        /// TCP over IPv6.
        TCPV6 = xen_if::XEN_NETIF_GSO_TYPE_TCPV6;
    }
);

int_newtype!(
    /// `XEN_NETIF_CTRL_TYPE_*`.
    CtrlType(u16) {
        /// Invalid.
        INVALID = xen_if::XEN_NETIF_CTRL_TYPE_INVALID;
        /// Query supported hash types.
        GET_HASH_FLAGS = xen_if::XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS;
        /// Set hash types.
        SET_HASH_FLAGS = xen_if::XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS;
        /// Set hash key from a grant.
        SET_HASH_KEY = xen_if::XEN_NETIF_CTRL_TYPE_SET_HASH_KEY;
        /// Query max mapping table size.
        GET_HASH_MAPPING_SIZE = xen_if::XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE;
        /// Set mapping table size.
        SET_HASH_MAPPING_SIZE = xen_if::XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE;
        /// Set (part of) the mapping table from a grant.
        SET_HASH_MAPPING = xen_if::XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING;
        /// Select the hash algorithm.
        SET_HASH_ALGORITHM = xen_if::XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM;
        /// Query how many grefs can stay mapped.
        GET_GREF_MAPPING_SIZE = xen_if::XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE;
        /// Map a list of grefs.
        ADD_GREF_MAPPING = xen_if::XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING;
        /// Unmap a list of grefs.
        DEL_GREF_MAPPING = xen_if::XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING;
    }
);

int_newtype!(
    /// `XEN_NETIF_CTRL_STATUS_*`.
    CtrlStatus(u32) {
        /// Success.
        SUCCESS = xen_if::XEN_NETIF_CTRL_STATUS_SUCCESS;
        /// Operation not supported.
        NOT_SUPPORTED = xen_if::XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED;
        /// Invalid parameter.
        INVALID_PARAMETER = xen_if::XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER;
        /// Larger than the backend supports.
        BUFFER_OVERFLOW = xen_if::XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW;
    }
);

int_newtype!(
    /// `XEN_NETIF_CTRL_HASH_TYPE_*` flags.
    HashTypes(u32) {
        /// IPv4 addresses.
        IPV4 = xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV4;
        /// IPv4 addresses and TCP ports.
        IPV4_TCP = xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP;
        /// IPv6 addresses.
        IPV6 = xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV6;
        /// IPv6 addresses and TCP ports.
        IPV6_TCP = xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
        /// All defined hash types.
        ALL = xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV4
            | xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP
            | xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV6
            | xen_if::XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP;
    }
);
flag_ops!(HashTypes);

int_newtype!(
    /// `XEN_NETIF_CTRL_HASH_ALGORITHM_*`.
    HashAlgorithm(u32) {
        /// No hashing.
        NONE = xen_if::XEN_NETIF_CTRL_HASH_ALGORITHM_NONE;
        /// Toeplitz.
        TOEPLITZ = xen_if::XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ;
    }
);

int_newtype!(
    /// `XEN_NETIF_CTRLF_GREF_*` flags of a gref-mapping entry.
    GrefFlags(u16) {
        /// Map read-only.
        READONLY = xen_if::XEN_NETIF_CTRLF_GREF_readonly;
    }
);
flag_ops!(GrefFlags);

macro_rules! wire_newtype {
    ($(#[$m:meta])* $name:ident($inner:ty)) => {
        $(#[$m])*
        #[repr(transparent)]
        #[derive(Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
        pub struct $name(pub $inner);
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }
        impl Eq for $name {}
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(&self.0, f)
            }
        }
        impl $name {
            /// The all-zero value.
            pub fn zeroed() -> Self {
                <Self as zerocopy::FromZeros>::new_zeroed()
            }
        }
    };
}

wire_newtype!(
    /// `netif_tx_request_t` (frontend -> backend, 12 bytes).
    TxRequest(xen_if::netif_tx_request)
);
wire_newtype!(
    /// `netif_tx_response_t` (backend -> frontend, 4 bytes).
    TxResponse(xen_if::netif_tx_response)
);
wire_newtype!(
    /// `netif_rx_request_t` (frontend -> backend, 8 bytes).
    RxRequest(xen_if::netif_rx_request)
);
wire_newtype!(
    /// `netif_rx_response_t` (backend -> frontend, 8 bytes).
    RxResponse(xen_if::netif_rx_response)
);
wire_newtype!(
    /// `struct xen_netif_ctrl_request` (16 bytes).
    CtrlRequest(xen_if::xen_netif_ctrl_request)
);
wire_newtype!(
    /// `struct xen_netif_ctrl_response` (12 bytes).
    CtrlResponse(xen_if::xen_netif_ctrl_response)
);
wire_newtype!(
    /// `struct xen_netif_gref`: an entry of a gref-mapping list (8 bytes).
    Gref(xen_if::xen_netif_gref)
);

impl TxRequest {
    /// Builds a request.
    pub fn new(gref: GrantRef, offset: u16, flags: TxFlags, id: u16, size: u16) -> Self {
        Self(xen_if::netif_tx_request {
            gref,
            offset,
            flags: flags.0,
            id,
            size,
        })
    }
    /// Grant reference of the buffer page.
    pub fn gref(&self) -> GrantRef {
        self.0.gref
    }
    /// Offset of the data in the page.
    pub fn offset(&self) -> u16 {
        self.0.offset
    }
    /// `NETTXF_*` flags.
    pub fn flags(&self) -> TxFlags {
        TxFlags(self.0.flags)
    }
    /// Request id, echoed in the response.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// Size (total packet size in the first slot, fragment size after).
    pub fn size(&self) -> u16 {
        self.0.size
    }
    /// Reinterprets this slot as an extra-info segment (they share slots).
    pub fn as_extra(&self) -> ExtraInfo {
        ExtraInfo::from_prefix(self.as_bytes())
    }
    /// A TX slot carrying an extra-info segment (the last 4 bytes are padding).
    pub fn from_extra(extra: &ExtraInfo) -> Self {
        let mut buf = [0u8; size_of::<Self>()];
        buf[..size_of::<ExtraInfo>()].copy_from_slice(extra.as_bytes());
        Self::read_from_bytes(&buf).unwrap_or_else(|_| Self::zeroed())
    }
}

impl TxResponse {
    /// Builds a response.
    pub fn new(id: u16, status: RspStatus) -> Self {
        Self(xen_if::netif_tx_response {
            id,
            status: status.0,
        })
    }
    /// Id of the request answered.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// `NETIF_RSP_*` status.
    pub fn status(&self) -> RspStatus {
        RspStatus(self.0.status)
    }
}

impl RxRequest {
    /// Builds a request posting one buffer page.
    pub fn new(id: u16, gref: GrantRef) -> Self {
        Self(xen_if::netif_rx_request { id, pad: 0, gref })
    }
    /// Request id, echoed in the response.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// Grant of the buffer page.
    pub fn gref(&self) -> GrantRef {
        self.0.gref
    }
}

impl RxResponse {
    /// Builds a response; `status` is the size (>= 0) or a negative `NETIF_RSP_*`.
    pub fn new(id: u16, offset: u16, flags: RxFlags, status: i16) -> Self {
        Self(xen_if::netif_rx_response {
            id,
            offset,
            flags: flags.0,
            status,
        })
    }
    /// Id of the request answered.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// Offset of the data in the page.
    pub fn offset(&self) -> u16 {
        self.0.offset
    }
    /// `NETRXF_*` flags.
    pub fn flags(&self) -> RxFlags {
        RxFlags(self.0.flags)
    }
    /// Size if >= 0, else a negative `NETIF_RSP_*`.
    pub fn status(&self) -> i16 {
        self.0.status
    }
    /// Reinterprets this slot as an extra-info segment (they share slots).
    pub fn as_extra(&self) -> ExtraInfo {
        ExtraInfo::from_prefix(self.as_bytes())
    }
    /// An RX slot carrying an extra-info segment.
    pub fn from_extra(extra: &ExtraInfo) -> Self {
        Self::read_from_bytes(extra.as_bytes()).unwrap_or_else(|_| Self::zeroed())
    }
}

impl CtrlRequest {
    /// Builds a control request.
    pub fn new(id: u16, ty: CtrlType, data: [u32; 3]) -> Self {
        Self(xen_if::xen_netif_ctrl_request {
            id,
            type_: ty.0,
            data,
        })
    }
    /// Request id.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// Request type.
    pub fn ty(&self) -> CtrlType {
        CtrlType(self.0.type_)
    }
    /// Data words.
    pub fn data(&self) -> [u32; 3] {
        self.0.data
    }
}

impl CtrlResponse {
    /// Builds a control response.
    pub fn new(id: u16, ty: CtrlType, status: CtrlStatus, data: u32) -> Self {
        Self(xen_if::xen_netif_ctrl_response {
            id,
            type_: ty.0,
            status: status.0,
            data,
        })
    }
    /// Id of the request answered.
    pub fn id(&self) -> u16 {
        self.0.id
    }
    /// Type of the request answered.
    pub fn ty(&self) -> CtrlType {
        CtrlType(self.0.type_)
    }
    /// Status.
    pub fn status(&self) -> CtrlStatus {
        CtrlStatus(self.0.status)
    }
    /// Data word.
    pub fn data(&self) -> u32 {
        self.0.data
    }
}

impl Gref {
    /// Builds a gref-mapping entry.
    pub fn new(gref: GrantRef, flags: GrefFlags, status: u16) -> Self {
        Self(xen_if::xen_netif_gref {
            ref_: gref,
            flags: flags.0,
            status,
        })
    }
    /// The grant reference.
    pub fn gref(&self) -> GrantRef {
        self.0.ref_
    }
    /// Flags.
    pub fn flags(&self) -> GrefFlags {
        GrefFlags(self.0.flags)
    }
    /// Status (output of DEL_GREF_MAPPING).
    pub fn status(&self) -> u16 {
        self.0.status
    }
}

/// `netif_extra_info_t` (8 bytes): type, flags, 6 bytes of type-specific data.
///
/// The generated C type holds a union, which Rust can only read with `unsafe`;
/// this mirror views the union as bytes. Its layout is asserted equal below.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ExtraInfo {
    type_: u8,
    flags: u8,
    data: [u8; 6],
}

/// Parsed GSO extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    /// Segment size (MSS).
    pub size: u16,
    /// GSO type.
    pub ty: GsoType,
    /// Feature bits.
    pub features: u16,
}

/// Parsed hash extra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashExtra {
    /// Hash type (`_XEN_NETIF_CTRL_HASH_TYPE_*` bit number).
    pub ty: u8,
    /// Algorithm.
    pub algorithm: u8,
    /// Hash value.
    pub value: u32,
}

impl ExtraInfo {
    fn from_prefix(bytes: &[u8]) -> Self {
        match Self::read_from_prefix(bytes) {
            Ok((e, _)) => e,
            Err(_) => Self::new(ExtraType::NONE, ExtraFlags(0), [0; 6]),
        }
    }
    /// Builds an extra from its raw parts.
    pub const fn new(ty: ExtraType, flags: ExtraFlags, data: [u8; 6]) -> Self {
        Self {
            type_: ty.0,
            flags: flags.0,
            data,
        }
    }
    /// A GSO extra.
    pub fn gso(gso: Gso, flags: ExtraFlags) -> Self {
        let s = gso.size.to_ne_bytes();
        let f = gso.features.to_ne_bytes();
        Self::new(ExtraType::GSO, flags, [s[0], s[1], gso.ty.0, 0, f[0], f[1]])
    }
    /// A multicast add/del extra.
    pub fn mcast(ty: ExtraType, flags: ExtraFlags, addr: [u8; 6]) -> Self {
        Self::new(ty, flags, addr)
    }
    /// An XDP extra: the headroom left before the first fragment's data.
    pub fn xdp(headroom: u16, flags: ExtraFlags) -> Self {
        let h = headroom.to_ne_bytes();
        Self::new(ExtraType::XDP, flags, [h[0], h[1], 0, 0, 0, 0])
    }
    /// A hash extra.
    pub fn hash(h: HashExtra, flags: ExtraFlags) -> Self {
        let v = h.value.to_ne_bytes();
        Self::new(
            ExtraType::HASH,
            flags,
            [h.ty, h.algorithm, v[0], v[1], v[2], v[3]],
        )
    }
    /// Type.
    pub fn ty(&self) -> ExtraType {
        ExtraType(self.type_)
    }
    /// Flags.
    pub fn flags(&self) -> ExtraFlags {
        ExtraFlags(self.flags)
    }
    /// Raw type-specific data.
    pub fn data(&self) -> [u8; 6] {
        self.data
    }
    /// The data viewed as GSO parameters (not validated).
    pub fn as_gso(&self) -> Gso {
        let d = self.data;
        Gso {
            size: u16::from_ne_bytes([d[0], d[1]]),
            ty: GsoType(d[2]),
            features: u16::from_ne_bytes([d[4], d[5]]),
        }
    }
    /// The data viewed as an XDP headroom (not validated).
    pub fn as_xdp_headroom(&self) -> u16 {
        u16::from_ne_bytes([self.data[0], self.data[1]])
    }
    /// The data viewed as a hash (not validated).
    pub fn as_hash(&self) -> HashExtra {
        let d = self.data;
        HashExtra {
            ty: d[0],
            algorithm: d[1],
            value: u32::from_ne_bytes([d[2], d[3], d[4], d[5]]),
        }
    }
}

/// Largest XDP headroom a frontend may ask for (`XEN_NETIF_MAX_XDP_HEADROOM`).
pub const MAX_XDP_HEADROOM: u16 = 0x7fff;

/// Validates one extra-info segment and records it in `seen` (a bitmask of
/// types already present in the packet).
pub fn validate_extra(extra: &ExtraInfo, seen: &mut u8) -> super::error::Result<()> {
    use super::error::Error;
    let ty = extra.ty();
    if ty == ExtraType::NONE || ty.0 >= ExtraType::MAX.0 {
        return Err(Error::ExtraBadType);
    }
    let bit = 1u8 << ty.0;
    if *seen & bit != 0 {
        return Err(Error::ExtraDuplicate);
    }
    *seen |= bit;
    match ty {
        ExtraType::GSO => {
            let g = extra.as_gso();
            if g.ty != GsoType::TCPV4 && g.ty != GsoType::TCPV6 {
                return Err(Error::GsoBadType);
            }
            if g.size == 0 {
                return Err(Error::GsoZeroSize);
            }
        }
        ExtraType::MCAST_ADD | ExtraType::MCAST_DEL => {
            if extra.data[0] & 1 == 0 {
                return Err(Error::McastNotMulticast);
            }
        }
        ExtraType::XDP => {
            if extra.as_xdp_headroom() > MAX_XDP_HEADROOM {
                return Err(Error::XdpHeadroomTooLarge);
            }
        }
        ExtraType::HASH => {
            let h = extra.as_hash();
            if h.ty > xen_if::_XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP as u8
                || u32::from(h.algorithm) != HashAlgorithm::TOEPLITZ.0
            {
                return Err(Error::HashExtraInvalid);
            }
        }
        _ => return Err(Error::ExtraBadType),
    }
    Ok(())
}

// ---- Layout assertions against the C ABI (bindgen runs without layout tests).

macro_rules! assert_size {
    ($t:ty, $n:expr) => {
        const _: () = assert!(size_of::<$t>() == $n);
    };
}
macro_rules! assert_off {
    ($t:ty, $f:ident, $n:expr) => {
        const _: () = assert!(offset_of!($t, $f) == $n);
    };
}

assert_size!(xen_if::netif_tx_request, 12);
assert_off!(xen_if::netif_tx_request, gref, 0);
assert_off!(xen_if::netif_tx_request, offset, 4);
assert_off!(xen_if::netif_tx_request, flags, 6);
assert_off!(xen_if::netif_tx_request, id, 8);
assert_off!(xen_if::netif_tx_request, size, 10);
assert_size!(xen_if::netif_tx_response, 4);
assert_off!(xen_if::netif_tx_response, id, 0);
assert_off!(xen_if::netif_tx_response, status, 2);
assert_size!(xen_if::netif_rx_request, 8);
assert_off!(xen_if::netif_rx_request, id, 0);
assert_off!(xen_if::netif_rx_request, pad, 2);
assert_off!(xen_if::netif_rx_request, gref, 4);
assert_size!(xen_if::netif_rx_response, 8);
assert_off!(xen_if::netif_rx_response, id, 0);
assert_off!(xen_if::netif_rx_response, offset, 2);
assert_off!(xen_if::netif_rx_response, flags, 4);
assert_off!(xen_if::netif_rx_response, status, 6);
assert_size!(xen_if::netif_extra_info, 8);
assert_off!(xen_if::netif_extra_info, type_, 0);
assert_off!(xen_if::netif_extra_info, flags, 1);
assert_off!(xen_if::netif_extra_info, u, 2);
assert_size!(xen_if::netif_extra_info__bindgen_ty_1, 6);
assert_off!(
    xen_if::netif_extra_info__bindgen_ty_1__bindgen_ty_1,
    size,
    0
);
assert_off!(
    xen_if::netif_extra_info__bindgen_ty_1__bindgen_ty_1,
    type_,
    2
);
assert_off!(
    xen_if::netif_extra_info__bindgen_ty_1__bindgen_ty_1,
    features,
    4
);
assert_off!(
    xen_if::netif_extra_info__bindgen_ty_1__bindgen_ty_3,
    value,
    2
);
assert_size!(xen_if::xen_netif_ctrl_request, 16);
assert_off!(xen_if::xen_netif_ctrl_request, id, 0);
assert_off!(xen_if::xen_netif_ctrl_request, type_, 2);
assert_off!(xen_if::xen_netif_ctrl_request, data, 4);
assert_size!(xen_if::xen_netif_ctrl_response, 12);
assert_off!(xen_if::xen_netif_ctrl_response, id, 0);
assert_off!(xen_if::xen_netif_ctrl_response, type_, 2);
assert_off!(xen_if::xen_netif_ctrl_response, status, 4);
assert_off!(xen_if::xen_netif_ctrl_response, data, 8);
assert_size!(xen_if::xen_netif_gref, 8);
assert_off!(xen_if::xen_netif_gref, ref_, 0);
assert_off!(xen_if::xen_netif_gref, flags, 4);
assert_off!(xen_if::xen_netif_gref, status, 6);
// Ring entries are unions of request and response.
assert_size!(xen_if::netif_tx_sring_entry, 12);
assert_size!(xen_if::netif_rx_sring_entry, 8);
assert_size!(xen_if::xen_netif_ctrl_sring_entry, 16);
// Shared ring header: four indices, 4 bytes private, 44 bytes pad, entries at 64.
assert_off!(xen_if::netif_tx_sring, req_prod, 0);
assert_off!(xen_if::netif_tx_sring, req_event, 4);
assert_off!(xen_if::netif_tx_sring, rsp_prod, 8);
assert_off!(xen_if::netif_tx_sring, rsp_event, 12);
assert_off!(xen_if::netif_tx_sring, ring, 64);
assert_off!(xen_if::netif_rx_sring, ring, 64);
assert_off!(xen_if::xen_netif_ctrl_sring, ring, 64);
// Our newtypes and mirror are exactly the C types.
assert_size!(TxRequest, size_of::<xen_if::netif_tx_request>());
assert_size!(TxResponse, size_of::<xen_if::netif_tx_response>());
assert_size!(RxRequest, size_of::<xen_if::netif_rx_request>());
assert_size!(RxResponse, size_of::<xen_if::netif_rx_response>());
assert_size!(CtrlRequest, size_of::<xen_if::xen_netif_ctrl_request>());
assert_size!(CtrlResponse, size_of::<xen_if::xen_netif_ctrl_response>());
assert_size!(Gref, size_of::<xen_if::xen_netif_gref>());
assert_size!(ExtraInfo, size_of::<xen_if::netif_extra_info>());
assert_off!(ExtraInfo, type_, 0);
assert_off!(ExtraInfo, flags, 1);
assert_off!(ExtraInfo, data, 2);
const _: () = assert!(core::mem::align_of::<ExtraInfo>() <= core::mem::align_of::<TxRequest>());
const _: () = assert!(core::mem::align_of::<xen_if::netif_extra_info>() == 2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_roundtrip_through_tx_and_rx_slots() {
        let g = Gso {
            size: 1448,
            ty: GsoType::TCPV4,
            features: 0,
        };
        let e = ExtraInfo::gso(g, ExtraFlags::MORE);
        let tx = TxRequest::from_extra(&e);
        assert_eq!(tx.as_extra(), e);
        assert_eq!(tx.as_extra().as_gso(), g);
        let rx = RxResponse::from_extra(&e);
        assert_eq!(rx.as_extra(), e);
        assert!(rx.as_extra().flags().contains(ExtraFlags::MORE));
    }

    #[test]
    fn extra_validation_classes() {
        let mut seen = 0;
        let gso = |size, ty| {
            ExtraInfo::gso(
                Gso {
                    size,
                    ty,
                    features: 0,
                },
                ExtraFlags(0),
            )
        };
        assert_eq!(
            validate_extra(&gso(1448, GsoType::TCPV6), &mut seen),
            Ok(())
        );
        assert_eq!(
            validate_extra(&gso(1448, GsoType::TCPV6), &mut seen),
            Err(super::super::error::Error::ExtraDuplicate)
        );
        let mut seen = 0;
        assert_eq!(
            validate_extra(&gso(0, GsoType::TCPV4), &mut seen),
            Err(super::super::error::Error::GsoZeroSize)
        );
        let mut seen = 0;
        assert_eq!(
            validate_extra(&gso(10, GsoType(9)), &mut seen),
            Err(super::super::error::Error::GsoBadType)
        );
        let mut seen = 0;
        let e = ExtraInfo::new(ExtraType(7), ExtraFlags(0), [0; 6]);
        assert_eq!(
            validate_extra(&e, &mut seen),
            Err(super::super::error::Error::ExtraBadType)
        );
        let e = ExtraInfo::mcast(ExtraType::MCAST_ADD, ExtraFlags(0), [0; 6]);
        assert_eq!(
            validate_extra(&e, &mut seen),
            Err(super::super::error::Error::McastNotMulticast)
        );
    }

    #[test]
    fn tx_request_fields() {
        let r = TxRequest::new(7, 100, TxFlags::MORE_DATA, 3, 1500);
        assert_eq!(r.as_bytes().len(), 12);
        assert_eq!(&r.as_bytes()[0..4], &7u32.to_ne_bytes());
        assert_eq!(r.flags(), TxFlags::MORE_DATA);
        assert_eq!((r.offset(), r.id(), r.size()), (100, 3, 1500));
    }
}
