//! Control ring (`XEN_NETIF_CTRL_TYPE_*`): hash configuration and static
//! grant mappings.
//!
//! Backend side: [`CtrlBackend`] validates each request (offsets, sizes and
//! queue indices are range-checked before any table is touched: XSA-270
//! class) and builds the response. Grant accesses go through [`GrantOps`], so
//! the same code runs over real grant tables in the kernel and a simulated
//! hypervisor on the host. Frontend side: [`CtrlFront`] matches responses to
//! requests.

use super::barrier::Barriers;
use super::error::{Error, Result};
use super::ring::{BackRing, CtrlRingKind, FrontRing, SharedRing};
use super::wire::{
    CtrlRequest, CtrlResponse, CtrlStatus, CtrlType, GrantRef, Gref, GrefFlags, HashAlgorithm,
    HashTypes, PAGE_SIZE,
};
use core::mem::size_of;
use zerocopy::{FromBytes, IntoBytes};
use zerocopy_derive::FromZeros;

/// Largest hash key the backend accepts (as Linux netback).
pub const MAX_HASH_KEY_SIZE: usize = 40;
/// Largest hash mapping table (as Linux netback).
pub const MAX_HASH_MAPPING_SIZE: usize = 128;
/// Longest input [`CtrlBackend::flow_hash`] hashes: IPv6 source and
/// destination addresses and TCP ports.
pub const MAX_HASH_INPUT_SIZE: usize = 16 + 16 + 2 + 2;
/// Gref-mapping entries in one page.
pub const GREFS_PER_PAGE: usize = PAGE_SIZE / size_of::<Gref>();
/// Control ring entries (one page).
const CTRL_SLOTS: usize = super::ring::CTRL_RING_SIZE as usize;
/// Gref-mapping entries processed per grant copy (bounds stack use).
const GREF_CHUNK: usize = 32;

/// Grant operations the control ring needs from its environment.
pub trait GrantOps {
    /// Copies `buf.len()` bytes from the granted page at `offset`.
    fn copy_from_grant(&mut self, gref: GrantRef, offset: usize, buf: &mut [u8]) -> Result<()>;
    /// Copies `buf` into the granted page at `offset`.
    fn copy_to_grant(&mut self, gref: GrantRef, offset: usize, buf: &[u8]) -> Result<()>;
}

/// Static grant mappings (`*_GREF_MAPPING`), per queue: what the backend
/// keeps mapped (`grant_reuse` implements it). The control core parses and
/// validates the requests and their gref lists, then calls these.
pub trait GrefStore {
    /// Entries `queue` may hold: the answer to `GET_GREF_MAPPING_SIZE`. 0:
    /// the backend offers no static grants (every request about them is
    /// answered `NOT_SUPPORTED`).
    fn mapping_size(&self, queue: u32) -> u32;
    /// Entries `queue` can still take.
    fn room(&self, queue: u32) -> u32;
    /// Records one entry of an `ADD` (nothing is mapped yet); refuses a
    /// grant `queue` holds or has staged already.
    fn stage(&mut self, queue: u32, gref: GrantRef, readonly: bool) -> Result<()>;
    /// Maps every staged entry of `queue`, all or nothing.
    fn commit(&mut self, queue: u32) -> Result<()>;
    /// Forgets the staged entries of `queue` (the `ADD` failed).
    fn abort(&mut self, queue: u32);
    /// `DEL` of one entry: unmaps it; the status to report for it.
    fn remove(&mut self, queue: u32, gref: GrantRef) -> CtrlStatus;
}

/// A backend that offers no static grants.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoStaticGrants;

impl GrefStore for NoStaticGrants {
    fn mapping_size(&self, _queue: u32) -> u32 {
        0
    }
    fn room(&self, _queue: u32) -> u32 {
        0
    }
    fn stage(&mut self, _queue: u32, _gref: GrantRef, _readonly: bool) -> Result<()> {
        Err(Error::CtrlGrefListBadSize)
    }
    fn commit(&mut self, _queue: u32) -> Result<()> {
        Err(Error::CtrlGrefListBadSize)
    }
    fn abort(&mut self, _queue: u32) {}
    fn remove(&mut self, _queue: u32, _gref: GrantRef) -> CtrlStatus {
        CtrlStatus::INVALID_PARAMETER
    }
}

/// Backend control state for one vif (the static grants themselves live in
/// the [`GrefStore`] each request is handled with).
#[derive(Debug, Clone)]
pub struct CtrlBackend {
    num_queues: u32,
    /// Selected algorithm.
    pub algorithm: HashAlgorithm,
    /// Enabled hash types.
    pub hash_types: HashTypes,
    key: [u8; MAX_HASH_KEY_SIZE],
    mapping: [u32; MAX_HASH_MAPPING_SIZE],
    mapping_size: u32,
    generation: u64,
}

type Outcome = core::result::Result<u32, (CtrlStatus, Error)>;

fn invalid(e: Error) -> (CtrlStatus, Error) {
    (CtrlStatus::INVALID_PARAMETER, e)
}

impl CtrlBackend {
    /// State for a vif with `num_queues` queues (at least 1).
    pub fn new(num_queues: u32) -> Self {
        Self {
            num_queues: num_queues.max(1),
            algorithm: HashAlgorithm::NONE,
            hash_types: HashTypes(0),
            key: [0; MAX_HASH_KEY_SIZE],
            mapping: [0; MAX_HASH_MAPPING_SIZE],
            mapping_size: 0,
            generation: 0,
        }
    }

    /// Queues the mapping table (or the hash modulo) spreads over.
    pub fn num_queues(&self) -> u32 {
        self.num_queues
    }

    /// Counts the requests that changed the hash configuration: algorithm,
    /// hash types, key, mapping size or mapping. Starts at 0; a request
    /// that is rejected, or that sets what is already set, leaves it alone.
    /// A [`HashSnapshot`] compares it to know when to refresh. Direct
    /// writes to the public `algorithm`/`hash_types` fields bypass it.
    pub fn config_generation(&self) -> u64 {
        self.generation
    }

    fn config_changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// The hash key (zero-padded).
    pub fn key(&self) -> &[u8; MAX_HASH_KEY_SIZE] {
        &self.key
    }
    /// The mapping table in use.
    pub fn mapping(&self) -> &[u32] {
        &self.mapping[..self.mapping_size as usize]
    }
    /// Handles one request; returns the response and, if the request was
    /// rejected, the reason (for the log).
    pub fn handle<G: GrantOps + GrefStore>(
        &mut self,
        req: &CtrlRequest,
        g: &mut G,
    ) -> (CtrlResponse, Option<Error>) {
        let (status, data, err) = match self.dispatch(req, g) {
            Ok(d) => (CtrlStatus::SUCCESS, d, None),
            Err((s, e)) => (s, 0, Some(e)),
        };
        (CtrlResponse::new(req.id(), req.ty(), status, data), err)
    }

