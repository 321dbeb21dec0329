// SPDX-License-Identifier: GPL-2.0
/*
 * Thin C shim, see shim.h. Each module compiles this file through its own
 * wrapper (netback_mq/shim.c, netfront_opt/shim.c): the functions are not
 * exported, so each module carries its private copy.
 */
#include <linux/etherdevice.h>
#include <linux/if_vlan.h>
#include <linux/if_bridge.h>
#include <linux/ethtool.h>
#include <linux/gfp.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/timer.h>
#include <linux/workqueue.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/skbuff.h>
#include <linux/interrupt.h>
#include <linux/dma-mapping.h>
#include <linux/dma-map-ops.h>
#include <linux/pci.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <net/flow_dissector.h>
#include <net/xdp.h>
#include <linux/bpf_trace.h>
#include <xen/events.h>
#include <xen/grant_table.h>
#include <xen/page.h>
#include <xen/xen.h>
#include <xen/xenbus.h>

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

unsigned long xennet_shim_page_to_gfn(struct page *page)
{
	return xen_page_to_gfn(page);
}

unsigned long xennet_shim_page_nth_gfn(struct page *page, unsigned long n)
{
	return xen_page_to_gfn(page + n);
}

struct page *xennet_shim_page_nth(struct page *page, unsigned long n)
{
	return page + n;
}

void xennet_shim_get_page(struct page *page)
{
	get_page(page);
}

unsigned long xennet_shim_virt_to_gfn(const void *addr)
{
	return virt_to_gfn(addr);
}

void xennet_shim_gnttab_set_map_op(struct gnttab_map_grant_ref *op, struct page *page, bool readonly,
				   u32 gref, u16 domid)
{
	gnttab_set_map_op(op, (unsigned long)page_address(page),
			  GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), gref, domid);
}

void xennet_shim_gnttab_set_unmap_op(struct gnttab_unmap_grant_ref *op, struct page *page, bool readonly,
				     u32 handle)
{
	gnttab_set_unmap_op(op, (unsigned long)page_address(page),
			    GNTMAP_host_map | (readonly ? GNTMAP_readonly : 0), handle);
}

int xennet_shim_xenbus_register_frontend(struct xenbus_driver *drv)
{
	return xenbus_register_frontend(drv);
}

int xennet_shim_xenbus_register_backend(struct xenbus_driver *drv)
{
	return xenbus_register_backend(drv);
}

void xennet_shim_xenbus_device_unregister(struct xenbus_device *dev)
{
	device_unregister(&dev->dev);
}

void xennet_shim_xenbus_dev_fatal(struct xenbus_device *dev, int err, const char *msg)
{
	xenbus_dev_fatal(dev, err, "%s", msg);
}

void xennet_shim_set_drvdata(struct xenbus_device *dev, void *data)
{
	dev_set_drvdata(&dev->dev, data);
}

void *xennet_shim_get_drvdata(struct xenbus_device *dev)
{
	return dev_get_drvdata(&dev->dev);
}

const char *xennet_shim_xenbus_nodename(struct xenbus_device *dev)
{
	return dev->nodename;
}

const char *xennet_shim_xenbus_otherend(struct xenbus_device *dev)
{
	return dev->otherend;
}

int xennet_shim_xenbus_otherend_id(struct xenbus_device *dev)
{
	return dev->otherend_id;
}

int xennet_shim_xenbus_state(struct xenbus_device *dev)
{
	return dev->state;
}

struct page *xennet_shim_alloc_zeroed_page(void)
{
	return alloc_page(GFP_KERNEL | __GFP_ZERO);
}

void xennet_shim_free_page(struct page *page)
{
	__free_page(page);
}

void *xennet_shim_page_address(struct page *page)
{
	return page_address(page);
}

struct net_device *xennet_shim_alloc_etherdev(int sizeof_priv, unsigned int queues)
{
	return alloc_etherdev_mq(sizeof_priv, queues);
}

