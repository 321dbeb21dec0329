/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin C shim: static inline functions and macros of the kernel's Xen and
 * networking headers that Rust cannot call, as real functions. No driver
 * logic lives here.
 */
#ifndef XENNET_SHIM_H
#define XENNET_SHIM_H

#include <linux/types.h>

bool xennet_shim_xen_domain(void);
bool xennet_shim_xen_initial_domain(void);
bool xennet_shim_xen_pv_domain(void);
unsigned long xennet_shim_xen_page_size(void);

#endif