    fn dispatch<G: GrantOps + GrefStore>(&mut self, req: &CtrlRequest, g: &mut G) -> Outcome {
        let d = req.data();
        let reserved = |from: usize| -> core::result::Result<(), (CtrlStatus, Error)> {
            if d[from..].iter().any(|&w| w != 0) {
                Err(invalid(Error::CtrlReservedNonZero))
            } else {
                Ok(())
            }
        };
        match req.ty() {
            CtrlType::SET_HASH_ALGORITHM => {
                reserved(1)?;
                let alg = HashAlgorithm(d[0]);
                if alg != HashAlgorithm::NONE && alg != HashAlgorithm::TOEPLITZ {
                    return Err(invalid(Error::CtrlBadAlgorithm));
                }
                if self.algorithm != alg {
                    self.algorithm = alg;
                    self.config_changed();
                }
                Ok(0)
            }
            CtrlType::GET_HASH_FLAGS => {
                reserved(0)?;
                if self.algorithm == HashAlgorithm::NONE {
                    return Err((CtrlStatus::NOT_SUPPORTED, Error::CtrlNoAlgorithm));
                }
                Ok(HashTypes::ALL.0)
            }
            CtrlType::SET_HASH_FLAGS => {
                reserved(1)?;
                let t = HashTypes(d[0]);
                if t.unknown_bits(HashTypes::ALL).0 != 0 {
                    return Err(invalid(Error::CtrlBadHashFlags));
                }
                if self.algorithm == HashAlgorithm::NONE {
                    return Err(invalid(Error::CtrlNoAlgorithm));
                }
                if self.hash_types != t {
                    self.hash_types = t;
                    self.config_changed();
                }
                Ok(0)
            }
            CtrlType::SET_HASH_KEY => {
                reserved(2)?;
                let len = d[1] as usize;
                if len > MAX_HASH_KEY_SIZE {
                    return Err((CtrlStatus::BUFFER_OVERFLOW, Error::CtrlKeyTooLarge));
                }
                let mut key = [0u8; MAX_HASH_KEY_SIZE];
                if len > 0 {
                    g.copy_from_grant(d[0], 0, &mut key[..len])
                        .map_err(invalid)?;
                }
                if self.key != key {
                    self.key = key;
                    self.config_changed();
                }
                Ok(0)
            }
            CtrlType::GET_HASH_MAPPING_SIZE => {
                reserved(0)?;
                Ok(MAX_HASH_MAPPING_SIZE as u32)
            }
            CtrlType::SET_HASH_MAPPING_SIZE => {
                reserved(1)?;
                if d[0] as usize > MAX_HASH_MAPPING_SIZE {
                    return Err(invalid(Error::CtrlMappingSizeTooLarge));
                }
                if self.mapping_size != d[0] || self.mapping.iter().any(|&q| q != 0) {
                    self.mapping_size = d[0];
                    self.mapping = [0; MAX_HASH_MAPPING_SIZE];
                    self.config_changed();
                }
                Ok(0)
            }
            CtrlType::SET_HASH_MAPPING => {
                let (gref, len, off) = (d[0], d[1], d[2]);
                if len as usize > PAGE_SIZE / size_of::<u32>() {
                    return Err(invalid(Error::CtrlMappingTooLargeForPage));
                }
                match off.checked_add(len) {
                    Some(end) if end <= self.mapping_size => {}
                    _ => return Err(invalid(Error::CtrlMappingOutOfRange)),
                }
                let (off, len) = (off as usize, len as usize);
                // len <= mapping_size <= MAX_HASH_MAPPING_SIZE from here on.
                let mut tmp = [0u32; MAX_HASH_MAPPING_SIZE];
                if len > 0 {
                    let bytes = tmp[..len].as_mut_bytes();
                    g.copy_from_grant(gref, 0, bytes).map_err(invalid)?;
                }
                if tmp[..len].iter().any(|&q| q >= self.num_queues) {
                    return Err(invalid(Error::CtrlMappingBadQueue));
                }
                let dst = &mut self.mapping[off..off + len];
                if *dst != tmp[..len] {
                    dst.copy_from_slice(&tmp[..len]);
                    self.config_changed();
                }
                Ok(0)
            }
            CtrlType::GET_GREF_MAPPING_SIZE => {
                reserved(1)?;
                self.check_queue(d[0])?;
                match g.mapping_size(d[0]) {
                    0 => Err((CtrlStatus::NOT_SUPPORTED, Error::CtrlBadType)),
                    n => Ok(n),
                }
            }
            CtrlType::ADD_GREF_MAPPING => {
                self.gref_request_ok(d[0], d[2], g)?;
                // `BUFFER_OVERFLOW`: more than the queue can still take.
                if d[2] > g.room(d[0]) {
                    return Err((CtrlStatus::BUFFER_OVERFLOW, Error::CtrlGrefListBadSize));
                }
                // All or nothing: stage every entry, then map them together.
                match Self::stage_grefs(d[0], d[1], d[2] as usize, g).and_then(|()| g.commit(d[0])) {
                    Ok(()) => Ok(0),
                    Err(e) => {
                        g.abort(d[0]);
                        Err(invalid(e))
                    }
                }
            }
            CtrlType::DEL_GREF_MAPPING => {
                self.gref_request_ok(d[0], d[2], g)?;
                Self::del_grefs(d[0], d[1], d[2] as usize, g).map_err(invalid)
            }
            _ => Err((CtrlStatus::NOT_SUPPORTED, Error::CtrlBadType)),
        }
    }

    fn check_queue(&self, q: u32) -> core::result::Result<(), (CtrlStatus, Error)> {
        if q >= self.num_queues {
            Err(invalid(Error::CtrlBadQueue))
        } else {
            Ok(())
        }
    }

    /// Checks an `ADD`/`DEL`: static grants offered, queue and count in
    /// range (a list is one page).
    fn gref_request_ok<G: GrefStore>(&self, queue: u32, count: u32, g: &G) -> core::result::Result<(), (CtrlStatus, Error)> {
        self.check_queue(queue)?;
        if g.mapping_size(queue) == 0 {
            return Err((CtrlStatus::NOT_SUPPORTED, Error::CtrlBadType));
        }
        if count == 0 || count as usize > GREFS_PER_PAGE {
            return Err(invalid(Error::CtrlGrefListBadSize));
        }
        Ok(())
    }

    fn stage_grefs<G: GrantOps + GrefStore>(queue: u32, list: GrantRef, n: usize, g: &mut G) -> Result<()> {
        let mut done = 0;
        while done < n {
            let cnt = (n - done).min(GREF_CHUNK);
            let mut chunk = [Gref::zeroed(); GREF_CHUNK];
            // The list is copied out of the frontend's page once.
            g.copy_from_grant(list, done * size_of::<Gref>(), chunk[..cnt].as_mut_bytes())?;
            for e in &chunk[..cnt] {
                if e.flags().unknown_bits(GrefFlags::READONLY).0 != 0 {
                    return Err(Error::CtrlGrefBadFlags);
                }
                g.stage(queue, e.gref(), e.flags().contains(GrefFlags::READONLY))?;
            }
            done += cnt;
        }
        Ok(())
    }