void *xennet_shim_netdev_priv(struct net_device *dev)
{
	return netdev_priv(dev);
}

void xennet_shim_netdev_init(struct net_device *dev, const struct net_device_ops *ops,
			     const struct ethtool_ops *ethtool_ops, struct xenbus_device *parent,
			     const u8 *mac)
{
	dev->netdev_ops = ops;
	dev->ethtool_ops = ethtool_ops;
	SET_NETDEV_DEV(dev, &parent->dev);
	eth_hw_addr_set(dev, mac);
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = ETH_DATA_LEN;
}

const char *xennet_shim_netdev_name(struct net_device *dev)
{
	return dev->name;
}

void xennet_shim_napi_add(struct net_device *dev, struct napi_struct *napi,
			  int (*poll)(struct napi_struct *, int))
{
	netif_napi_add(dev, napi, poll);
}

struct net_device *xennet_shim_napi_dev(struct napi_struct *napi)
{
	return napi->dev;
}

/* From a task (xenbus, a watchdog) bottom halves are turned off around it,
 * so the poll's softirq runs when they come back, not left pending. */
void xennet_shim_napi_schedule(struct napi_struct *napi)
{
	if (in_task() && !irqs_disabled()) {
		local_bh_disable();
		napi_schedule(napi);
		local_bh_enable();
	} else {
		napi_schedule(napi);
	}
}

void xennet_shim_netif_stop_subqueue(struct net_device *dev, u16 queue)
{
	netif_stop_subqueue(dev, queue);
}

void xennet_shim_netif_wake_subqueue(struct net_device *dev, u16 queue)
{
	netif_wake_subqueue(dev, queue);
}

bool xennet_shim_netif_subqueue_stopped(struct net_device *dev, u16 queue)
{
	return __netif_subqueue_stopped(dev, queue);
}

void xennet_shim_netif_tx_start_all_queues(struct net_device *dev)
{
	netif_tx_start_all_queues(dev);
}

void xennet_shim_netif_tx_stop_all_queues(struct net_device *dev)
{
	netif_tx_stop_all_queues(dev);
}

void xennet_shim_netdev_set_stat_ops(struct net_device *dev, const struct netdev_stat_ops *ops)
{
	dev->stat_ops = ops;
}

unsigned int xennet_shim_num_queues(const struct net_device *dev)
{
	return dev->num_rx_queues;
}

unsigned int xennet_shim_real_num_queues(const struct net_device *dev)
{
	return dev->real_num_rx_queues;
}

int xennet_shim_set_real_num_queues(struct net_device *dev, unsigned int queues)
{
	int rc;

	rtnl_lock();
	rc = netif_set_real_num_tx_queues(dev, queues);
	if (!rc)
		rc = netif_set_real_num_rx_queues(dev, queues);
	rtnl_unlock();
	return rc;
}

u16 xennet_shim_skb_get_queue_mapping(struct sk_buff *skb)
{
	return skb_get_queue_mapping(skb);
}

unsigned int xennet_shim_num_online_cpus(void)
{
	return num_online_cpus();
}

unsigned int xennet_shim_skb_len(struct sk_buff *skb)
{
	return skb->len;
}

void xennet_shim_skb_put_data(struct sk_buff *skb, const void *data, unsigned int len)
{
	skb_put_data(skb, data, len);
}

void xennet_shim_skb_set_protocol(struct sk_buff *skb, __be16 protocol)
{
	skb->protocol = protocol;
}

void xennet_shim_kfree_skb_any(struct sk_buff *skb)
{
	dev_kfree_skb_any(skb);
}

void xennet_shim_skb_orphan(struct sk_buff *skb)
{
	skb_orphan(skb);
}

void xennet_shim_napi_gro_receive(struct napi_struct *napi, struct sk_buff *skb)
{
	napi_gro_receive(napi, skb);
}

unsigned long xennet_shim_sizeof_xenbus_driver(void)
{
	return sizeof(struct xenbus_driver);
}

