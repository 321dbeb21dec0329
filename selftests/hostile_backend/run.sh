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
ktap_plan 23

domid1=$(xl domid guest1)
dev=vif-$domid1-0
be=/local/domain/0/backend/vif/$domid1/0
vif=vif$domid1.0
guest_log_start=$(($(guest-exec 1 'dmesg | wc -l') + 1))

# move_vif FROM TO: rebinds guest1's vif; plays the hotplug script's part
# (the toolstack runs it only when a vif is created).
move_vif() {
	echo "$dev" >/sys/bus/xen-backend/drivers/$1/unbind || return 1
	bind_vif "$2"
}
bind_vif() { # DRIVER
	echo "$dev" >/sys/bus/xen-backend/drivers/$1/bind || return 1
	wait_for 10 ip link show "$vif" || { echo "$vif not created"; return 1; }
	ip link set "$vif" master xenbr0 && ip link set "$vif" up || return 1
	xenstore-write "$be/hotplug-status" connected
	wait_for 30 sh -c "[ \"\$(xenstore-read $be/state)\" = 4 ]" || { echo "backend state $(xenstore-read $be/state)"; return 1; }
}

# back_to_netback_mq: guest1's vif back on netback_mq, netback_hostile
# unloaded, traffic flowing again.
back_to_netback_mq() {
	move_vif netback_hostile netback_mq || return 1
	rmmod netback_hostile || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic after moving back to netback_mq"; return 1; }
	echo "back on netback_mq, reachable"
}

# backend_case MODE PATTERN [disabled]: PATTERN must appear in the guest's
# log; with "disabled", the guest must also have disabled the device: said
# so in its log, and its carrier off (until the backend restarts).
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
	if [ "${3:-}" = disabled ] && [ $rc = 0 ]; then
		carrier=$(guest-exec 1 "cat /sys/class/net/eth0/carrier")
		echo "guest1's carrier after the fault: $carrier"
		guest-exec 1 "dmesg | tail -n +$gmark" | grep -q "disabling the device" || { echo "the guest did not say it disabled the device"; rc=1; }
		[ "$carrier" = 0 ] || { echo "the device was not disabled: carrier still on"; rc=1; }
	fi
	back_to_netback_mq || return 1
	return $rc
}

