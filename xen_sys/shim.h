/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Thin C shim: static inline functions and macros of the kernel's Xen and
 * networking headers that Rust cannot call, as real functions. No driver
 * logic lives here: each function is one inline or macro, or sets fields
 * of a C structure.
 */
#ifndef XENNET_SHIM_H
#define XENNET_SHIM_H

#include <linux/types.h>
#include <linux/interrupt.h>

struct net_device;
struct net_device_ops;
struct napi_struct;
struct page;
struct sk_buff;
struct xenbus_device;
struct xenbus_driver;

/* xen/xen.h, xen/page.h */
bool xennet_shim_xen_domain(void);
bool xennet_shim_xen_initial_domain(void);
bool xennet_shim_xen_pv_domain(void);
unsigned long xennet_shim_xen_page_size(void);
unsigned long xennet_shim_page_to_gfn(struct page *page);
unsigned long xennet_shim_page_nth_gfn(struct page *page, unsigned long n);
unsigned long xennet_shim_virt_to_gfn(const void *addr);
/* The n-th page after page (a compound page's); get_page. */
struct page *xennet_shim_page_nth(struct page *page, unsigned long n);
void xennet_shim_get_page(struct page *page);

/* xen/grant_table.h: map/unmap operations on a page's kernel address */
struct gnttab_map_grant_ref;
struct gnttab_unmap_grant_ref;
void xennet_shim_gnttab_set_map_op(struct gnttab_map_grant_ref *op, struct page *page, bool readonly,
				   u32 gref, u16 domid);
void xennet_shim_gnttab_set_unmap_op(struct gnttab_unmap_grant_ref *op, struct page *page, bool readonly,
				     u32 handle);

/* The NIC queue (netback_mq/igbvf.rs): the PF of a VF, a frame sent on
 * another device, DMA mappings of a (foreign) page. */
struct pci_dev;
struct device;
int xennet_shim_pf_ifindex(struct pci_dev *vf);
int xennet_shim_xmit_on(struct sk_buff *skb, int ifindex);
bool xennet_shim_same_master(struct net_device *dev, int ifindex);
int xennet_shim_netdev_ifindex(struct net_device *dev);
/* Whether the device vif_ifindex and the PF pf_ifindex are ports of one
 * Linux bridge that filters no VLANs: XENNET_NIC_BRIDGE_*. */
#define XENNET_NIC_BRIDGE_OK 0
#define XENNET_NIC_BRIDGE_APART 1
#define XENNET_NIC_BRIDGE_NOT_LINUX_BRIDGE 2
#define XENNET_NIC_BRIDGE_VLAN_FILTERING 3
int xennet_shim_nic_bridge(int vif_ifindex, int pf_ifindex);
u64 xennet_shim_page_bus_addr(struct page *page);
u64 xennet_shim_dma_map_from_device(struct device *dev, struct page *page);
void xennet_shim_dma_unmap_from_device(struct device *dev, u64 addr);
bool xennet_shim_dma_coherent(struct device *dev);

/* xen/xenbus.h */
int xennet_shim_xenbus_register_frontend(struct xenbus_driver *drv);
int xennet_shim_xenbus_register_backend(struct xenbus_driver *drv);
void xennet_shim_xenbus_device_unregister(struct xenbus_device *dev);
void xennet_shim_xenbus_dev_fatal(struct xenbus_device *dev, int err, const char *msg);
void xennet_shim_set_drvdata(struct xenbus_device *dev, void *data);
void *xennet_shim_get_drvdata(struct xenbus_device *dev);
const char *xennet_shim_xenbus_nodename(struct xenbus_device *dev);
const char *xennet_shim_xenbus_otherend(struct xenbus_device *dev);
int xennet_shim_xenbus_otherend_id(struct xenbus_device *dev);
int xennet_shim_xenbus_state(struct xenbus_device *dev);

/* linux/gfp.h, linux/mm.h */
struct page *xennet_shim_alloc_zeroed_page(void);
void xennet_shim_free_page(struct page *page);
void *xennet_shim_page_address(struct page *page);

/* linux/netdevice.h, linux/etherdevice.h, linux/skbuff.h */
struct net_device *xennet_shim_alloc_etherdev(int sizeof_priv, unsigned int queues);
void *xennet_shim_netdev_priv(struct net_device *dev);
struct ethtool_ops;
void xennet_shim_netdev_init(struct net_device *dev, const struct net_device_ops *ops,
			     const struct ethtool_ops *ethtool_ops, struct xenbus_device *parent,
			     const u8 *mac);
const char *xennet_shim_netdev_name(struct net_device *dev);
void xennet_shim_napi_add(struct net_device *dev, struct napi_struct *napi,
			  int (*poll)(struct napi_struct *, int));
