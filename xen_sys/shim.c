// SPDX-License-Identifier: GPL-2.0
/*
 * Thin C shim, see shim.h. Each module compiles this file through its own
 * wrapper (netback_mq/shim.c, netfront_opt/shim.c): the functions are not
 * exported, so each module carries its private copy.
 */
#include <xen/page.h>
#include <xen/xen.h>

#include "shim.h"

bool xennet_shim_xen_domain(void)
{
	return xen_domain();
}

bool xennet_shim_xen_initial_domain(void)
{
	return xen_initial_domain();
}

bool xennet_shim_xen_pv_domain(void)
{
	return xen_pv_domain();
}

unsigned long xennet_shim_xen_page_size(void)
{
	return XEN_PAGE_SIZE;
}
