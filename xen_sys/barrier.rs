// SPDX-License-Identifier: GPL-2.0

//! The netif rings' barriers in the kernel: Xen's `virt_rmb`/`virt_wmb`/
//! `virt_mb`, which on an SMP kernel are the `smp_*` barriers.

use super::netif::Barriers;
use kernel::sync::barrier::{smp_mb, Full, Read, Write};

// `smp_*` barriers degrade to compiler barriers on a uniprocessor kernel, but
// the peer domain runs on other CPUs regardless: insist on SMP.
const _: () = assert!(cfg!(CONFIG_SMP), "netif rings need an SMP kernel");

/// [`Barriers`] for rings shared with another Xen domain.
pub(crate) struct XenBarriers;

impl Barriers for XenBarriers {
    #[inline]
    fn rmb() {
        smp_mb(Read);
    }
    #[inline]
    fn wmb() {
        smp_mb(Write);
    }
    #[inline]
    fn mb() {
        smp_mb(Full);
    }
}
