/* Wrapper header for bindgen: the Xen public interfaces used by netif. */
#include <stdint.h>
#include <xen/io/netif.h>
#include <xen/grant_table.h>
