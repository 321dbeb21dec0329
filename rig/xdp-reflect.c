// SPDX-License-Identifier: GPL-2.0
/*
 * Test-only XDP program for the rig (built twice with clang -target bpf,
 * attached in a guest by the netfront suite): answers IPv4 pings and UDP
 * to the echo port (7) itself, turning each request into its reply in
 * place (addresses swapped; for a ping, type 0 and the checksum adjusted;
 * for UDP, the ports swapped, which leaves its checksum as it was, so the
 * reply is valid only if the request's was) and sending it back out of the
 * device it came in on: with XDP_TX (xdp-reflect.o) or with XDP_REDIRECT to
 * the ingress device (xdp-redirect.o, built with -DREDIRECT: the device's
 * ndo_xdp_xmit). Everything else passes.
 *
 * It first moves the frame's start 192 bytes into the headroom and back
 * (bpf_xdp_adjust_head): a driver that leaves less headroom makes it drop
 * the ping, so replies come only if the headroom is there.
 */
#include "xdp-rig.h"

#define HEADROOM_NEEDED 192

SEC("xdp") int xdp_reflect_ping(struct xdp_md *ctx)
{
	unsigned char *d = (unsigned char *)(unsigned long)ctx->data;
	unsigned char *end = (unsigned char *)(unsigned long)ctx->data_end;
	unsigned char t[6];
	unsigned int c;
	int i, udp;

	/* Ethernet (14) + IPv4 without options (20) + ICMP type, code and
	 * checksum, or UDP's ports. */
	if (d + 38 > end)
		return XDP_PASS;
	if (d[12] != 0x08 || d[13] != 0x00 || d[14] != 0x45)
		return XDP_PASS;
	udp = d[14 + 9] == 17 && d[36] == 0 && d[37] == 7;
	if (!udp && (d[14 + 9] != 1 || d[34] != 8))
		return XDP_PASS;

	if (bpf_xdp_adjust_head(ctx, -HEADROOM_NEEDED))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, HEADROOM_NEEDED))
		return XDP_DROP;
	d = (unsigned char *)(unsigned long)ctx->data;
	end = (unsigned char *)(unsigned long)ctx->data_end;
	if (d + 38 > end)
		return XDP_DROP;

	for (i = 0; i < 6; i++) {
		t[i] = d[i];
		d[i] = d[6 + i];
		d[6 + i] = t[i];
	}
	for (i = 0; i < 4; i++) {
		t[i] = d[26 + i];
		d[26 + i] = d[30 + i];
		d[30 + i] = t[i];
	}
	if (udp) {
		for (i = 0; i < 2; i++) {
			t[i] = d[34 + i];
			d[34 + i] = d[36 + i];
			d[36 + i] = t[i];
		}
	} else {
		/* Echo request (8) to reply (0): the checksum's word drops by 0x0800. */
		d[34] = 0;
		c = ((d[36] << 8) | d[37]) + 0x0800;
		c = (c & 0xffff) + (c >> 16);
		d[36] = c >> 8;
		d[37] = c & 0xff;
	}
#ifdef REDIRECT
	return bpf_redirect(ctx->ingress_ifindex, 0);
#else
	return XDP_TX;
#endif
}

char _license[] SEC("license") = "GPL";