struct net_device *xennet_shim_napi_dev(struct napi_struct *napi);
void xennet_shim_napi_schedule(struct napi_struct *napi);
void xennet_shim_netif_stop_subqueue(struct net_device *dev, u16 queue);
void xennet_shim_netif_wake_subqueue(struct net_device *dev, u16 queue);
bool xennet_shim_netif_subqueue_stopped(struct net_device *dev, u16 queue);
void xennet_shim_netif_tx_start_all_queues(struct net_device *dev);
void xennet_shim_netif_tx_stop_all_queues(struct net_device *dev);
struct netdev_stat_ops;
/* The per-queue statistics the netdev netlink family reports (qstats). */
void xennet_shim_netdev_set_stat_ops(struct net_device *dev, const struct netdev_stat_ops *ops);
/* Queues the device was made with, and those in use (ethtool -l). */
unsigned int xennet_shim_num_queues(const struct net_device *dev);
unsigned int xennet_shim_real_num_queues(const struct net_device *dev);
int xennet_shim_set_real_num_queues(struct net_device *dev, unsigned int queues);
u16 xennet_shim_skb_get_queue_mapping(struct sk_buff *skb);
unsigned int xennet_shim_num_online_cpus(void);
unsigned int xennet_shim_skb_len(struct sk_buff *skb);
void xennet_shim_skb_put_data(struct sk_buff *skb, const void *data, unsigned int len);
void xennet_shim_skb_set_protocol(struct sk_buff *skb, __be16 protocol);
void xennet_shim_kfree_skb_any(struct sk_buff *skb);
void xennet_shim_skb_orphan(struct sk_buff *skb);
void xennet_shim_napi_gro_receive(struct napi_struct *napi, struct sk_buff *skb);
u8 xennet_shim_skb_ip_summed(struct sk_buff *skb);
void xennet_shim_skb_set_gso(struct sk_buff *skb, u16 gso_size, bool tcpv6);
struct page *xennet_shim_alloc_page_atomic(void);
void xennet_shim_skb_add_rx_frag(struct sk_buff *skb, int i, struct page *page, int off, int size);
void xennet_shim_copy_from_shared(void *dst, const void *src, size_t len);
void xennet_shim_netdev_set_max_mtu(struct net_device *dev, unsigned int mtu);
unsigned int xennet_shim_netdev_mtu(const struct net_device *dev);
void xennet_shim_skb_set_ip_summed(struct sk_buff *skb, u8 ip_summed);
void xennet_shim_skb_reset_network_header(struct sk_buff *skb);
unsigned int xennet_shim_skb_gso_size(struct sk_buff *skb);
bool xennet_shim_skb_gso_is_tcpv6(struct sk_buff *skb);
/* NETIF_F_* offloads a peer's features allow (all true: every one we offer). */
u64 xennet_shim_offload_mask(bool sg, bool tso4, bool tso6, bool csum4, bool csum6);
void xennet_shim_netdev_set_hw_features(struct net_device *dev, u64 features);
void xennet_shim_netdev_update_features(struct net_device *dev);

/* Backend (dom0) side: the vifD.N device and skb layout for grant copies. */
struct net_device *xennet_shim_alloc_vif_netdev(int sizeof_priv, const char *name, unsigned int queues);
void xennet_shim_vif_netdev_init(struct net_device *dev, const struct net_device_ops *ops,
				 const struct ethtool_ops *ethtool_ops, struct xenbus_device *parent,
				 const u8 *mac, unsigned int tx_queue_len);
void *xennet_shim_skb_data(struct sk_buff *skb);
unsigned int xennet_shim_skb_headlen(struct sk_buff *skb);
unsigned int xennet_shim_skb_nr_frags(struct sk_buff *skb);
struct page *xennet_shim_skb_frag_page(struct sk_buff *skb, unsigned int i);
unsigned int xennet_shim_skb_frag_off(struct sk_buff *skb, unsigned int i);
unsigned int xennet_shim_skb_frag_size(struct sk_buff *skb, unsigned int i);
void *xennet_shim_skb_put(struct sk_buff *skb, unsigned int len);
bool xennet_shim_skb_has_frag_list(struct sk_buff *skb);

/* Control ring event channel: bound in late-EOI mode to a threaded handler
 * (process context: the control ring's grant copies may sleep). */
int xennet_shim_bind_interdomain_threaded(struct xenbus_device *dev, unsigned int remote_port,
					  irq_handler_t thread_fn, const char *name,
					  void *dev_id);

/* net/flow_dissector.h: the addresses and ports a receive hash covers.
 * False for a packet that is neither IPv4 nor IPv6. */
bool xennet_shim_skb_flow(struct sk_buff *skb, bool *v6, u8 *src16, u8 *dst16, u8 *ports4,
			  bool *tcp);
void xennet_shim_skb_set_sw_hash(struct sk_buff *skb, u32 hash, bool l4);
void xennet_shim_skb_clear_hash(struct sk_buff *skb);
/* skb->sw_hash: the hash (and whether it covers L4) when software set one. */
bool xennet_shim_skb_sw_hash(struct sk_buff *skb, u32 *hash, bool *l4);
bool xennet_shim_skb_is_ipv6(struct sk_buff *skb);
/* A received packet's hash (skb_set_hash: L4 or L3). */
void xennet_shim_skb_set_rx_hash(struct sk_buff *skb, u32 hash, bool l4);
/* The stack's own queue choice (netdev_pick_tx), in range. */
u16 xennet_shim_netdev_pick_tx(struct net_device *dev, struct sk_buff *skb);

