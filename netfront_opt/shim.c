// SPDX-License-Identifier: GPL-2.0
/* This module's private copy of the xen-sys C shim. */
#include "../xen_sys/shim.c"
