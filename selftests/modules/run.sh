#!/bin/sh
# Module suite: our modules load and unload under Xen (netback_mq in dom0,
# netfront_opt in guest 1), report themselves, and leave dmesg clean.
. /rig/selftests/lib.sh
ktap_plan 10
RINGS="netif rings: tx 256 slots, rx 256 slots"

# Only kernel messages logged from here on are checked.
dom0_log_start=$(($(dmesg | wc -l) + 1))
dom0_new_log() { dmesg | tail -n +"$dom0_log_start"; }
guest_log_start=$(($(guest-exec 1 'dmesg | wc -l') + 1))
guest_new_log() { guest-exec 1 "dmesg | tail -n +$guest_log_start"; }
dom0_logged() { dom0_new_log | grep "$1"; }
guest_logged() { guest_new_log | grep "$1"; }
dom0_clean() { dom0_new_log | dmesg_clean; }
guest_clean() { guest_log_clean 1 "$guest_log_start"; }

check "insmod netback_mq (dom0)" insmod /rig/modules/netback_mq.ko
check "netback_mq reports dom0" dom0_logged "netback_mq: loaded in dom0 (PV), $RINGS"
check "rmmod netback_mq" rmmod netback_mq
check "netback_mq reports unload" dom0_logged "netback_mq: unloaded from dom0"
check "dom0 dmesg clean" dom0_clean

check "insmod netfront_opt (guest)" guest-exec 1 'insmod /rig/modules/netfront_opt.ko'
check "netfront_opt reports domU" guest_logged "netfront_opt: loaded in domU (PV), $RINGS"
check "rmmod netfront_opt (guest)" guest-exec 1 'rmmod netfront_opt'
check "netfront_opt reports unload" guest_logged "netfront_opt: unloaded from domU"
check "guest dmesg clean" guest_clean
ktap_exit
