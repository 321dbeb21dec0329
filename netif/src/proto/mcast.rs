//! The backend's multicast filter (`request-multicast-control`).
//!
//! A frontend that asks for multicast control names the groups it wants
//! with `MCAST_ADD`/`MCAST_DEL` extras on dummy TX requests; the backend then
//! delivers only those multicast frames (broadcast always passes). The list
//! is bounded (a frontend cannot grow dom0 memory) and held inline, so
//! updating and matching never allocate. It is kept sorted: the per-frame
//! lookup is a binary search (at most 7 comparisons of `MCAST_MAX`).

use super::error::{Error, Result};

/// Most groups one vif may join (as Linux netback's `XEN_NETBK_MCAST_MAX`).
pub const MCAST_MAX: usize = 64;

/// A multicast filter list.
#[derive(Debug, Clone)]
pub struct McastFilter {
    /// `addrs[..len]`, sorted (byte-wise, i.e. as 48-bit big-endian
    /// numbers), no duplicates.
    addrs: [[u8; 6]; MCAST_MAX],
    len: usize,
}

impl Default for McastFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// True for a group (multicast, not broadcast) Ethernet address.
pub fn is_group_addr(addr: &[u8; 6]) -> bool {
    addr[0] & 1 != 0 && *addr != [0xff; 6]
}

impl McastFilter {
    /// An empty list.
    pub const fn new() -> Self {
        Self {
            addrs: [[0; 6]; MCAST_MAX],
            len: 0,
        }
    }

    /// Groups in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no group was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The groups, sorted.
    fn sorted(&self) -> &[[u8; 6]] {
        self.addrs.get(..self.len).unwrap_or(&[])
    }

    /// Where `addr` is (`Ok`) or would be inserted (`Err`).
    fn search(&self, addr: &[u8; 6]) -> core::result::Result<usize, usize> {
        self.sorted().binary_search(addr)
    }

    /// Adds a group; adding one already present changes nothing.
    pub fn add(&mut self, addr: [u8; 6]) -> Result<()> {
        if addr[0] & 1 == 0 {
            return Err(Error::McastNotMulticast);
        }
        let Err(at) = self.search(&addr) else {
            return Ok(());
        };
        // `at <= len < MCAST_MAX` once the list has room.
        let Some(tail) = self.addrs.get_mut(at..=self.len) else {
            return Err(Error::McastListFull);
        };
        tail.rotate_right(1);
        if let Some(slot) = tail.first_mut() {
            *slot = addr;
        }
        self.len += 1;
        Ok(())
    }

    /// Removes a group; true if it was present.
    pub fn del(&mut self, addr: &[u8; 6]) -> bool {
        let Ok(at) = self.search(addr) else {
            return false;
        };
        if let Some(tail) = self.addrs.get_mut(at..self.len) {
            tail.rotate_left(1);
        }
        self.len -= 1;
        true
    }

    /// True if `addr` is in the list.
    pub fn contains(&self, addr: &[u8; 6]) -> bool {
        self.search(addr).is_ok()
    }

    /// Whether a frame to `dest` may go to the frontend: unicast and
    /// broadcast always, a group only if joined.
    pub fn passes(&self, dest: &[u8; 6]) -> bool {
        !is_group_addr(dest) || self.contains(dest)
    }

