/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the rig's test XDP programs need of the kernel's uapi (they build
 * with clang -target bpf alone, without the kernel's headers): the context
 * a program gets, its actions, and the helpers they call (enum
 * bpf_func_id's numbers).
 */
#ifndef XDP_RIG_H
#define XDP_RIG_H

struct xdp_md {
	unsigned int data;
	unsigned int data_end;
	unsigned int data_meta;
	unsigned int ingress_ifindex;
	unsigned int rx_queue_index;
	unsigned int egress_ifindex;
};

#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3

static long (*bpf_redirect)(unsigned int ifindex, unsigned long long flags) = (void *)23;
static long (*bpf_xdp_adjust_head)(struct xdp_md *ctx, int delta) = (void *)44;

#define SEC(name) __attribute__((section(name), used))

#endif