unsigned long xennet_shim_sizeof_net_device_ops(void)
{
	return sizeof(struct net_device_ops);
}

unsigned long xennet_shim_sizeof_rtnl_link_stats64(void)
{
	return sizeof(struct rtnl_link_stats64);
}

unsigned long xennet_shim_sizeof_xenbus_device(void)
{
	return sizeof(struct xenbus_device);
}

unsigned long xennet_shim_sizeof_napi_struct(void)
{
	return sizeof(struct napi_struct);
}

u8 xennet_shim_skb_ip_summed(struct sk_buff *skb)
{
	return skb->ip_summed;
}

void xennet_shim_skb_set_ip_summed(struct sk_buff *skb, u8 ip_summed)
{
	skb->ip_summed = ip_summed;
}

void xennet_shim_skb_reset_network_header(struct sk_buff *skb)
{
	skb_reset_network_header(skb);
}

unsigned int xennet_shim_skb_gso_size(struct sk_buff *skb)
{
	return skb_is_gso(skb) ? skb_shinfo(skb)->gso_size : 0;
}

bool xennet_shim_skb_gso_is_tcpv6(struct sk_buff *skb)
{
	return skb_shinfo(skb)->gso_type & SKB_GSO_TCPV6;
}

/*
 * The NETIF_F_* offloads the peer's features allow: checksums per family,
 * scatter-gather, and TSO over scatter-gather. All true: every offload
 * either driver offers.
 */
u64 xennet_shim_offload_mask(bool sg, bool tso4, bool tso6, bool csum4, bool csum6)
{
	u64 f = 0;

	if (csum4)
		f |= NETIF_F_IP_CSUM;
	if (csum6)
		f |= NETIF_F_IPV6_CSUM;
	if (sg)
		f |= NETIF_F_SG;
	if (sg && tso4)
		f |= NETIF_F_TSO;
	if (sg && tso6)
		f |= NETIF_F_TSO6;
	return f;
}

void xennet_shim_netdev_set_hw_features(struct net_device *dev, u64 features)
{
	dev->hw_features = features;
	dev->features = features;
}

void xennet_shim_netdev_update_features(struct net_device *dev)
{
	rtnl_lock();
	netdev_update_features(dev);
	rtnl_unlock();
}

void xennet_shim_skb_set_gso(struct sk_buff *skb, u16 gso_size, bool tcpv6)
{
	skb_shinfo(skb)->gso_size = gso_size;
	/* The peer's headers must be checked and gso_segs computed. */
	skb_shinfo(skb)->gso_type = (tcpv6 ? SKB_GSO_TCPV6 : SKB_GSO_TCPV4) | SKB_GSO_DODGY;
	skb_shinfo(skb)->gso_segs = 0;
}

struct page *xennet_shim_alloc_page_atomic(void)
{
	return alloc_page(GFP_ATOMIC);
}

void xennet_shim_copy_from_shared(void *dst, const void *src, size_t len)
{
	memcpy(dst, src, len);
}

void xennet_shim_netdev_set_max_mtu(struct net_device *dev, unsigned int mtu)
{
	dev->max_mtu = mtu;
}

void xennet_shim_skb_add_rx_frag(struct sk_buff *skb, int i, struct page *page, int off, int size)
{
	skb_add_rx_frag(skb, i, page, off, size, PAGE_SIZE);
}

unsigned long xennet_shim_sizeof_ethtool_ops(void)
{
	return sizeof(struct ethtool_ops);
}

struct net_device *xennet_shim_alloc_vif_netdev(int sizeof_priv, const char *name, unsigned int queues)
{
	return alloc_netdev_mq(sizeof_priv, name, NET_NAME_UNKNOWN, ether_setup, queues);
}