    fn del_grefs<G: GrantOps + GrefStore>(queue: u32, list: GrantRef, n: usize, g: &mut G) -> Result<u32> {
        let mut removed = 0;
        let mut done = 0;
        while done < n {
            let cnt = (n - done).min(GREF_CHUNK);
            let mut chunk = [Gref::zeroed(); GREF_CHUNK];
            let off = done * size_of::<Gref>();
            g.copy_from_grant(list, off, chunk[..cnt].as_mut_bytes())?;
            for e in chunk[..cnt].iter_mut() {
                let st = g.remove(queue, e.gref());
                if st == CtrlStatus::SUCCESS {
                    removed += 1;
                }
                *e = Gref::new(e.gref(), e.flags(), st.0 as u16);
            }
            g.copy_to_grant(list, off, chunk[..cnt].as_bytes())?;
            done += cnt;
        }
        Ok(removed)
    }
}

/// Backend end of a control ring.
#[derive(Debug)]
pub struct CtrlBack<B: Barriers> {
    /// The ring.
    pub ring: BackRing<CtrlRingKind, B>,
    /// The control state.
    pub state: CtrlBackend,
}

impl<B: Barriers> CtrlBack<B> {
    /// Attaches to a control ring page initialised by the frontend.
    pub fn attach(sring: SharedRing<CtrlRingKind>, num_queues: u32) -> Result<Self> {
        Ok(Self {
            ring: BackRing::attach(sring)?,
            state: CtrlBackend::new(num_queues),
        })
    }

    /// Handles one request, if any, and queues its response. Returns the
    /// rejection reason for the log (`Some(Some(e))`); `Err` is fatal.
    pub fn process_one<G: GrantOps + GrefStore>(&mut self, g: &mut G) -> Result<Option<Option<Error>>> {
        let Some(req) = self.ring.next_request()? else {
            return Ok(None);
        };
        let (rsp, err) = self.state.handle(&req, g);
        self.ring.push_response(rsp)?;
        Ok(Some(err))
    }

    /// Publishes responses; true if the frontend must be notified.
    pub fn push(&mut self) -> bool {
        self.ring.push_responses_and_check_notify()
    }
}

/// Frontend end of a control ring.
#[derive(Debug)]
pub struct CtrlFront<B: Barriers> {
    /// The ring.
    pub ring: FrontRing<CtrlRingKind, B>,
    sent: [(u16, u16); CTRL_SLOTS],
    next_id: u16,
}

impl<B: Barriers> CtrlFront<B> {
    /// Initialises the control ring page.
    pub fn new(sring: SharedRing<CtrlRingKind>) -> Self {
        Self {
            ring: FrontRing::new(sring),
            sent: [(0, 0); CTRL_SLOTS],
            next_id: 0,
        }
    }

    fn slot(&self, idx: u32) -> usize {
        (idx & (self.ring.size() - 1)) as usize
    }

    /// Queues and publishes a request; returns (id, notify).
    pub fn send(&mut self, ty: CtrlType, data: [u32; 3]) -> Result<(u16, bool)> {
        let id = self.next_id;
        let s = self.slot(self.ring.req_prod_pvt());
        self.ring.push_request(CtrlRequest::new(id, ty, data))?;
        self.sent[s] = (id, ty.0);
        self.next_id = self.next_id.wrapping_add(1);
        Ok((id, self.ring.push_requests_and_check_notify()))
    }

    /// Next response, checked against the request sent in the same slot.
    pub fn poll(&mut self) -> Result<Option<CtrlResponse>> {
        let s = self.slot(self.ring.rsp_cons());
        let Some(rsp) = self.ring.next_response()? else {
            return Ok(None);
        };
        if (rsp.id(), rsp.ty().0) != self.sent[s] {
            return Err(Error::CtrlResponseMismatch);
        }
        if rsp.status().0 > CtrlStatus::BUFFER_OVERFLOW.0 {
            return Err(Error::CtrlBadStatus);
        }
        Ok(Some(rsp))
    }
}

/// The addresses and ports of a packet, as the kernel's flow dissector
/// reports them (network byte order, as on the wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowKeys {
    /// IPv6 (addresses use all 16 bytes) or IPv4 (the first 4).
    pub v6: bool,
    /// Source address.
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source and destination TCP ports, for an unfragmented TCP packet.
    pub tcp_ports: Option<([u8; 2], [u8; 2])>,
}

/// A packet's hash and its `_XEN_NETIF_CTRL_HASH_TYPE_*` bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash {
    /// The Toeplitz hash.
    pub value: u32,
    /// IPV4 (0), IPV4_TCP (1), IPV6 (2) or IPV6_TCP (3).
    pub ty: u8,
}

impl FlowHash {
    /// True if the hash covers the TCP ports (an L4 hash).
    pub fn is_l4(&self) -> bool {
        self.ty & 1 == 1
    }
    /// The hash as the guest-receive extra.
    pub fn extra(&self) -> super::wire::HashExtra {
        super::wire::HashExtra {
            ty: self.ty,
            algorithm: HashAlgorithm::TOEPLITZ.0 as u8,
            value: self.value,
        }
    }
}

/// The bytes the Toeplitz hash covers for `f` when `types` are enabled,
/// written to the front of `buf`: their length and the hash type, or
/// `None` if no enabled type covers the packet (as Linux netback: the TCP
/// type if enabled and the packet is TCP, else the address-only type).
fn hash_input(
    f: &FlowKeys,
    types: HashTypes,
    buf: &mut [u8; MAX_HASH_INPUT_SIZE],
) -> Option<(usize, u8)> {
    let alen = if f.v6 { 16 } else { 4 };
    let (l3, l4, base) = if f.v6 {
        (HashTypes::IPV6, HashTypes::IPV6_TCP, 2)
    } else {
        (HashTypes::IPV4, HashTypes::IPV4_TCP, 0)
    };
    buf[..alen].copy_from_slice(&f.src[..alen]);
    buf[alen..2 * alen].copy_from_slice(&f.dst[..alen]);
    let mut n = 2 * alen;
    let ty = match f.tcp_ports {
        Some((sp, dp)) if types.contains(l4) => {
            buf[n..n + 2].copy_from_slice(&sp);
            buf[n + 2..n + 4].copy_from_slice(&dp);
            n += 4;
            base + 1
        }
        _ if types.contains(l3) => base,
        _ => return None,
    };
    Some((n, ty))
}

/// The queue for `hash`: the mapping table's entry, or the hash modulo the
/// queue count while the table is empty.
fn mapped_queue(mapping: &[u32; MAX_HASH_MAPPING_SIZE], size: u32, queues: u32, hash: u32) -> u32 {
    // Panic-free (this runs per packet in the kernel): neither divisor is
    // zero and the index is below the table's size, but say so without a
    // panic path.
    match hash.checked_rem(size) {
        None => hash.checked_rem(queues).unwrap_or(0),
        Some(i) => mapping.get(i as usize).copied().unwrap_or(0),
    }
}

impl CtrlBackend {
    /// The frontend's hash of a flow, as configured over the control ring
    /// (as Linux netback: the TCP type if enabled and the packet is TCP,
    /// else the address-only type if enabled); `None` if hashing is off or
    /// no enabled type covers the packet.
    ///
    /// Hashes bit by bit; the data path should use a [`HashSnapshot`].
    pub fn flow_hash(&self, f: &FlowKeys) -> Option<FlowHash> {
        if self.algorithm != HashAlgorithm::TOEPLITZ {
            return None;
        }
        let mut buf = [0u8; MAX_HASH_INPUT_SIZE];
        let (n, ty) = hash_input(f, self.hash_types, &mut buf)?;
        Some(FlowHash {
            value: toeplitz_hash(&self.key, buf.get(..n)?),
            ty,
        })
    }

