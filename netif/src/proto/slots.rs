//! Request-id bookkeeping: which ids are outstanding, so that a response with
//! an unknown or already-answered id is detected instead of trusted.

use super::error::{Error, Result};

/// A fixed pool of `N` request ids (`0..N`), with a LIFO free list.
#[derive(Debug, Clone)]
pub struct IdPool<const N: usize> {
    free: [u16; N],
    nr_free: usize,
    outstanding: [bool; N],
}

impl<const N: usize> Default for IdPool<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> IdPool<N> {
    const FITS: () = assert!(N > 0 && N <= 1 << 16);

    /// All ids free.
    pub fn new() -> Self {
        let () = Self::FITS;
        let mut free = [0u16; N];
        let mut i = 0;
        while i < N {
            // Hand out low ids first.
            free[i] = (N - 1 - i) as u16;
            i += 1;
        }
        Self {
            free,
            nr_free: N,
            outstanding: [false; N],
        }
    }

    /// Takes a free id.
    pub fn alloc(&mut self) -> Result<u16> {
        if self.nr_free == 0 {
            return Err(Error::IdsExhausted);
        }
        self.nr_free -= 1;
        let id = self.free[self.nr_free];
        self.outstanding[usize::from(id)] = true;
        Ok(id)
    }

    /// Marks a specific id outstanding (for protocols where the id is the slot).
    pub fn claim(&mut self, id: u16) -> Result<()> {
        let i = usize::from(id);
        if i >= N {
            return Err(Error::UnknownId);
        }
        if self.outstanding[i] {
            return Err(Error::IdInUse);
        }
        match self.free[..self.nr_free].iter().position(|&f| f == id) {
            Some(pos) => {
                self.free.copy_within(pos + 1..self.nr_free, pos);
                self.nr_free -= 1;
                self.outstanding[i] = true;
                Ok(())
            }
            None => Err(Error::IdsExhausted),
        }
    }

    /// Returns an id named by the peer. Fails if it is out of range or not
    /// outstanding (never issued, or answered already).
    pub fn release(&mut self, id: u16) -> Result<()> {
        let i = usize::from(id);
        if i >= N {
            return Err(Error::UnknownId);
        }
        if !self.outstanding[i] {
            return Err(Error::DuplicateResponse);
        }
        self.outstanding[i] = false;
        self.free[self.nr_free] = id;
        self.nr_free += 1;
        Ok(())
    }

    /// True if `id` is outstanding.
    pub fn is_outstanding(&self, id: u16) -> bool {
        self.outstanding
            .get(usize::from(id))
            .copied()
            .unwrap_or(false)
    }

    /// Number of outstanding ids.
    pub fn in_use(&self) -> usize {
        N - self.nr_free
    }

    /// Number of free ids.
    pub fn available(&self) -> usize {
        self.nr_free
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_release_and_hostile_ids() {
        let mut p = IdPool::<4>::new();
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        assert_eq!((a, b), (0, 1));
        assert_eq!(p.release(9), Err(Error::UnknownId));
        assert_eq!(p.release(3), Err(Error::DuplicateResponse));
        assert_eq!(p.release(a), Ok(()));
        assert_eq!(p.release(a), Err(Error::DuplicateResponse));
        p.alloc().unwrap();
        p.alloc().unwrap();
        p.alloc().unwrap();
        assert_eq!(p.alloc(), Err(Error::IdsExhausted));
        assert_eq!(p.in_use(), 4);
    }

    #[test]
    fn claim_specific() {
        let mut p = IdPool::<4>::new();
        p.claim(2).unwrap();
        assert_eq!(p.claim(2), Err(Error::IdInUse));
        assert!(p.is_outstanding(2));
        assert_eq!(p.alloc().unwrap(), 0);
        assert_eq!(p.alloc().unwrap(), 1);
        assert_eq!(p.alloc().unwrap(), 3);
        p.release(2).unwrap();
        assert_eq!(p.alloc().unwrap(), 2);
    }
}
