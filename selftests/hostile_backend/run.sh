#!/bin/sh
# hostile_backend suite: a hostile backend against netfront_opt. Run with
# scripts/rig --backend rust --frontend rust --test hostile_backend: the rig
# also builds the test-only netback_hostile (netback_mq/hostile.rs). For each
# case guest1's vif is moved from netback_mq to netback_hostile (sysfs
# unbind/bind: the frontend sees its backend restart and reconnects), the
# backend misbehaves once, and the guest must log it, drop the packet or
# disable the device, and stay healthy; then the vif goes back to netback_mq
# and traffic must flow again.
. /rig/selftests/lib.sh
G=$GUEST1_IP
ktap_plan 12

domid1=$(xl domid guest1)
dev=vif-$domid1-0
be=/local/domain/0/backend/vif/$domid1/0
vif=vif$domid1.0
guest_log_start=$(($(guest-exec 1 'dmesg | wc -l') + 1))

# move_vif FROM TO: rebinds guest1's vif; plays the hotplug script's part
# (the toolstack runs it only when a vif is created).
move_vif() {
	echo "$dev" >/sys/bus/xen-backend/drivers/$1/unbind || return 1
	echo "$dev" >/sys/bus/xen-backend/drivers/$2/bind || return 1
	wait_for 10 ip link show "$vif" || { echo "$vif not created"; return 1; }
	ip link set "$vif" master xenbr0 && ip link set "$vif" up || return 1
	xenstore-write "$be/hotplug-status" connected
	wait_for 30 sh -c "[ \"\$(xenstore-read $be/state)\" = 4 ]" || { echo "backend state $(xenstore-read $be/state)"; return 1; }
}