    /// The queue a packet with `hash` goes to: the frontend's mapping
    /// table, or the hash modulo the queue count while it set none.
    pub fn queue_for(&self, hash: u32) -> u32 {
        mapped_queue(&self.mapping, self.mapping_size, self.num_queues, hash)
    }
}

/// Toeplitz hash (netif.h reference algorithm).
pub fn toeplitz_hash(key: &[u8], buf: &[u8]) -> u32 {
    let k = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
    let mut prefix: u64 = 0;
    let mut keyi = 0;
    while keyi < 8 {
        prefix = (prefix << 8) | k(keyi);
        keyi += 1;
    }
    let mut hash: u64 = 0;
    for &b in buf {
        let mut byte = b;
        for _ in 0..8 {
            if byte & 0x80 != 0 {
                hash ^= prefix;
            }
            prefix <<= 1;
            byte <<= 1;
        }
        prefix |= k(keyi);
        keyi += 1;
    }
    (hash >> 32) as u32
}

/// The Toeplitz hash under one key, table-driven: two lookups and two XORs
/// per input byte instead of eight conditional XORs.
///
/// The hash is linear in its input (XOR of one 32-bit key window per set
/// input bit), so each input nibble's contribution is precomputed for
/// every nibble position up to [`MAX_HASH_INPUT_SIZE`] bytes: 72 tables of
/// 16 entries (4.6 KB). Too large for a softirq stack: keep it inside a
/// heap-allocated struct and fill it in place with [`ToeplitzTable::set_key`]
/// (all-zero bytes are [`ToeplitzTable::EMPTY`]).
#[derive(Clone, FromZeros)]
pub struct ToeplitzTable {
    key: [u8; MAX_HASH_KEY_SIZE],
    /// `nibbles[i][0][v]`: the hash of input byte `i` being `v << 4`
    /// (others zero); `nibbles[i][1][v]`: of it being `v`.
    nibbles: [[[u32; 16]; 2]; MAX_HASH_INPUT_SIZE],
}

impl core::fmt::Debug for ToeplitzTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ToeplitzTable")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ToeplitzTable {
    /// The table of the all-zero key (every input hashes to 0).
    pub const EMPTY: Self = Self {
        key: [0; MAX_HASH_KEY_SIZE],
        nibbles: [[[0; 16]; 2]; MAX_HASH_INPUT_SIZE],
    };

    /// The table for `key` (zero-padded, as [`CtrlBackend::key`]). Returns
    /// 4.6 KB by value: in the kernel use [`ToeplitzTable::set_key`] on a
    /// heap-allocated one.
    pub fn new(key: &[u8; MAX_HASH_KEY_SIZE]) -> Self {
        let mut t = Self::EMPTY;
        t.set_key(key);
        t
    }

    /// Rebuilds the table, in place, for `key`.
    pub fn set_key(&mut self, key: &[u8; MAX_HASH_KEY_SIZE]) {
        self.key = *key;
        let k = |i: usize| u64::from(key.get(i).copied().unwrap_or(0));
        for (i, halves) in self.nibbles.iter_mut().enumerate() {
            // Key bits 8i .. 8i + 40: the 32-bit windows of input byte i's
            // eight bits (input bit b, counted from the byte's most
            // significant, selects key bits 8i + b .. 8i + b + 32).
            let w = (k(i) << 32) | (k(i + 1) << 24) | (k(i + 2) << 16) | (k(i + 3) << 8) | k(i + 4);
            let window = |b: usize| (w >> (8 - b)) as u32;
            for (half, table) in halves.iter_mut().enumerate() {
                for (v, entry) in table.iter_mut().enumerate() {
                    *entry = (0..4)
                        .filter(|j| v & (8 >> j) != 0)
                        .fold(0, |h, j| h ^ window(4 * half + j));
                }
            }
        }
    }

    /// The key the table was built for.
    pub fn key(&self) -> &[u8; MAX_HASH_KEY_SIZE] {
        &self.key
    }

    /// `toeplitz_hash(self.key(), input)`. Inputs longer than
    /// [`MAX_HASH_INPUT_SIZE`] (no flow has one) fall back to the bitwise
    /// hash.
    pub fn hash(&self, input: &[u8]) -> u32 {
        if input.len() > MAX_HASH_INPUT_SIZE {
            return toeplitz_hash(&self.key, input);
        }
        self.nibbles.iter().zip(input).fold(0, |h, (t, &b)| {
            h ^ t[0][usize::from(b >> 4)] ^ t[1][usize::from(b & 0xf)]
        })
    }
}

/// A copy of a [`CtrlBackend`]'s hash configuration for the data path:
/// algorithm, hash types, the key's [`ToeplitzTable`], the mapping table
/// and the queue count. [`HashSnapshot::flow_hash`] and
/// [`HashSnapshot::queue_for`] answer exactly as the backend's did when
/// the snapshot was taken, without its lock and with the table-driven
/// hash.
///
/// About 5.2 KB: keep it on the heap. Start from [`HashSnapshot::EMPTY`]
/// (or zeroed memory: all-zero bytes are `EMPTY`) and fill it in place with
/// [`HashSnapshot::refresh_from`]; [`HashSnapshot::refresh_if_stale`]
/// refreshes only when the backend's
/// [`config_generation`](CtrlBackend::config_generation) moved. `EMPTY`
/// hashes nothing and sends everything to queue 0.
#[derive(Debug, Clone, FromZeros)]
pub struct HashSnapshot {
    /// Refreshed at least once.
    taken: bool,
    generation: u64,
    algorithm: HashAlgorithm,
    hash_types: HashTypes,
    num_queues: u32,
    mapping_size: u32,
    mapping: [u32; MAX_HASH_MAPPING_SIZE],
    toeplitz: ToeplitzTable,
}

impl Default for HashSnapshot {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl HashSnapshot {
    /// No configuration: no hash, every packet to queue 0.
    pub const EMPTY: Self = Self {
        taken: false,
        generation: 0,
        algorithm: HashAlgorithm::NONE,
        hash_types: HashTypes(0),
        num_queues: 0,
        mapping_size: 0,
        mapping: [0; MAX_HASH_MAPPING_SIZE],
        toeplitz: ToeplitzTable::EMPTY,
    };

    /// Copies `be`'s configuration, in place (the Toeplitz table is rebuilt
    /// only if the key changed). No large temporaries.
    pub fn refresh_from(&mut self, be: &CtrlBackend) {
        self.taken = true;
        self.generation = be.generation;
        self.algorithm = be.algorithm;
        self.hash_types = be.hash_types;
        self.num_queues = be.num_queues;
        self.mapping_size = be.mapping_size;
        self.mapping = be.mapping;
        if self.toeplitz.key != be.key {
            self.toeplitz.set_key(&be.key);
        }
    }

