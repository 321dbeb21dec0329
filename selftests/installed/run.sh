#!/bin/sh
# installed suite (scripts/rig --installed --test installed): our drivers
# as an administrator installs them (DKMS modules in updates/dkms, the
# modprobe.d file), loaded for the vif devices by their aliases through the
# hotplug helper, with no insmod anywhere: netback_mq in dom0 and
# netfront_opt in the guest, the C drivers kept away.
. /rig/selftests/lib.sh
ktap_plan 5
G=$GUEST1_IP

dom0_mod() {
	lsmod | grep '^netback_mq ' || { echo "netback_mq not loaded"; return 1; }
	! lsmod | grep -q '^xen_netback ' || { echo "xen_netback loaded too"; return 1; }
	path=$(modinfo -n netback_mq 2>/dev/null || find /lib/modules -name netback_mq.ko)
	echo "netback_mq from $path"
	case $path in */updates/dkms/*) ;; *) return 1 ;; esac
	[ -e /sys/bus/xen-backend/drivers/netback_mq/vif-1-0 ] || [ -n "$(ls /sys/bus/xen-backend/drivers/netback_mq | grep vif-)" ]
}
check "dom0: netback_mq (DKMS) loaded for the vif by its alias, xen-netback not" dom0_mod

guest_mod() {
	out=$(guest-exec 1 'lsmod; ls /sys/bus/xen/drivers/netfront_opt')
	echo "$out" | grep '^netfront_opt ' || { echo "netfront_opt not loaded in the guest"; return 1; }
	! echo "$out" | grep -q '^xen_netfront ' || { echo "xen_netfront loaded too"; return 1; }
	echo "$out" | grep -q 'vif-0'
}
check "guest: netfront_opt (DKMS) loaded for vif-0 by its alias, xen-netfront not" guest_mod

check "traffic both ways" sh -c "ping -c 3 -W 2 $G && guest-exec 1 'ping -c 3 -W 2 $DOM0_IP' >/dev/null"
check "iperf3 dom0 -> guest" iperf_mbits -c "$G" -t 3

# The way back: the C backend loads by hand when asked (the blacklist only
# keeps it from loading by alias).
way_back() {
	modprobe xen-netback || return 1
	lsmod | grep '^xen_netback ' && rmmod xen_netback
}
check "the C backend still loads by name (modprobe xen-netback)" way_back
ktap_exit
