//! Shared 4 KiB pages.
//!
//! A page may be written by one domain while another reads it (that is the
//! point of the simulation), so its bytes are never exposed as Rust
//! references: all access is through raw pointers with volatile operations.

use netif::PAGE_SIZE;
use std::cell::UnsafeCell;
use std::sync::Arc;

#[repr(C, align(4096))]
struct Raw(UnsafeCell<[u8; PAGE_SIZE]>);

/// One page of guest memory.
pub struct Page(Raw);

// SAFETY: the bytes are only accessed through raw pointers with volatile
// reads/writes (`read`, `write`, `as_ptr` users must do the same), which is
// how two domains share memory; no `&`/`&mut` to the contents ever exists.
unsafe impl Sync for Page {}
// SAFETY: as above; the page owns plain bytes.
unsafe impl Send for Page {}

/// A reference-counted page.
pub type PageRef = Arc<Page>;

impl Page {
    /// A zeroed page.
    pub fn new() -> PageRef {
        Arc::new(Page(Raw(UnsafeCell::new([0; PAGE_SIZE]))))
    }

    /// Base pointer (page-aligned, valid for `PAGE_SIZE` bytes while the page
    /// lives). Only volatile access may be made through it.
    pub fn as_ptr(&self) -> *mut u8 {
        self.0 .0.get().cast()
    }

    /// Copies bytes out with volatile reads. Panics if out of the page (a
    /// bug in the simulator, not in the peer: callers check bounds first).
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        assert!(offset + buf.len() <= PAGE_SIZE);
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: in bounds (asserted); volatile read of a byte of a live page.
            *b = unsafe { self.as_ptr().add(offset + i).read_volatile() };
        }
    }

    /// Copies bytes in with volatile writes.
    pub fn write(&self, offset: usize, buf: &[u8]) {
        assert!(offset + buf.len() <= PAGE_SIZE);
        for (i, b) in buf.iter().enumerate() {
            // SAFETY: in bounds (asserted); volatile write to a live page.
            unsafe { self.as_ptr().add(offset + i).write_volatile(*b) };
        }
    }

    /// Fills the page with `b`.
    pub fn fill(&self, b: u8) {
        self.write(0, &[b; PAGE_SIZE]);
    }
}