    /// True if the snapshot was taken from `be` at its current
    /// [`config_generation`](CtrlBackend::config_generation) (also compares
    /// the queue count and the public algorithm and hash-type fields). The
    /// generation counts per backend: after replacing the backend (a new
    /// control ring), call [`HashSnapshot::refresh_from`] unconditionally.
    pub fn is_current(&self, be: &CtrlBackend) -> bool {
        self.taken
            && self.generation == be.generation
            && self.num_queues == be.num_queues
            && self.algorithm == be.algorithm
            && self.hash_types == be.hash_types
    }

    /// Refreshes from `be` unless [`HashSnapshot::is_current`]; true if it
    /// did.
    pub fn refresh_if_stale(&mut self, be: &CtrlBackend) -> bool {
        let stale = !self.is_current(be);
        if stale {
            self.refresh_from(be);
        }
        stale
    }

    /// The backend's [`config_generation`](CtrlBackend::config_generation)
    /// when the snapshot was taken.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The selected algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The enabled hash types.
    pub fn hash_types(&self) -> HashTypes {
        self.hash_types
    }

    /// The mapping table in use.
    pub fn mapping(&self) -> &[u32] {
        self.mapping
            .get(..self.mapping_size as usize)
            .unwrap_or(&[])
    }

    /// The queue count.
    pub fn num_queues(&self) -> u32 {
        self.num_queues
    }

    /// The key's Toeplitz table.
    pub fn toeplitz(&self) -> &ToeplitzTable {
        &self.toeplitz
    }

    /// As [`CtrlBackend::flow_hash`].
    pub fn flow_hash(&self, f: &FlowKeys) -> Option<FlowHash> {
        if self.algorithm != HashAlgorithm::TOEPLITZ {
            return None;
        }
        let mut buf = [0u8; MAX_HASH_INPUT_SIZE];
        let (n, ty) = hash_input(f, self.hash_types, &mut buf)?;
        Some(FlowHash {
            value: self.toeplitz.hash(buf.get(..n)?),
            ty,
        })
    }

