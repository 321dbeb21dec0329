#!/bin/sh
# Module suite: our modules load and unload under Xen (netback_mq in dom0,
# netfront_opt in guest 1), report themselves, and leave dmesg clean.
. /rig/selftests/lib.sh
ktap_plan 8

dmesg -c >/dev/null
check "insmod netback_mq (dom0)" insmod /rig/modules/netback_mq.ko
check "netback_mq reports dom0" sh -c 'dmesg | grep "netback_mq: loaded in dom0 (PV), netif rings: tx 256 slots, rx 256 slots"'
check "rmmod netback_mq" sh -c 'rmmod netback_mq && dmesg | grep "netback_mq: unloaded"'
check "dom0 dmesg clean" sh -c '. /rig/selftests/lib.sh; dmesg | dmesg_clean'

guest-exec 1 'dmesg -c' >/dev/null
check "insmod netfront_opt (guest)" guest-exec 1 'insmod /rig/modules/netfront_opt.ko'
check "netfront_opt reports domU" guest-exec 1 \
	'dmesg | grep "netfront_opt: loaded in domU (PV), netif rings: tx 256 slots, rx 256 slots"'
check "rmmod netfront_opt (guest)" guest-exec 1 'rmmod netfront_opt && dmesg | grep "netfront_opt: unloaded"'
check "guest dmesg clean" sh -c '. /rig/selftests/lib.sh; guest-exec 1 dmesg | dmesg_clean'
ktap_exit