# Every case restarts the backend twice (the vif moves to netback_hostile
# and back): this one, with a backend that does not misbehave, is extended.
check_extended "backend restart: frontend reconnects (vif moved to netback_hostile and back)" backend_case 0 "backend restarted; reconnecting"
check_core "RX response with a foreign id: device disabled" backend_case 1 "rx response id does not match its slot" disabled
check_extended "RX response producer 1000 ahead: device disabled" backend_case 2 "more responses than outstanding requests\|producer index" disabled
check_core "19-slot RX chain: packet dropped" backend_case 3 "rx response chain too long"
check_extended "RX response crossing its page: packet dropped" backend_case 4 "rx response crosses page boundary"
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
check_extended "RX response with the error status (XSA-405): packet dropped" rx_error_case
check_extended "RX response with status -3: device disabled" backend_case 10 "rx response with bad status" disabled
# XSA-155 class (double fetch): netback_hostile rewrites the last response
# of each of 30 packets 50 000 times after publishing it, alternately one
# crossing its page with more data to follow and the original. netfront_opt
# copies each response once: each packet is delivered, dropped or the
# device disabled (and logged); the guest stays up and its log clean (the
# last check); back on netback_mq it carries traffic.
rewrite_rx() {
	mark=$(($(dmesg | wc -l) + 1))
	gmark=$(($(guest-exec 1 'dmesg | wc -l') + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=13 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || echo "(no ping before the rewrites)"
	# Every packet dom0 sends guest1 is accounted for by the guest:
	# received, or dropped with an error counted (netfront_opt's own
	# counters), whichever version of the response it read. The bad version
	# says more data follows, so the packet after it is taken into the same
	# dropped chain: one error for two packets at most. A frame in flight at
	# a read (a neighbour probe) may count on one side only: 2 at most. A
	# device disabled instead says so in its log.
	g_rx() { guest-exec 1 "cat /sys/class/net/eth0/statistics/rx_packets; ethtool -S eth0" | awk 'NR == 1 { p = $1 } /rx_queue_[0-9]+_(errors|dropped):/ { e += $2 } END { print p + 0, e + 0 }'; }
	v_tx() { cat "/sys/class/net/$vif/statistics/tx_packets"; }
	set -- $(g_rx); got0=$1 bad0=$2 sent0=$(v_tx)
	ping -q -c 60 -i 0.05 -W 1 "$G" >/dev/null 2>&1
	dmesg | tail -n +"$mark" | grep -q "hostile: rewriting published RX responses" || { echo "no response was rewritten"; return 1; }
	guest-exec 1 true || { echo "guest no longer answers"; return 1; }
	sleep 1
	sent=$(($(v_tx) - sent0))
	set -- $(g_rx); got=$(($1 - got0)) bad=$(($2 - bad0))
	echo "dom0 sent guest1 $sent packet(s) meanwhile: received $got, counted as errors or drops $bad; its log:"
	guest-exec 1 "dmesg | tail -n +$gmark" | grep -m 3 "netfront_opt" | cut -c1-160
	if guest-exec 1 "dmesg | tail -n +$gmark" | grep -q "disabling the device"; then
		echo "the device was disabled on a bad response, logged"
	else
		[ "$sent" -ge 60 ] || { echo "fewer packets sent than pings"; return 1; }
		[ $((got + 2 * bad + 2)) -ge "$sent" ] || { echo "$((sent - got - 2 * bad)) packet(s) neither received nor counted"; return 1; }
		[ $((got + bad)) -le $((sent + 2)) ] || { echo "the guest counted $((got + bad - sent)) packet(s) more than dom0 sent"; return 1; }
	fi
	back_to_netback_mq || return 1
}
check_extended "published RX responses rewritten while the guest reads them (XSA-155): copied once, guest clean" rewrite_rx
# The two above again with an XDP program in the guest (XSA-405 hit the C
# netfront's XDP path): netfront_opt runs it on its own copy of packets it
# accepted, so neither case reaches the program as anything but a frame.
xdp_attached() {
	xdp_passed() { guest-exec 1 "ethtool -S eth0 | awk '/_xdp_pass:/ { s += \$2 } END { print s + 0 }'"; }
	guest-exec 1 "/usr/bin/ip link set dev eth0 xdpdrv obj /rig/xdp-filter.o sec xdp" || return 1
	p0=$(xdp_passed) rc=0
	rx_error_case || rc=1
	rewrite_rx || rc=1
	p=$(($(xdp_passed) - p0))
	echo "frames the program passed meanwhile: $p"
	guest-exec 1 "/usr/bin/ip link set dev eth0 xdp off" || rc=1
	[ "$p" -gt 0 ] || rc=1
	return $rc
}
check_extended "the XSA-405 and XSA-155 cases again with an XDP program in the guest" xdp_attached
# Handshake faults. Bad backend keys: the guest clamps a queue count of
# 4294967295 to what it has, reads keys that are not numbers as absent
# (the feature off), logs what it connected with, and carries traffic.
# handshake_case MODE PATTERN: PATTERN in the guest's log.
handshake_case() {
	gmark=$(($(guest-exec 1 'dmesg | wc -l') + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=$1 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 15 sh -c "guest-exec 1 'dmesg | tail -n +$gmark' | grep -q '$2'" || echo "guest did not log '$2'"
	glog=$(guest-exec 1 "dmesg | tail -n +$gmark")
	echo "$glog" | grep -m 2 "$2" | cut -c1-160
	echo "$glog" | grep -q "$2" || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic with netback_hostile"; return 1; }
	back_to_netback_mq || return 1
}
# (The guest's queue count is at most its vCPUs.)
huge_queues() {
	handshake_case 14 "connected to backend domain 0 .*queue(s)" || return 1
	# glog: the guest's log while on netback_hostile (handshake_case)
	n=$(echo "$glog" | grep "connected to backend domain 0" | tail -n 1 | sed -n 's/.*: \([0-9]*\) queue(s).*/\1/p')
	cpus=$(guest-exec 1 'grep -c ^processor /proc/cpuinfo')
	echo "guest1 connected with ${n:-?} queue(s) for $cpus vCPU(s)"
	[ -n "$n" ] && [ "$n" -ge 1 ] && [ "$n" -le "$cpus" ]
}
check_extended "multi-queue-max-queues = 4294967295: clamped, connected, traffic flows" huge_queues
check_extended "every feature key written as abc: read as off, connected, traffic flows" handshake_case 15 "queue(s), shared event channels"
# A backend that never leaves InitWait: the guest publishes its rings and
# waits without carrier, stays responsive, and connects once the vif moves
# back to netback_mq.
init_wait_case() {
	insmod /rig/modules/hostile/netback_hostile.ko hostile=16 || return 1
	echo "$dev" >/sys/bus/xen-backend/drivers/netback_mq/unbind || return 1
	echo "$dev" >/sys/bus/xen-backend/drivers/netback_hostile/bind || return 1
	wait_for 10 ip link show "$vif" || { echo "$vif not created"; return 1; }
	ip link set "$vif" master xenbr0 && ip link set "$vif" up || return 1
	xenstore-write "$be/hotplug-status" connected
	wait_for 15 sh -c "dmesg | grep -q 'hostile: frontend state .* ignored, staying in InitWait'" || { echo "the frontend never moved"; return 1; }
	sleep 3
	echo "backend state $(xenstore-read "$be/state"), frontend state $(xenstore-read "/local/domain/$domid1/device/vif/0/state")"
	rc=0
	[ "$(xenstore-read "$be/state")" = 2 ] || rc=1
	carrier=$(guest-exec 1 'cat /sys/class/net/eth0/carrier') || { echo "guest no longer answers"; rc=1; }
	echo "guest1's eth0 carrier: $carrier"
	[ "$carrier" = 0 ] || rc=1
	back_to_netback_mq || return 1
	return $rc
}
check_extended "backend stays in InitWait: guest waits without carrier, then connects to netback_mq" init_wait_case
# XSA-403 class: pages granted to the backend must not carry the guest's
# old data. While guest1's vif is between backends (its old buffers freed),
# the guest fills its free memory with 'Z' (a 32 MB file, then removed);
# netback_hostile scans every page the guest then registers as a static
# grant: none may hold 64 bytes of 'Z'. As a control, dom0 then sends 400
# pings carrying 'Z': the scan after 300 packets must find the marker in
# the pages that carried them.
stale_case() {
	mark=$(($(dmesg | wc -l) + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=17 || return 1
	echo "$dev" >/sys/bus/xen-backend/drivers/netback_mq/unbind || return 1
	wait_for 10 sh -c "[ \"\$(guest-exec 1 'cat /sys/class/net/eth0/carrier')\" = 0 ]" || echo "(guest1 still has carrier)"
	# (as much as the guest's root file system takes, up to 32 MB)
	filled=$(guest-exec 1 "head -c 33554432 /dev/zero | tr '\\000' Z > /stale-fill 2>/dev/null; wc -c < /stale-fill; rm -f /stale-fill")
	echo "guest1 filled $((filled / 1048576)) MB of its free memory with 'Z' and freed it"
	[ "${filled:-0}" -ge 8388608 ] || { echo "too little"; bind_vif netback_mq; rmmod netback_hostile; return 1; }
	bind_vif netback_hostile || { rmmod netback_hostile; return 1; }
	scanned() { dmesg | tail -n +"$mark" | sed -n "s/.*: \([0-9]*\) static grant pages scanned $1, \([0-9]*\) hold the marker.*/\1 \2/p"; }
	wait_for 20 sh -c "dmesg | tail -n +$mark | grep -q 'scanned when registered'" || { echo "no scan when registered"; return 1; }
	set -- $(scanned "when registered" | awk '{ p += $1; m += $2 } END { print p + 0, m + 0 }')
	echo "pages registered and scanned: $1; holding the guest's old 'Z' bytes: $2"
	[ "$1" -ge 256 ] && [ "$2" = 0 ] || return 1
	ping -q -c 400 -i 0.01 -s 1000 -p 5a -W 1 "$G" >/dev/null 2>&1
	wait_for 10 sh -c "dmesg | tail -n +$mark | grep -q 'scanned after 300 packets'" || { echo "no control scan"; return 1; }
	set -- $(scanned "after 300 packets")
	echo "control, after 300 pings carrying 'Z': $2 of $1 pages hold it"
	[ "${2:-0}" -gt 0 ] || return 1
	back_to_netback_mq || return 1
}
check_extended "granted pages carry no old guest data (XSA-403): none of the registered pages holds the marker" stale_case
# Grant reuse with a backend that writes into the guest's static-grant
# pages after the guest consumed what they carried (netback_hostile mode
# 18 fills them with 'Q'). netfront_opt copies every packet out of its
# buffers before the stack sees it (whether the backend is trusted or
# not), so data waiting in a socket must not change: guest1 fetches 512 KB
# of 'Z' from dom0's web server into a pipe whose reader sleeps 8 s first,
# so most of it waits in the pipe and the socket meanwhile.
late_write_case() {
	mkdir -p /run/www && head -c 524288 /dev/zero | tr '\000' Z > /run/www/z || return 1
	pidof httpd >/dev/null || httpd -p 8088 -h /run/www || return 1
	insmod /rig/modules/hostile/netback_hostile.ko hostile=18 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic with netback_hostile"; return 1; }
	mark=$(($(dmesg | wc -l) + 1))
	guest-exec 1 "rm -f /late.out /late.done; setsid sh -c 'wget -q -O - http://$DOM0_IP:8088/z | (sleep 8; cat > /late.out; touch /late.done)' </dev/null >/dev/null 2>&1 &" || return 1
	wait_for 40 guest-exec 1 'test -e /late.done'
	got=$(guest-exec 1 'wc -c < /late.out'); changed=$(guest-exec 1 "tr -d Z < /late.out | wc -c")
	written=$(dmesg | tail -n +"$mark" | grep -c "hostile: consumed packet .* overwritten")
	echo "packets of the transfer the backend overwrote after the guest consumed them: $written"
	echo "guest1's reader got $got bytes, $changed of them not 'Z'"
	move_vif netback_hostile netback_mq || return 1
	rmmod netback_hostile || return 1
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic after moving back to netback_mq"; return 1; }
	[ "$written" -ge 1 ] && [ "$got" = 524288 ] && [ "$changed" = 0 ]
}
check_extended "backend writes into static-grant pages after the guest consumed them: received data unchanged" late_write_case
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
check_extended "event storm (XSA-391): coalesced by late EOI" storm
check_extended "TX response with an unknown id: device disabled" backend_case 6 "response with unknown id\|response for id not outstanding" disabled
check_extended "TX response with status -7: device disabled" backend_case 11 "tx response with bad status" disabled
# The unknown-id case again with zero-copy transmit (tx_zerocopy=1, no
# static grants) and TCP from the guest in flight: packets lent when the
# device is disabled are released when it reconnects to netback_mq (the
# grants end, the skbs go); lending then carries 1 MiB intact.
lent_in_flight() {
	local l0 l1 rc=0
	reload_netfront tx_zerocopy=1 static_grants=0 || return 1
	l0=$(lent_packets)
	iperf3 -c "$G" -t 30 -R >/dev/null 2>&1 &
	sleep 3
	backend_case 6 "response with unknown id\|response for id not outstanding" disabled || rc=1
	kill $! 2>/dev/null; wait $! 2>/dev/null
	l1=$(lent_packets)
	echo "packets lent before and around the fault: $((l1 - l0))"
	[ $((l1 - l0)) -gt 0 ] || rc=1
	tcp_intact 1024 || rc=1
	echo "packets lent in all: $(($(lent_packets) - l0))"
	reload_netfront || rc=1
	return $rc
}
check_extended "TX response with an unknown id while packets are lent (tx_zerocopy=1): device disabled, lent packets released on reconnect" lent_in_flight
# The RX rsp_prod moved back below what the guest consumed (the backend
# waits until the guest went idle having consumed everything).
check_extended "RX response producer moved back by one: device disabled" backend_case 12 "producer index moved backwards" disabled

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
check_core "static grants: DEL never answered: logged, pages left to the grant layer" del_case 7 "static grants not taken back"
check_extended "static grants: DEL answered SUCCESS without unmapping: detected and logged" del_case 8 "answer to DEL contradicts itself"
# An ADD carried out (the backend maps every page) but answered with a
# status no backend may send: the guest takes the answer as malformed
# (EIO), logs it, registers nothing and
# carries traffic by grant copy; the pages the backend still maps are
# unmapped at its disconnect (the grant layer holds them until then).
add_wrong_status() {
	gmark=$(($(guest-exec 1 'dmesg | wc -l') + 1))
	insmod /rig/modules/hostile/netback_hostile.ko hostile=19 || return 1
	move_vif netback_mq netback_hostile || { rmmod netback_hostile; return 1; }
	wait_for 20 ping -c 1 -W 1 "$G" || { echo "no traffic with netback_hostile"; return 1; }
	rc=0
	# (a status outside the spec is a malformed answer: EIO)
	wait_for 10 sh -c "guest-exec 1 'dmesg | tail -n +$gmark' | grep -q 'static grants not registered (EIO)'" || { echo "the guest did not log the refusal"; rc=1; }
	guest-exec 1 "dmesg | tail -n +$gmark" | grep -m 2 "control ring:\|static grants" | cut -c1-160
	held=$(guest-exec 1 "ethtool -S eth0 | awk '/queue_[0-9]+_static_grants:/ { s += \$2 } END { print s + 0 }'")
	mapped=$(ethtool -S "$vif" | awk '/queue_[0-9]+_static_grants:/ { s += $2 } END { print s + 0 }')
	mbits=$(iperf_mbits -c "$G" -t 2) || rc=1
	echo "guest: $held pages registered as it sees it; the backend maps $mapped; guest receive by grant copy: $mbits"
	[ "$held" = 0 ] && [ "$mapped" -gt 0 ] || rc=1
	back_to_netback_mq || return 1
	return $rc
}
check_extended "static grants: ADD carried out but answered with status 99: taken as refused, grant copy" add_wrong_status

guest_clean() { guest_log_clean 1 "$guest_log_start"; }
check_log_clean "guest dmesg clean" guest_clean
ktap_exit
