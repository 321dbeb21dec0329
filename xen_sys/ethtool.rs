// SPDX-License-Identifier: GPL-2.0

//! `ethtool -S` helpers shared by both modules: per-queue counter names and
//! values in the layout the ethtool core expects.

use core::ffi::c_int;
use kernel::prelude::*;
use kernel::str::CString;

/// `ETH_SS_STATS` and `ETH_GSTRING_LEN` from the ethtool UAPI.
pub(crate) const ETH_SS_STATS: c_int = 1;
const ETH_GSTRING_LEN: usize = 32;

/// Writes `queues * patterns.len()` names, queue by queue; `{}` in a
/// pattern becomes the queue number.
///
/// # Safety
///
/// `data` must have room for that many `ETH_GSTRING_LEN`-byte strings.
pub(crate) unsafe fn write_strings(data: *mut u8, queues: usize, patterns: &[&str]) {
    let mut slot = 0;
    for q in 0..queues {
        for pattern in patterns {
            let (pre, post) = pattern.split_once("{}").unwrap_or((pattern, ""));
            let name = CString::try_from_fmt(fmt!("{}{}{}", pre, q, post));
            // SAFETY: `slot` stays below the count the caller sized `data` for.
            let dst = unsafe { core::slice::from_raw_parts_mut(data.add(slot * ETH_GSTRING_LEN), ETH_GSTRING_LEN) };
            dst.fill(0);
            if let Ok(name) = name {
                let bytes = name.to_bytes();
                let n = bytes.len().min(ETH_GSTRING_LEN - 1);
                dst[..n].copy_from_slice(&bytes[..n]);
            }
            slot += 1;
        }
    }
}

/// Writes each queue's counters: `values(q, i)` for queue `q`, counter `i`.
///
/// # Safety
///
/// `data` must have room for `queues * per_queue` values.
pub(crate) unsafe fn write_values(data: *mut u64, queues: usize, per_queue: usize, values: impl Fn(usize, &mut [u64])) {
    let mut buf = [0u64; 16];
    let per_queue = per_queue.min(buf.len());
    for q in 0..queues {
        values(q, &mut buf[..per_queue]);
        for (i, v) in buf[..per_queue].iter().enumerate() {
            // SAFETY: within the caller-sized array.
            unsafe { data.add(q * per_queue + i).write(*v) };
        }
    }
}