/* The device's multicast list (netdev_for_each_mc_addr): copies up to max
 * addresses (6 bytes each) and returns the list's length; with lock, under
 * netif_addr_lock_bh (the caller holds it otherwise). *all: the device wants
 * every multicast frame (IFF_ALLMULTI or IFF_PROMISC). */
unsigned int xennet_shim_netdev_mc_list(struct net_device *dev, u8 *out, unsigned int max, bool lock,
					bool *all);

/* linux/bottom_half.h */
void xennet_shim_local_bh_disable(void);
void xennet_shim_local_bh_enable(void);

/* linux/netdevice.h: more packets follow this one (ndo_start_xmit only). */
bool xennet_shim_netdev_xmit_more(void);

/* linux/timer.h, linux/ktime.h */
struct timer_list;
void xennet_shim_timer_setup(struct timer_list *t, void (*fn)(struct timer_list *));
void xennet_shim_timer_arm_us(struct timer_list *t, u64 delay_us);
void xennet_shim_timer_shutdown(struct timer_list *t);
u64 xennet_shim_now_us(void);
u64 xennet_shim_now_ns(void);
unsigned long xennet_shim_sizeof_timer_list(void);

/* linux/workqueue.h: a delayed work item calling `fn(owner)` every
 * `period_ms` in process context until stopped (opaque to Rust). */
void *xennet_shim_periodic_start(void (*fn)(void *), void *owner, unsigned int period_ms);
void xennet_shim_periodic_stop(void *p);
void xennet_shim_periodic_free(void *p);

/* XDP on the receive path (netfront_opt): net/xdp.h, linux/filter.h,
 * linux/netdevice.h. A frame runs in a page of ours at XDP_PACKET_HEADROOM;
 * an skb built on that page (XDP_PASS) needs skb_shared_info at its end. */
struct bpf_prog;
struct netdev_bpf;
struct xdp_buff;
struct xdp_frame;
struct xdp_rxq_info;
unsigned int xennet_shim_xdp_packet_headroom(void);
unsigned int xennet_shim_skb_shinfo_size(void);
/* ndo_bpf's request: XDP_SETUP_PROG (the only one served), its program
 * (a reference moved to the driver on success), an extack message (a
 * string with static lifetime). */
bool xennet_shim_bpf_is_setup_prog(struct netdev_bpf *bpf);
struct bpf_prog *xennet_shim_bpf_prog(struct netdev_bpf *bpf);
void xennet_shim_bpf_set_err(struct netdev_bpf *bpf, const char *msg);
/* NETDEV_XDP_ACT_BASIC | _REDIRECT | _NDO_XMIT, before registration. */
void xennet_shim_netdev_set_xdp_features(struct net_device *dev);
/* xdp_rxq_info_reg (no NAPI id, as the C netfront) with the order-0 page
 * memory model: frames are returned with put_page. */
int xennet_shim_xdp_rxq_reg(struct xdp_rxq_info *rxq, struct net_device *dev, u32 queue);
/* xdp_init_buff + xdp_prepare_buff: len bytes at off in page (one page). */
void xennet_shim_xdp_prepare(struct xdp_buff *xdp, struct xdp_rxq_info *rxq, struct page *page,
			     unsigned int off, unsigned int len);
/* bpf_prog_run_xdp (the caller is in a NAPI poll: an RCU reader). */
u32 xennet_shim_bpf_prog_run_xdp(const struct bpf_prog *prog, struct xdp_buff *xdp);
/* The frame as the program left it: offset in the page, length, metadata. */
void xennet_shim_xdp_bounds(const struct xdp_buff *xdp, unsigned int *off, unsigned int *len,
			    unsigned int *meta);
void xennet_shim_trace_xdp_exception(struct net_device *dev, const struct bpf_prog *prog, u32 act);
/* A frame redirected to us (ndo_xdp_xmit): its bytes. */
const void *xennet_shim_xdp_frame_data(struct xdp_frame *f, unsigned int *len);
/* napi_build_skb over the whole page; the frame at off, len bytes, meta
 * bytes of XDP metadata before it. NULL: the page is still the caller's. */
struct sk_buff *xennet_shim_build_skb(struct page *page, unsigned int off, unsigned int len,
				      unsigned int meta);
unsigned int xennet_shim_smp_processor_id(void);
unsigned long xennet_shim_sizeof_xdp_buff(void);
unsigned long xennet_shim_sizeof_xdp_rxq_info(void);

/* Sizes of the C structures our generated bindings lay out (checked at load). */
unsigned long xennet_shim_sizeof_xenbus_driver(void);
unsigned long xennet_shim_sizeof_net_device_ops(void);
unsigned long xennet_shim_sizeof_rtnl_link_stats64(void);
unsigned long xennet_shim_sizeof_xenbus_device(void);
unsigned long xennet_shim_sizeof_napi_struct(void);
unsigned long xennet_shim_sizeof_ethtool_ops(void);

#endif
