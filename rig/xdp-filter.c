// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only XDP program for the rig (built with clang -target bpf, attached
 * in a guest by the netback suite): drops IPv4 ICMP packets of exactly 628
 * bytes (`ping -s 600`) and passes everything else. It reads the frame at
 * the XDP headroom the backend left, so pings of that size vanish only if
 * the backend placed the data where its XDP extra says.
 */
#include "xdp-rig.h"

SEC("xdp") int xdp_drop_ping600(struct xdp_md *ctx)
{
	unsigned char *d = (unsigned char *)(unsigned long)ctx->data;
	unsigned char *end = (unsigned char *)(unsigned long)ctx->data_end;

	if (d + 14 + 20 > end)
		return XDP_PASS;
	if (d[12] != 0x08 || d[13] != 0x00 || d[14 + 9] != 1)
		return XDP_PASS;
	if (((d[14 + 2] << 8) | d[14 + 3]) == 628)
		return XDP_DROP;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