    /// The groups in the list, in ascending byte-wise order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8; 6]> {
        self.sorted().iter()
    }

    /// Forgets every group (frontend disconnected).
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    const G1: [u8; 6] = [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03];
    const G2: [u8; 6] = [0x33, 0x33, 0xff, 0x00, 0x00, 0x01];

    #[test]
    fn add_del_match() {
        let mut f = McastFilter::new();
        assert!(f.passes(&[0x02, 0, 0, 0, 0, 1]), "unicast passes");
        assert!(f.passes(&[0xff; 6]), "broadcast passes");
        assert!(!f.passes(&G1));
        f.add(G1).unwrap();
        f.add(G1).unwrap();
        assert_eq!(f.len(), 1, "duplicates collapse");
        assert!(f.passes(&G1) && !f.passes(&G2));
        assert_eq!(f.add([0x02, 0, 0, 0, 0, 1]), Err(Error::McastNotMulticast));
        assert!(f.del(&G1));
        assert!(!f.del(&G1));
        assert!(!f.passes(&G1));
    }

    #[test]
    fn bounded() {
        let mut f = McastFilter::new();
        for i in 0..MCAST_MAX {
            f.add([0x01, 0, 0, 0, 0, i as u8]).unwrap();
        }
        assert_eq!(f.add(G2), Err(Error::McastListFull));
        assert!(f.del(&[0x01, 0, 0, 0, 0, 7]));
        f.add(G2).unwrap();
        assert!(f.passes(&G2));
    }

    proptest! {
        /// The list behaves as a set of at most `MCAST_MAX` group addresses.
        #[test]
        fn matches_a_set(ops in proptest::collection::vec((any::<bool>(), 0u8..80), 0..300)) {
            let mut f = McastFilter::new();
            let mut model = BTreeSet::new();
            for (add, n) in ops {
                let a = [0x01, 0x00, 0x5e, 0, 0, n];
                if add {
                    let r = f.add(a);
                    if model.len() < MCAST_MAX || model.contains(&a) {
                        prop_assert!(r.is_ok());
                        model.insert(a);
                    } else {
                        prop_assert_eq!(r, Err(Error::McastListFull));
                    }
                } else {
                    prop_assert_eq!(f.del(&a), model.remove(&a));
                }
                prop_assert_eq!(f.len(), model.len());
            }
            for n in 0..80u8 {
                let a = [0x01, 0x00, 0x5e, 0, 0, n];
                prop_assert_eq!(f.passes(&a), model.contains(&a));
            }
        }

        /// Random add/del/contains/passes/clear sequences over a pool of
        /// random addresses (group, unicast and broadcast) behave as an
        /// unsorted `Vec` model with linear search, and the list stays
        /// sorted.
        #[test]
        fn matches_a_vec_model(
            pool in proptest::collection::vec(any::<[u8; 6]>(), 1..100),
            ops in proptest::collection::vec((0u8..10, any::<proptest::sample::Index>()), 0..500),
        ) {
            let mut pool = pool;
            pool.push([0xff; 6]);
            // Group addresses, so that the list fills up.
            pool.extend((0..70u8).map(|n| [0x01, 0x00, 0x5e, n, 0, n]));
            let mut f = McastFilter::new();
            let mut model: Vec<[u8; 6]> = Vec::new();
            for (op, i) in ops {
                let a = *i.get(&pool);
                match op {
                    0..=4 => {
                        let want = if a[0] & 1 == 0 {
                            Err(Error::McastNotMulticast)
                        } else if model.contains(&a) {
                            Ok(())
                        } else if model.len() == MCAST_MAX {
                            Err(Error::McastListFull)
                        } else {
                            model.push(a);
                            Ok(())
                        };
                        prop_assert_eq!(f.add(a), want);
                    }
                    5 | 6 => {
                        let want = match model.iter().position(|m| *m == a) {
                            Some(p) => {
                                model.swap_remove(p);
                                true
                            }
                            None => false,
                        };
                        prop_assert_eq!(f.del(&a), want);
                    }
                    7 | 8 => {
                        prop_assert_eq!(f.contains(&a), model.contains(&a));
                        prop_assert_eq!(
                            f.passes(&a),
                            a[0] & 1 == 0 || a == [0xff; 6] || model.contains(&a)
                        );
                    }
                    _ => {
                        // Clears only a full list (so that full is reached).
                        if model.len() == MCAST_MAX {
                            f.clear();
                            model.clear();
                        }
                    }
                }
                prop_assert_eq!(f.len(), model.len());
                prop_assert_eq!(f.is_empty(), model.is_empty());
                let mut sorted = model.clone();
                sorted.sort();
                let listed: Vec<[u8; 6]> = f.iter().copied().collect();
                prop_assert_eq!(listed, sorted);
            }
            for a in &pool {
                prop_assert_eq!(f.contains(a), model.contains(a));
            }
        }
    }
}