void xennet_shim_vif_netdev_init(struct net_device *dev, const struct net_device_ops *ops,
				 const struct ethtool_ops *ethtool_ops, struct xenbus_device *parent,
				 const u8 *mac, unsigned int tx_queue_len)
{
	dev->netdev_ops = ops;
	dev->ethtool_ops = ethtool_ops;
	SET_NETDEV_DEV(dev, &parent->dev);
	dev->hw_features = xennet_shim_offload_mask(true, true, true, true, true);
	dev->features = dev->hw_features | NETIF_F_RXCSUM;
	dev->tx_queue_len = tx_queue_len;
	/* start_xmit may send through a NIC's PF (dev_queue_xmit): not from
	 * netpoll's interrupts-off transmit (XSA-424's class). */
	dev->priv_flags |= IFF_DISABLE_NETPOLL;
	dev->min_mtu = ETH_MIN_MTU;
	dev->max_mtu = ETH_MAX_MTU - VLAN_ETH_HLEN;
	eth_hw_addr_set(dev, mac);
}

void *xennet_shim_skb_data(struct sk_buff *skb)
{
	return skb->data;
}

unsigned int xennet_shim_skb_headlen(struct sk_buff *skb)
{
	return skb_headlen(skb);
}

unsigned int xennet_shim_skb_nr_frags(struct sk_buff *skb)
{
	return skb_shinfo(skb)->nr_frags;
}

struct page *xennet_shim_skb_frag_page(struct sk_buff *skb, unsigned int i)
{
	return skb_frag_page(&skb_shinfo(skb)->frags[i]);
}

unsigned int xennet_shim_skb_frag_off(struct sk_buff *skb, unsigned int i)
{
	return skb_frag_off(&skb_shinfo(skb)->frags[i]);
}

unsigned int xennet_shim_skb_frag_size(struct sk_buff *skb, unsigned int i)
{
	return skb_frag_size(&skb_shinfo(skb)->frags[i]);
}

void *xennet_shim_skb_put(struct sk_buff *skb, unsigned int len)
{
	return skb_put(skb, len);
}

bool xennet_shim_skb_has_frag_list(struct sk_buff *skb)
{
	return skb_has_frag_list(skb);
}

void xennet_shim_timer_setup(struct timer_list *t, void (*fn)(struct timer_list *))
{
	timer_setup(t, fn, 0);
}

/* Arms the timer `delay_us` from now, or keeps an earlier expiry. */
void xennet_shim_timer_arm_us(struct timer_list *t, u64 delay_us)
{
	timer_reduce(t, jiffies + usecs_to_jiffies(min_t(u64, delay_us, 3600ULL * USEC_PER_SEC)) + 1);
}

void xennet_shim_timer_shutdown(struct timer_list *t)
{
	timer_shutdown_sync(t);
}

u64 xennet_shim_now_us(void)
{
	return div_u64(ktime_get_ns(), NSEC_PER_USEC);
}

u64 xennet_shim_now_ns(void)
{
	return ktime_get_ns();
}

unsigned long xennet_shim_sizeof_timer_list(void)
{
	return sizeof(struct timer_list);
}

struct xennet_periodic {
	struct delayed_work dw;
	void (*fn)(void *);
	void *owner;
	unsigned long period;
	bool stopped;
};

static void xennet_periodic_run(struct work_struct *w)
{
	struct xennet_periodic *p = container_of(to_delayed_work(w), struct xennet_periodic, dw);

	p->fn(p->owner);
	if (!READ_ONCE(p->stopped))
		queue_delayed_work(system_long_wq, &p->dw, p->period);
}

/* On the long-running system queue: `fn` may sleep (a NIC's mailbox). */
void *xennet_shim_periodic_start(void (*fn)(void *), void *owner, unsigned int period_ms)
{
	struct xennet_periodic *p = kzalloc(sizeof(*p), GFP_KERNEL);

	if (!p)
		return NULL;
	INIT_DELAYED_WORK(&p->dw, xennet_periodic_run);
	p->fn = fn;
	p->owner = owner;
	p->period = msecs_to_jiffies(period_ms);
	queue_delayed_work(system_long_wq, &p->dw, p->period);
	return p;
}

