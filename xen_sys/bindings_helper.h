/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel headers the project's bindgen step runs over. The kernel's own
 * `bindings` crate has no Xen: this is our xen-sys layer's input.
 */
#include <linux/etherdevice.h>
#include <linux/filter.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
#include <net/netdev_queues.h>
#include <net/xdp.h>
#include <xen/events.h>
#include <xen/grant_table.h>
#include <xen/interface/grant_table.h>
#include <xen/interface/io/netif.h>
#include <xen/page.h>
#include <xen/xen.h>
#include <xen/xenbus.h>

#include "shim.h"