# backend_case MODE PATTERN: PATTERN must appear in the guest's log.
backend_case() {
	gmark=$(($(guest-exec 1 'dmesg | wc -l') + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=$1 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || echo "(no ping before the injection)"
	ping -q -c 20 -i 0.1 -W 1 "$G" >/dev/null 2>&1
	wait_for 15 sh -c "guest-exec 1 'dmesg | tail -n +$gmark' | grep -q '$2'"
	rc=$?
	guest-exec 1 "dmesg | tail -n +$gmark" | grep -m 3 -E "$2|netfront_opt" | cut -c1-160
	[ $rc = 0 ] || echo "guest did not log '$2'"
	guest-exec 1 true || { echo "guest no longer answers"; return 1; }
	move_vif netback_hostile netback_mq || return 1
	rmmod netback_hostile || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic after moving back to netback_mq"; return 1; }
	echo "back on netback_mq, reachable"
	return $rc
}

check "backend restart: frontend reconnects (vif moved to netback_hostile and back)" backend_case 0 "backend restarted; reconnecting"
check "RX response with a foreign id: device disabled" backend_case 1 "rx response id does not match its slot"
check "RX response producer 1000 ahead: device disabled" backend_case 2 "more responses than outstanding requests\|producer index"
check "19-slot RX chain: packet dropped" backend_case 3 "rx response chain too long"
check "RX response crossing its page: packet dropped" backend_case 4 "rx response crosses page boundary"
# Error statuses (XSA-405 class: the C netfront once freed an skb still in
# use on this error path): -1 drops the packet, its buffers are posted
# again and the device goes on; a status no backend may send (-3) disables
# the device.
# (The guest logs drops at the 1st, 2nd, 4th... only: its error counter says.)
rx_error_case() {
	before=$(guest-exec 1 "cat /sys/class/net/eth0/statistics/rx_errors")
	mark=$(($(dmesg | wc -l) + 1))
	backend_case 9 "grant reuse: .* registered" || return 1
	dmesg | tail -n +"$mark" | grep -q "hostile: RX response with the error status" || { echo "no error status was sent"; return 1; }
	after=$(guest-exec 1 "cat /sys/class/net/eth0/statistics/rx_errors")
	echo "guest1's receive errors: $before before, $after after"
	[ "$after" -gt "$before" ]
}
check "RX response with the error status (XSA-405): packet dropped" rx_error_case
check "RX response with status -3: device disabled" backend_case 10 "rx response with bad status"
# Late EOI on the guest side: 20000 notifications must cost the guest far
# fewer interrupts (counted between the reconnection and the end of the
# traffic, on the queue's channels).
guest_irqs() { guest-exec 1 "awk '/netfront_opt-q/ { for (i = 2; i <= NF; i++) if (\$i ~ /^[0-9]+\$/) s += \$i } END { print s + 0 }' /proc/interrupts"; }
storm() {
	insmod /rig/modules/hostile/netback_hostile.ko hostile=5 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || return 1
	before=$(guest_irqs)
	ping -q -c 20 -i 0.1 -W 1 "$G" >/dev/null 2>&1
	dmesg | grep -q "hostile: 20000 notifications" || { echo "no storm happened"; return 1; }
	after=$(guest_irqs)
	echo "guest interrupts during the storm: $((after - before))"
	ping -c 3 -W 2 "$G" >/dev/null || { echo "guest1 lost its link"; return 1; }
	move_vif netback_hostile netback_mq && rmmod netback_hostile || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || return 1
	[ $((after - before)) -gt 0 ] && [ $((after - before)) -lt 10000 ]
}
check "event storm (XSA-391): coalesced by late EOI" storm
check "TX response with an unknown id: device disabled" backend_case 6 "response with unknown id\|response for id not outstanding"

# Grant reuse: the guest registers its buffer pages with the hostile
# backend, then is unbound while connected, which takes them back (DEL)
# before its pages go. A backend that never answers, or answers SUCCESS
# without unmapping anything, is logged; the guest neither hangs nor frees a
# page the backend still maps (the grant layer keeps it until the backend
# lets go); it binds again and carries traffic.
del_case() { # MODE PATTERN
	gmark=$(($(guest-exec 1 'dmesg | wc -l') + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=$1 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic with netback_hostile"; return 1; }
	held=$(guest-exec 1 "ethtool -S eth0 | awk '/queue_[0-9]+_static_grants:/ { s += \$2 } END { print s + 0 }'")
	echo "pages registered with netback_hostile: $held"
	[ "$held" -ge 512 ] || return 1
	GUEST_EXEC_TIMEOUT=40 guest-exec 1 "echo vif-0 > /sys/bus/xen/drivers/netfront_opt/unbind" || { echo "unbind failed"; return 1; }
	dmesg | grep -q "hostile: DEL_GREF_MAPPING" || { echo "the backend saw no DEL"; return 1; }
	glog=$(guest-exec 1 "dmesg | tail -n +$gmark")
	echo "$glog" | grep -E "$2|static grants|still in use" | head -4 | cut -c1-160
	echo "$glog" | grep -q "$2" || { echo "guest did not log '$2'"; return 1; }
	guest-exec 1 "echo vif-0 > /sys/bus/xen/drivers/netfront_opt/bind" || { echo "bind failed"; return 1; }
	wait_for 20 guest-exec 1 "test -e /sys/class/net/eth0 && ip addr replace $G/24 dev eth0 && ip link set eth0 up" || return 1
	move_vif netback_hostile netback_mq || return 1
	rmmod netback_hostile || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic after moving back to netback_mq"; return 1; }
	echo "rebound, back on netback_mq, reachable"
}
check "static grants: DEL never answered: logged, pages left to the grant layer" del_case 7 "static grants not taken back"
check "static grants: DEL answered SUCCESS without unmapping: detected and logged" del_case 8 "answer to DEL contradicts itself"

guest_clean() { guest-exec 1 "dmesg | tail -n +$guest_log_start" | dmesg_clean; }
check "guest dmesg clean" guest_clean
ktap_exit