/* Returns once `fn` no longer runs and never will again. */
void xennet_shim_periodic_stop(void *p)
{
	struct xennet_periodic *pw = p;

	WRITE_ONCE(pw->stopped, true);
	cancel_delayed_work_sync(&pw->dw);
}

void xennet_shim_periodic_free(void *p)
{
	xennet_shim_periodic_stop(p);
	kfree(p);
}

int xennet_shim_bind_interdomain_threaded(struct xenbus_device *dev, unsigned int remote_port,
					  irq_handler_t thread_fn, const char *name,
					  void *dev_id)
{
	int irq = bind_interdomain_evtchn_to_irq_lateeoi(dev, remote_port);
	int err;

	if (irq < 0)
		return irq;
	err = request_threaded_irq(irq, NULL, thread_fn, IRQF_ONESHOT, name, dev_id);
	if (err) {
		unbind_from_irqhandler(irq, dev_id);
		return err;
	}
	return irq;
}

bool xennet_shim_skb_flow(struct sk_buff *skb, bool *v6, u8 *src16, u8 *dst16, u8 *ports4,
			  bool *tcp)
{
	struct flow_keys k;

	memset(&k, 0, sizeof(k));
	if (!skb_flow_dissect_flow_keys(skb, &k, 0))
		return false;
	switch (k.control.addr_type) {
	case FLOW_DISSECTOR_KEY_IPV4_ADDRS:
		*v6 = false;
		memcpy(src16, &k.addrs.v4addrs.src, 4);
		memcpy(dst16, &k.addrs.v4addrs.dst, 4);
		break;
	case FLOW_DISSECTOR_KEY_IPV6_ADDRS:
		*v6 = true;
		memcpy(src16, &k.addrs.v6addrs.src, 16);
		memcpy(dst16, &k.addrs.v6addrs.dst, 16);
		break;
	default:
		return false;
	}
	*tcp = k.basic.ip_proto == IPPROTO_TCP && !(k.control.flags & FLOW_DIS_IS_FRAGMENT);
	memcpy(ports4, &k.ports.src, 2);
	memcpy(ports4 + 2, &k.ports.dst, 2);
	return true;
}

void xennet_shim_skb_set_sw_hash(struct sk_buff *skb, u32 hash, bool l4)
{
	__skb_set_sw_hash(skb, hash, l4);
}

void xennet_shim_skb_clear_hash(struct sk_buff *skb)
{
	skb_clear_hash(skb);
}

u16 xennet_shim_netdev_pick_tx(struct net_device *dev, struct sk_buff *skb)
{
	return netdev_pick_tx(dev, skb, NULL) % dev->real_num_tx_queues;
}

void xennet_shim_skb_set_rx_hash(struct sk_buff *skb, u32 hash, bool l4)
{
	skb_set_hash(skb, hash, l4 ? PKT_HASH_TYPE_L4 : PKT_HASH_TYPE_L3);
}

unsigned int xennet_shim_netdev_mc_list(struct net_device *dev, u8 *out, unsigned int max, bool lock,
					bool *all)
{
	struct netdev_hw_addr *ha;
	unsigned int n = 0;

	if (lock)
		netif_addr_lock_bh(dev);
	*all = dev->flags & (IFF_ALLMULTI | IFF_PROMISC);
	netdev_for_each_mc_addr(ha, dev) {
		if (n < max)
			memcpy(out + 6 * n, ha->addr, 6);
		n++;
	}
	if (lock)
		netif_addr_unlock_bh(dev);
	return n;
}

bool xennet_shim_skb_sw_hash(struct sk_buff *skb, u32 *hash, bool *l4)
{
	*hash = skb->hash;
	*l4 = skb->l4_hash;
	return skb->sw_hash;
}

bool xennet_shim_skb_is_ipv6(struct sk_buff *skb)
{
	return skb->protocol == htons(ETH_P_IPV6);
}

void xennet_shim_local_bh_disable(void)
{
	local_bh_disable();
}

void xennet_shim_local_bh_enable(void)
{
	local_bh_enable();
}