    /// As [`CtrlBackend::queue_for`].
    pub fn queue_for(&self, hash: u32) -> u32 {
        mapped_queue(&self.mapping, self.mapping_size, self.num_queues, hash)
    }
}

/// Reads a value of `T` from a byte slice (helper for environments).
pub fn read_wire<T: FromBytes>(bytes: &[u8]) -> Option<T> {
    T::read_from_prefix(bytes).ok().map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    /// Grants as a map of 4 KiB pages; map handles count up.
    #[derive(Default)]
    struct FakeGrants {
        pages: HashMap<GrantRef, Vec<u8>>,
        mapped: HashMap<u32, (u32, GrantRef, bool)>,
        staged: Vec<(GrantRef, bool)>,
        next: u32,
        fail_map: Option<GrantRef>,
    }

    impl FakeGrants {
        fn page(&mut self, gref: GrantRef, bytes: &[u8]) {
            let mut p = std::vec![0u8; PAGE_SIZE];
            p[..bytes.len()].copy_from_slice(bytes);
            self.pages.insert(gref, p);
        }
    }

    impl GrantOps for FakeGrants {
        fn copy_from_grant(&mut self, gref: GrantRef, offset: usize, buf: &mut [u8]) -> Result<()> {
            let p = self.pages.get(&gref).ok_or(Error::GrantBad)?;
            let src = p
                .get(offset..offset + buf.len())
                .ok_or(Error::GrantOutOfPage)?;
            buf.copy_from_slice(src);
            Ok(())
        }
        fn copy_to_grant(&mut self, gref: GrantRef, offset: usize, buf: &[u8]) -> Result<()> {
            let p = self.pages.get_mut(&gref).ok_or(Error::GrantBad)?;
            let dst = p
                .get_mut(offset..offset + buf.len())
                .ok_or(Error::GrantOutOfPage)?;
            dst.copy_from_slice(buf);
            Ok(())
        }
    }

    /// Static grants: 8 per queue, queues 0 and 1 (a model of `grant_reuse`).
    impl GrefStore for FakeGrants {
        fn mapping_size(&self, queue: u32) -> u32 {
            if queue < 2 { 8 } else { 0 }
        }
        fn room(&self, queue: u32) -> u32 {
            8 - self.mapped.values().filter(|m| m.0 == queue).count() as u32 - self.staged.len() as u32
        }
        fn stage(&mut self, queue: u32, gref: GrantRef, ro: bool) -> Result<()> {
            if self.mapped.values().any(|m| m.0 == queue && m.1 == gref) || self.staged.iter().any(|s| s.0 == gref) {
                return Err(Error::CtrlGrefAlreadyMapped);
            }
            self.staged.push((gref, ro));
            Ok(())
        }
        fn commit(&mut self, queue: u32) -> Result<()> {
            if self.staged.iter().any(|s| Some(s.0) == self.fail_map) {
                return Err(Error::GrantBad);
            }
            for (gref, ro) in core::mem::take(&mut self.staged) {
                self.next += 1;
                self.mapped.insert(self.next, (queue, gref, ro));
            }
            Ok(())
        }
        fn abort(&mut self, _queue: u32) {
            self.staged.clear();
        }
        fn remove(&mut self, queue: u32, gref: GrantRef) -> CtrlStatus {
            match self.mapped.iter().find(|m| m.1 .0 == queue && m.1 .1 == gref).map(|m| *m.0) {
                Some(h) => {
                    self.mapped.remove(&h);
                    CtrlStatus::SUCCESS
                }
                None => CtrlStatus::INVALID_PARAMETER,
            }
        }
    }

    fn req(ty: CtrlType, d: [u32; 3]) -> CtrlRequest {
        CtrlRequest::new(1, ty, d)
    }

    fn run(
        b: &mut CtrlBackend,
        g: &mut FakeGrants,
        ty: CtrlType,
        d: [u32; 3],
    ) -> (CtrlStatus, u32, Option<Error>) {
        let (r, e) = b.handle(&req(ty, d), g);
        assert_eq!((r.id(), r.ty()), (1, ty));
        (r.status(), r.data(), e)
    }

    #[test]
    fn hash_configuration() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        let inv = CtrlStatus::INVALID_PARAMETER;
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [1, 0, 0]).2,
            Some(Error::CtrlNoAlgorithm)
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [7, 0, 0]),
            (inv, 0, Some(Error::CtrlBadAlgorithm))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 1, 0]),
            (inv, 0, Some(Error::CtrlReservedNonZero))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 0, 0]).0,
            CtrlStatus::SUCCESS
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::GET_HASH_FLAGS, [0; 3]),
            (CtrlStatus::SUCCESS, 15, None)
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [16, 0, 0]),
            (inv, 0, Some(Error::CtrlBadHashFlags))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [3, 0, 0]).0,
            CtrlStatus::SUCCESS
        );
        g.page(10, &[0xaa; 40]);
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 41, 0]),
            (CtrlStatus::BUFFER_OVERFLOW, 0, Some(Error::CtrlKeyTooLarge))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_KEY, [99, 40, 0]),
            (inv, 0, Some(Error::GrantBad))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 4, 0]).0,
            CtrlStatus::SUCCESS
        );
        assert_eq!(&b.key()[..5], &[0xaa, 0xaa, 0xaa, 0xaa, 0]);
        assert_eq!(
            run(&mut b, &mut g, CtrlType(11), [0; 3]),
            (CtrlStatus::NOT_SUPPORTED, 0, Some(Error::CtrlBadType))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::INVALID, [0; 3]).2,
            Some(Error::CtrlBadType)
        );
    }

    #[test]
    fn hash_mapping_ranges_xsa270() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        let inv = CtrlStatus::INVALID_PARAMETER;
        assert_eq!(
            run(&mut b, &mut g, CtrlType::GET_HASH_MAPPING_SIZE, [0; 3]).1,
            128
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING_SIZE, [129, 0, 0]).2,
            Some(Error::CtrlMappingSizeTooLarge)
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING_SIZE, [64, 0, 0]).0,
            CtrlStatus::SUCCESS
        );
        let table: Vec<u8> = (0..64u32).flat_map(|i| (i % 4).to_ne_bytes()).collect();
        g.page(20, &table);
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 32, 33]),
            (inv, 0, Some(Error::CtrlMappingOutOfRange))
        );
        assert_eq!(
            run(
                &mut b,
                &mut g,
                CtrlType::SET_HASH_MAPPING,
                [20, 2, u32::MAX]
            ),
            (inv, 0, Some(Error::CtrlMappingOutOfRange))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 1025, 0]),
            (inv, 0, Some(Error::CtrlMappingTooLargeForPage))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 32, 32]).0,
            CtrlStatus::SUCCESS
        );
        assert_eq!(b.mapping()[33], 1);
        g.page(21, &7u32.to_ne_bytes());
        assert_eq!(
            run(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [21, 1, 0]),
            (inv, 0, Some(Error::CtrlMappingBadQueue))
        );
        assert_eq!(b.mapping()[0], 0, "rejected table not applied");
    }

    fn list(entries: &[(GrantRef, u16)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(r, f)| Gref::new(r, GrefFlags(f), 0).as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn gref_mappings() {
        let mut b = CtrlBackend::new(2);
        let mut g = FakeGrants::default();
        let inv = CtrlStatus::INVALID_PARAMETER;
        assert_eq!(
            run(&mut b, &mut g, CtrlType::GET_GREF_MAPPING_SIZE, [0, 0, 0]).1,
            8
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::GET_GREF_MAPPING_SIZE, [2, 0, 0]).2,
            Some(Error::CtrlBadQueue)
        );
        g.page(30, &list(&[(100, 0), (101, 1), (102, 0)]));
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 9]),
            (CtrlStatus::BUFFER_OVERFLOW, 0, Some(Error::CtrlGrefListBadSize))
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 513]).0,
            CtrlStatus::INVALID_PARAMETER,
            "past a page"
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::GET_GREF_MAPPING_SIZE, [1, 0, 0]),
            (CtrlStatus::SUCCESS, 8, None)
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 0]).2,
            Some(Error::CtrlGrefListBadSize)
        );
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [5, 30, 1]).2,
            Some(Error::CtrlBadQueue)
        );
        g.fail_map = Some(102);
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 3]),
            (inv, 0, Some(Error::GrantBad))
        );
        assert_eq!(g.mapped.len(), 0, "all or nothing");
        assert!(g.mapped.is_empty());
        g.fail_map = None;
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 3]).0,
            CtrlStatus::SUCCESS
        );
        assert_eq!(g.mapped.len(), 3);
        assert!(g.mapped.values().any(|m| m.1 == 101 && m.2));
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 1]).2,
            Some(Error::CtrlGrefAlreadyMapped)
        );
        g.page(31, &list(&[(5, 2)]));
        assert_eq!(
            run(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 31, 1]).2,
            Some(Error::CtrlGrefBadFlags)
        );
        g.page(32, &list(&[(100, 0), (555, 0), (102, 0)]));
        assert_eq!(
            run(&mut b, &mut g, CtrlType::DEL_GREF_MAPPING, [0, 32, 3]),
            (CtrlStatus::SUCCESS, 2, None)
        );
        let st: Vec<u16> = (0..3)
            .map(|i| read_wire::<Gref>(&g.pages[&32][i * 8..]).unwrap().status())
            .collect();
        assert_eq!(st, [0, 2, 0]);
        assert_eq!(g.mapped.len(), 1);
    }

    #[test]
    fn toeplitz_reference_vector() {
        // Microsoft RSS verification key and the first IPv4 example.
        let key = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
        ];
        let buf = [66, 9, 149, 187, 161, 142, 100, 80, 10, 234, 6, 230];
        assert_eq!(toeplitz_hash(&key, &buf), 0x51cc_c178);
    }

    /// The Microsoft RSS verification key.
    const MS_KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn v4(src: [u8; 4], dst: [u8; 4], ports: Option<(u16, u16)>) -> FlowKeys {
        let mut f = FlowKeys::default();
        f.src[..4].copy_from_slice(&src);
        f.dst[..4].copy_from_slice(&dst);
        f.tcp_ports = ports.map(|(s, d)| (s.to_be_bytes(), d.to_be_bytes()));
        f
    }

    #[test]
    fn flow_hash_follows_the_configuration() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        g.page(10, &MS_KEY);
        let tcp = v4([66, 9, 149, 187], [161, 142, 100, 80], Some((2794, 1766)));
        assert_eq!(b.flow_hash(&tcp), None, "no algorithm yet");
        run0(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 0, 0]);
        run0(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 40, 0]);
        assert_eq!(b.flow_hash(&tcp), None, "no type enabled");
        run0(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_FLAGS,
            [HashTypes::IPV4.0, 0, 0],
        );
        assert_eq!(
            b.flow_hash(&tcp),
            Some(FlowHash {
                value: 0x323e_8fc2,
                ty: 0
            })
        );
        run0(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_FLAGS,
            [HashTypes::ALL.0, 0, 0],
        );
        let h = b.flow_hash(&tcp).unwrap();
        assert_eq!(
            h,
            FlowHash {
                value: 0x51cc_c178,
                ty: 1
            }
        );
        assert!(h.is_l4());
        let udp = v4([199, 92, 111, 2], [65, 69, 140, 83], None);
        assert_eq!(b.flow_hash(&udp).unwrap().value, 0xd718_262a);
        let tcp2 = v4([199, 92, 111, 2], [65, 69, 140, 83], Some((14230, 4739)));
        assert_eq!(b.flow_hash(&tcp2).unwrap().value, 0xc626_b0ea);
        // IPv6 (same suite).
        let mut f = FlowKeys {
            v6: true,
            ..FlowKeys::default()
        };
        f.src = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7,
        ];
        f.dst = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        assert_eq!(
            b.flow_hash(&f),
            Some(FlowHash {
                value: 0x2cc1_8cd5,
                ty: 2
            })
        );
        f.tcp_ports = Some((2794u16.to_be_bytes(), 1766u16.to_be_bytes()));
        assert_eq!(
            b.flow_hash(&f),
            Some(FlowHash {
                value: 0x4020_7d3d,
                ty: 3
            })
        );
        // IPv6 only: IPv4 packets get no hash.
        run0(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_FLAGS,
            [HashTypes::IPV6.0, 0, 0],
        );
        assert_eq!(b.flow_hash(&tcp), None);
        assert_eq!(
            b.flow_hash(&f).unwrap().ty,
            2,
            "falls back to the address-only type"
        );
    }

    #[test]
    fn queue_selection_uses_the_mapping() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        assert_eq!(b.queue_for(7), 3, "no table: hash modulo queues");
        run0(&mut b, &mut g, CtrlType::SET_HASH_MAPPING_SIZE, [2, 0, 0]);
        assert_eq!(b.queue_for(7), 0, "a new table is all queue 0");
        g.page(20, [2u32, 1].as_bytes());
        run0(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 2, 0]);
        assert_eq!((b.queue_for(6), b.queue_for(7)), (2, 1));
    }

    fn run0(b: &mut CtrlBackend, g: &mut FakeGrants, ty: CtrlType, d: [u32; 3]) {
        let (r, e) = b.handle(&req(ty, d), g);
        assert_eq!(r.status(), CtrlStatus::SUCCESS, "{e:?}");
    }

    /// The Microsoft RSS verification suite: (input, hash) with `MS_KEY`.
    fn ms_vectors() -> Vec<(Vec<u8>, u32)> {
        let v4 = |s: [u8; 4], d: [u8; 4], p: Option<(u16, u16)>| {
            let mut b: Vec<u8> = s.iter().chain(&d).copied().collect();
            if let Some((sp, dp)) = p {
                b.extend(sp.to_be_bytes());
                b.extend(dp.to_be_bytes());
            }
            b
        };
        let a6 = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7,
        ];
        let b6 = [
            0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1,
        ];
        let v6: Vec<u8> = a6.iter().chain(&b6).copied().collect();
        let mut v6_tcp = v6.clone();
        v6_tcp.extend(2794u16.to_be_bytes());
        v6_tcp.extend(1766u16.to_be_bytes());
        std::vec![
            (
                v4([66, 9, 149, 187], [161, 142, 100, 80], Some((2794, 1766))),
                0x51cc_c178
            ),
            (
                v4([66, 9, 149, 187], [161, 142, 100, 80], None),
                0x323e_8fc2
            ),
            (
                v4([199, 92, 111, 2], [65, 69, 140, 83], Some((14230, 4739))),
                0xc626_b0ea
            ),
            (v4([199, 92, 111, 2], [65, 69, 140, 83], None), 0xd718_262a),
            (v6, 0x2cc1_8cd5),
            (v6_tcp, 0x4020_7d3d),
        ]
    }

    #[test]
    fn toeplitz_table_rss_vectors() {
        let t = std::boxed::Box::new(ToeplitzTable::new(&MS_KEY));
        assert_eq!(t.key(), &MS_KEY);
        for (input, want) in ms_vectors() {
            assert_eq!(toeplitz_hash(&MS_KEY, &input), want, "{input:?}");
            assert_eq!(t.hash(&input), want, "{input:?}");
        }
        let zero = ToeplitzTable::EMPTY;
        assert_eq!(zero.hash(&[0xff; MAX_HASH_INPUT_SIZE]), 0);
        assert_eq!(t.hash(&[]), 0);
    }

    #[test]
    fn toeplitz_table_is_zeroed_empty() {
        use zerocopy::FromZeros;
        let z = ToeplitzTable::new_zeroed();
        assert_eq!(z.key(), ToeplitzTable::EMPTY.key());
        assert_eq!(z.nibbles, ToeplitzTable::EMPTY.nibbles);
        let s = HashSnapshot::new_zeroed();
        assert_eq!(format!("{s:?}"), format!("{:?}", HashSnapshot::EMPTY));
    }

    use proptest::prelude::*;
    use std::boxed::Box;
    use std::format;

    fn flow_strategy() -> impl Strategy<Value = FlowKeys> {
        (
            any::<bool>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>(),
            proptest::option::of(any::<([u8; 2], [u8; 2])>()),
        )
            .prop_map(|(v6, src, dst, tcp_ports)| FlowKeys {
                v6,
                src,
                dst,
                tcp_ports,
            })
    }

    /// One hash-configuration request, with the grant contents it reads.
    #[derive(Debug, Clone)]
    enum Cfg {
        Algorithm(u32),
        Flags(u32),
        Key(Vec<u8>),
        MappingSize(u32),
        /// Offset, entries (taken modulo the queue count unless the bool
        /// asks for a bad table).
        Mapping(u32, Vec<u32>, bool),
    }

    fn cfg_strategy() -> impl Strategy<Value = Cfg> {
        prop_oneof![
            prop_oneof![1 => 0u32..3, 2 => Just(1)].prop_map(Cfg::Algorithm),
            (0u32..17).prop_map(Cfg::Flags),
            proptest::collection::vec(any::<u8>(), 0..=MAX_HASH_KEY_SIZE).prop_map(Cfg::Key),
            prop_oneof![0u32..=8, 0u32..=129].prop_map(Cfg::MappingSize),
            (
                prop_oneof![3 => 0u32..4, 1 => 0u32..130],
                prop_oneof![
                    3 => proptest::collection::vec(any::<u32>(), 0..=8),
                    1 => proptest::collection::vec(any::<u32>(), 0..=130),
                ],
                proptest::bool::weighted(0.1),
            )
                .prop_map(|(off, t, bad)| Cfg::Mapping(off, t, bad)),
        ]
    }

    /// Sends `c` to `b`; true if it succeeded.
    fn configure(b: &mut CtrlBackend, g: &mut FakeGrants, c: &Cfg) -> bool {
        let (ty, d) = match c {
            Cfg::Algorithm(a) => (CtrlType::SET_HASH_ALGORITHM, [*a, 0, 0]),
            Cfg::Flags(f) => (CtrlType::SET_HASH_FLAGS, [*f, 0, 0]),
            Cfg::Key(k) => {
                g.page(40, k);
                (CtrlType::SET_HASH_KEY, [40, k.len() as u32, 0])
            }
            Cfg::MappingSize(n) => (CtrlType::SET_HASH_MAPPING_SIZE, [*n, 0, 0]),
            Cfg::Mapping(off, t, bad) => {
                let q = if *bad { u32::MAX } else { b.num_queues() };
                let t: Vec<u32> = t.iter().map(|&e| e % q).collect();
                g.page(41, t.as_bytes());
                (CtrlType::SET_HASH_MAPPING, [41, t.len() as u32, *off])
            }
        };
        b.handle(&req(ty, d), g).1.is_none()
    }

    proptest! {
        /// The table-driven hash equals the bitwise one for every key and
        /// input (longer inputs take the fallback).
        #[test]
        fn toeplitz_table_matches_bitwise(
            key in any::<[u8; MAX_HASH_KEY_SIZE]>(),
            inputs in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..=MAX_HASH_INPUT_SIZE + 8), 1..16),
        ) {
            let mut t = Box::new(ToeplitzTable::EMPTY);
            t.set_key(&key);
            for input in &inputs {
                prop_assert_eq!(t.hash(input), toeplitz_hash(&key, input));
            }
            // Short keys (as the key request pads them).
            let short = &key[..key[0] as usize % MAX_HASH_KEY_SIZE];
            let mut padded = [0u8; MAX_HASH_KEY_SIZE];
            padded[..short.len()].copy_from_slice(short);
            t.set_key(&padded);
            for input in &inputs {
                prop_assert_eq!(t.hash(input), toeplitz_hash(short, input));
            }
        }

        /// A snapshot answers as its backend, whatever the configuration
        /// the frontend built (including rejected requests), and
        /// `refresh_if_stale` refreshes exactly when the configuration
        /// moved.
        #[test]
        fn snapshot_matches_backend(
            queues in 1u32..=8,
            rounds in proptest::collection::vec(
                proptest::collection::vec(cfg_strategy(), 0..6), 1..5),
            flows in proptest::collection::vec(flow_strategy(), 1..24),
            hashes in proptest::collection::vec(any::<u32>(), 1..24),
        ) {
            let mut b = CtrlBackend::new(queues);
            let mut g = FakeGrants::default();
            let mut snap = Box::new(HashSnapshot::EMPTY);
            prop_assert!(!snap.is_current(&b));
            prop_assert!(snap.refresh_if_stale(&b));
            for round in &rounds {
                let before = b.config_generation();
                let mut changed = false;
                for c in round {
                    let (alg, types, key, size, map) =
                        (b.algorithm, b.hash_types, *b.key(), b.mapping_size, b.mapping);
                    let gen = b.config_generation();
                    let ok = configure(&mut b, &mut g, c);
                    let moved = (alg, types, key, size, map)
                        != (b.algorithm, b.hash_types, *b.key(), b.mapping_size, b.mapping);
                    prop_assert!(ok || !moved, "a rejected request changed the config");
                    prop_assert_eq!(b.config_generation(), gen + u64::from(moved));
                    changed |= moved;
                }
                prop_assert_eq!(b.config_generation() != before, changed);
                prop_assert_eq!(snap.is_current(&b), !changed);
                prop_assert_eq!(snap.refresh_if_stale(&b), changed);
                prop_assert!(snap.is_current(&b));
                prop_assert_eq!(snap.generation(), b.config_generation());
                prop_assert_eq!(snap.mapping(), b.mapping());
                prop_assert_eq!(snap.num_queues(), queues);
                for f in &flows {
                    let h = b.flow_hash(f);
                    prop_assert_eq!(snap.flow_hash(f), h);
                    let v = h.map_or(0, |h| h.value);
                    prop_assert_eq!(snap.queue_for(v), b.queue_for(v));
                    prop_assert!(snap.queue_for(v) < queues);
                }
                for &v in &hashes {
                    prop_assert_eq!(snap.queue_for(v), b.queue_for(v));
                }
            }
        }
    }

    #[test]
    fn snapshot_follows_the_rss_suite() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        g.page(10, &MS_KEY);
        let mut snap = Box::new(HashSnapshot::EMPTY);
        let tcp = v4([66, 9, 149, 187], [161, 142, 100, 80], Some((2794, 1766)));
        assert_eq!(snap.flow_hash(&tcp), None);
        assert_eq!(snap.queue_for(7), 0, "empty: everything to queue 0");
        snap.refresh_from(&b);
        assert_eq!(snap.queue_for(7), 3, "no table: hash modulo queues");
        run0(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 0, 0]);
        run0(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 40, 0]);
        run0(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_FLAGS,
            [HashTypes::ALL.0, 0, 0],
        );
        assert_eq!(snap.flow_hash(&tcp), None, "stale until refreshed");
        assert!(snap.refresh_if_stale(&b));
        assert!(!snap.refresh_if_stale(&b));
        assert_eq!(snap.toeplitz().key(), &MS_KEY);
        assert_eq!(
            snap.flow_hash(&tcp),
            Some(FlowHash {
                value: 0x51cc_c178,
                ty: 1
            })
        );
        // A direct write to the public fields is still noticed.
        b.hash_types = HashTypes::IPV4;
        assert!(!snap.is_current(&b));
        assert!(snap.refresh_if_stale(&b));
        assert_eq!(snap.flow_hash(&tcp).unwrap().value, 0x323e_8fc2);
    }

    #[test]
    fn config_generation_counts_changes() {
        let mut b = CtrlBackend::new(4);
        let mut g = FakeGrants::default();
        let gen = |b: &CtrlBackend| b.config_generation();
        assert_eq!(gen(&b), 0);
        let expect = |b: &mut CtrlBackend, g: &mut FakeGrants, ty, d, bump: u64| {
            let before = b.config_generation();
            run(b, g, ty, d);
            assert_eq!(b.config_generation(), before + bump, "{ty:?} {d:?}");
        };
        expect(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [1, 0, 0], 0); // no algorithm
        expect(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [0, 0, 0], 0); // already NONE
        expect(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 0, 0], 1);
        expect(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [1, 0, 0], 0);
        expect(&mut b, &mut g, CtrlType::SET_HASH_ALGORITHM, [7, 0, 0], 0); // rejected
        expect(&mut b, &mut g, CtrlType::GET_HASH_FLAGS, [0; 3], 0);
        expect(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [3, 0, 0], 1);
        expect(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [3, 0, 0], 0);
        expect(&mut b, &mut g, CtrlType::SET_HASH_FLAGS, [16, 0, 0], 0); // rejected
        g.page(10, &MS_KEY);
        expect(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 40, 0], 1);
        expect(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 40, 0], 0);
        expect(&mut b, &mut g, CtrlType::SET_HASH_KEY, [10, 4, 0], 1);
        expect(&mut b, &mut g, CtrlType::SET_HASH_KEY, [99, 40, 0], 0); // bad grant
        expect(&mut b, &mut g, CtrlType::GET_HASH_MAPPING_SIZE, [0; 3], 0);
        expect(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_MAPPING_SIZE,
            [0, 0, 0],
            0,
        );
        expect(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_MAPPING_SIZE,
            [4, 0, 0],
            1,
        );
        expect(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_MAPPING_SIZE,
            [4, 0, 0],
            0,
        );
        expect(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_MAPPING_SIZE,
            [200, 0, 0],
            0,
        );
        g.page(20, [0u32, 1, 2, 3].as_bytes());
        expect(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 1, 0], 0); // [0] is 0 already
        expect(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 4, 0], 1);
        expect(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 4, 0], 0);
        expect(&mut b, &mut g, CtrlType::SET_HASH_MAPPING, [20, 4, 1], 0); // out of range
                                                                           // Same size again, but the table was set: it is cleared.
        expect(
            &mut b,
            &mut g,
            CtrlType::SET_HASH_MAPPING_SIZE,
            [4, 0, 0],
            1,
        );
        assert_eq!(b.mapping(), &[0; 4]);
        g.page(30, &list(&[(100, 0)]));
        expect(&mut b, &mut g, CtrlType::ADD_GREF_MAPPING, [0, 30, 1], 0);
        expect(&mut b, &mut g, CtrlType::DEL_GREF_MAPPING, [0, 30, 1], 0);
        assert_eq!(gen(&b), 7);
    }
}
