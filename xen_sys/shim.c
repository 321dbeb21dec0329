// SPDX-License-Identifier: GPL-2.0
/*
 * Thin C shim, see shim.h. Each module compiles this file through its own
 * wrapper (netback_mq/shim.c, netfront_opt/shim.c): the functions are not
 * exported, so each module carries its private copy.
 */
#include <linux/etherdevice.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/netdevice.h>
#include <linux/skbuff.h>
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

int xennet_shim_xenbus_register_frontend(struct xenbus_driver *drv)
{
	return xenbus_register_frontend(drv);
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

struct net_device *xennet_shim_alloc_etherdev(int sizeof_priv)
{
	return alloc_etherdev(sizeof_priv);
}

void *xennet_shim_netdev_priv(struct net_device *dev)
{
	return netdev_priv(dev);
}

void xennet_shim_netdev_init(struct net_device *dev, const struct net_device_ops *ops,
			     struct xenbus_device *parent, const u8 *mac)
{
	dev->netdev_ops = ops;
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

void xennet_shim_napi_schedule(struct napi_struct *napi)
{
	napi_schedule(napi);
}

void xennet_shim_netif_stop_queue(struct net_device *dev)
{
	netif_stop_queue(dev);
}

void xennet_shim_netif_wake_queue(struct net_device *dev)
{
	netif_wake_queue(dev);
}

void xennet_shim_netif_start_queue(struct net_device *dev)
{
	netif_start_queue(dev);
}

bool xennet_shim_netif_queue_stopped(struct net_device *dev)
{
	return netif_queue_stopped(dev);
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