bool xennet_shim_netdev_xmit_more(void)
{
	return netdev_xmit_more();
}

/* The network device whose parent is VF's physical function, if any (its
 * ifindex; 0 when none). */
int xennet_shim_pf_ifindex(struct pci_dev *vf)
{
	struct pci_dev *pf = pci_physfn(vf);
	struct net_device *dev;
	int ifindex = 0;

	rcu_read_lock();
	for_each_netdev_rcu(&init_net, dev) {
		if (dev->dev.parent == &pf->dev) {
			ifindex = dev->ifindex;
			break;
		}
	}
	rcu_read_unlock();
	return ifindex;
}

/* Whether device `ifindex` has the same master (a bridge) as `dev`. */
bool xennet_shim_same_master(struct net_device *dev, int ifindex)
{
	struct net_device *other, *master;
	bool same;

	rcu_read_lock();
	other = dev_get_by_index_rcu(&init_net, ifindex);
	master = netdev_master_upper_dev_get_rcu(dev);
	same = other && master && netdev_master_upper_dev_get_rcu(other) == master;
	rcu_read_unlock();
	return same;
}

int xennet_shim_netdev_ifindex(struct net_device *dev)
{
	return dev->ifindex;
}

/* How the devices vif_ifindex and pf_ifindex are bridged (shim.h). Not
 * seen: STP port states (read under RTNL only), ebtables/nftables bridge
 * rules and tc filters, which the NIC path bypasses. */
int xennet_shim_nic_bridge(int vif_ifindex, int pf_ifindex)
{
	struct net_device *vif, *pf, *master;
	int rc = XENNET_NIC_BRIDGE_APART;

	rcu_read_lock();
	vif = dev_get_by_index_rcu(&init_net, vif_ifindex);
	pf = dev_get_by_index_rcu(&init_net, pf_ifindex);
	master = vif ? netdev_master_upper_dev_get_rcu(vif) : NULL;
	if (vif && pf && master && netdev_master_upper_dev_get_rcu(pf) == master) {
		if (!netif_is_bridge_master(master))
			rc = XENNET_NIC_BRIDGE_NOT_LINUX_BRIDGE;
		else if (br_vlan_enabled(master))
			rc = XENNET_NIC_BRIDGE_VLAN_FILTERING;
		else if (br_port_flag_is_set(vif, BR_ISOLATED) &&
			 br_port_flag_is_set(pf, BR_ISOLATED))
			/* isolated ports do not forward to each other */
			rc = XENNET_NIC_BRIDGE_APART;
		else
			rc = XENNET_NIC_BRIDGE_OK;
	}
	rcu_read_unlock();
	return rc;
}

/* Sends skb (Ethernet header at data) on the device with that ifindex, if
 * it exists and is up; frees it otherwise. Consumes skb. */
int xennet_shim_xmit_on(struct sk_buff *skb, int ifindex)
{
	struct net_device *dev;
	int rc;

	rcu_read_lock();
	dev = dev_get_by_index_rcu(&init_net, ifindex);
	if (!dev || !(dev->flags & IFF_UP)) {
		rcu_read_unlock();
		kfree_skb(skb);
		return -ENODEV;
	}
	skb->dev = dev;
	rc = dev_queue_xmit(skb);
	rcu_read_unlock();
	return rc;
}

/* The bus address of a page as a device sees it without an IOMMU or a
 * bounce: its machine frame (pfn_to_bfn, a static inline). */
u64 xennet_shim_page_bus_addr(struct page *page)
{
	return (u64)pfn_to_bfn(page_to_pfn(page)) << XEN_PAGE_SHIFT;
}

/* dma_map_page for a device writing the whole page; 0 on failure. */
u64 xennet_shim_dma_map_from_device(struct device *dev, struct page *page)
{
	dma_addr_t a = dma_map_page(dev, page, 0, PAGE_SIZE, DMA_FROM_DEVICE);

	return dma_mapping_error(dev, a) ? 0 : (u64)a;
}

