// SPDX-License-Identifier: GPL-2.0

//! A fixed-capacity batch on the stack: what a queue's pass collects under
//! its lock and hands on after releasing it (skbs for the stack, frames for
//! an XDP program). No allocation; items left in it are dropped with it.

/// Up to `N` items, in the order pushed.
pub(crate) struct Batch<T, const N: usize> {
    items: [Option<T>; N],
    len: usize,
}

impl<T, const N: usize> Batch<T, N> {
    /// Capacity.
    pub(crate) const CAP: usize = N;

    pub(crate) fn new() -> Self {
        Self { items: [const { None }; N], len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds an item; one past `CAP` is dropped (callers check `is_full` or
    /// stop at `CAP`).
    pub(crate) fn push(&mut self, item: T) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = Some(item);
            self.len += 1;
        }
    }

    /// The items, in the order pushed.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.items[..self.len].iter().flatten()
    }

    /// The items, in the order pushed; the batch is empty after (items the
    /// iterator does not reach are dropped with the batch).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        let n = core::mem::replace(&mut self.len, 0);
        self.items[..n].iter_mut().filter_map(Option::take)
    }
}