void xennet_shim_dma_unmap_from_device(struct device *dev, u64 addr)
{
	dma_unmap_page(dev, (dma_addr_t)addr, PAGE_SIZE, DMA_FROM_DEVICE);
}

/* The device sees memory as the CPU does: no cache maintenance is due
 * between DMAs into a page that stays mapped (always so on x86). */
bool xennet_shim_dma_coherent(struct device *dev)
{
	return dev_is_dma_coherent(dev);
}

unsigned int xennet_shim_xdp_packet_headroom(void)
{
	return XDP_PACKET_HEADROOM;
}

unsigned int xennet_shim_skb_shinfo_size(void)
{
	return SKB_DATA_ALIGN(sizeof(struct skb_shared_info));
}

bool xennet_shim_bpf_is_setup_prog(struct netdev_bpf *bpf)
{
	return bpf->command == XDP_SETUP_PROG;
}

struct bpf_prog *xennet_shim_bpf_prog(struct netdev_bpf *bpf)
{
	return bpf->prog;
}

void xennet_shim_bpf_set_err(struct netdev_bpf *bpf, const char *msg)
{
	if (bpf->extack)
		bpf->extack->_msg = msg;
}

void xennet_shim_netdev_set_xdp_features(struct net_device *dev)
{
	dev->xdp_features = NETDEV_XDP_ACT_BASIC | NETDEV_XDP_ACT_REDIRECT | NETDEV_XDP_ACT_NDO_XMIT;
}

int xennet_shim_xdp_rxq_reg(struct xdp_rxq_info *rxq, struct net_device *dev, u32 queue)
{
	int err = xdp_rxq_info_reg(rxq, dev, queue, 0);

	if (err)
		return err;
	err = xdp_rxq_info_reg_mem_model(rxq, MEM_TYPE_PAGE_ORDER0, NULL);
	if (err)
		xdp_rxq_info_unreg(rxq);
	return err;
}

void xennet_shim_xdp_prepare(struct xdp_buff *xdp, struct xdp_rxq_info *rxq, struct page *page,
			     unsigned int off, unsigned int len)
{
	xdp_init_buff(xdp, PAGE_SIZE, rxq);
	xdp_prepare_buff(xdp, page_address(page), off, len, true);
}

u32 xennet_shim_bpf_prog_run_xdp(const struct bpf_prog *prog, struct xdp_buff *xdp)
{
	return bpf_prog_run_xdp(prog, xdp);
}

void xennet_shim_xdp_bounds(const struct xdp_buff *xdp, unsigned int *off, unsigned int *len,
			    unsigned int *meta)
{
	*off = xdp->data - xdp->data_hard_start;
	*len = xdp->data_end - xdp->data;
	*meta = xdp->data - xdp->data_meta;
}

void xennet_shim_trace_xdp_exception(struct net_device *dev, const struct bpf_prog *prog, u32 act)
{
	trace_xdp_exception(dev, prog, act);
}

const void *xennet_shim_xdp_frame_data(struct xdp_frame *f, unsigned int *len)
{
	*len = f->len;
	return f->data;
}

struct sk_buff *xennet_shim_build_skb(struct page *page, unsigned int off, unsigned int len,
				      unsigned int meta)
{
	struct sk_buff *skb = napi_build_skb(page_address(page), PAGE_SIZE);

	if (!skb)
		return NULL;
	skb_reserve(skb, off);
	__skb_put(skb, len);
	if (meta)
		skb_metadata_set(skb, meta);
	return skb;
}

unsigned int xennet_shim_smp_processor_id(void)
{
	return raw_smp_processor_id();
}

unsigned long xennet_shim_sizeof_xdp_buff(void)
{
	return sizeof(struct xdp_buff);
}

unsigned long xennet_shim_sizeof_xdp_rxq_info(void)
{
	return sizeof(struct xdp_rxq_info);
}

unsigned int xennet_shim_netdev_mtu(const struct net_device *dev)
{
	return READ_ONCE(dev->mtu);
}
