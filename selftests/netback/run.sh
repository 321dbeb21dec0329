#!/bin/sh
# netback suite: run with the Rust backend in dom0 (scripts/rig --backend
# rust), with either frontend in the guests and at least two guests. Driver
# binding, toolstack keys, per-queue counters, guest-to-guest traffic
# through two vifs, xl destroy of a guest mid-traffic (then the guest
# started again, so later suites of the same rig still have it), clean dom0
# log.
. /rig/selftests/lib.sh
G=$GUEST1_IP
N=${RIG_GUESTS:-1}
CYCLES=${RIG_netback_cycles:-20}
ktap_plan 19

dom0_log_start=$(($(dmesg | wc -l) + 1))
domid1=$(xl domid guest1)
be1=/local/domain/0/backend/vif/$domid1/0

check "netback_mq serves guest1's vif" test -e "/sys/bus/xen-backend/drivers/netback_mq/vif-$domid1-0"

# The keys the toolstack and frontends rely on, as the C netback writes them.
keys() {
	for k in feature-sg feature-gso-tcpv4 feature-gso-tcpv6 feature-rx-copy feature-ipv6-csum-offload \
		multi-queue-max-queues feature-split-event-channels hotplug-status state; do
		v=$(xenstore-read "$be1/$k") || { echo "missing $k"; return 1; }
		echo "$k = $v"
	done
	[ "$(xenstore-read "$be1/state")" = 4 ] && [ "$(xenstore-read "$be1/hotplug-status")" = connected ]
}
check "backend xenstore keys, Connected after the hotplug script" keys

# ethtool -S on the vif: every queue the frontend connected copies both ways.
vif_queues() {
	vif=vif$domid1.0
	fe=/local/domain/$domid1/device/vif/0
	nq=$(xenstore-read $fe/multi-queue-num-queues 2>/dev/null || echo 1)
	iperf3 -c "$G" -t 3 -P 8 >/dev/null && iperf3 -c "$G" -t 3 -P 8 -R >/dev/null || return 1
	out=$(ethtool -S "$vif") || return 1
	echo "$out" | grep -E "queue_[0-9]+_(packets|grant_copy_ops|static_hits|notifications)"
	# A queue copies by grant copy or through static grants (grant reuse).
	echo "$out" | awk -v nq="$nq" '
		/^ +rx_queue_[0-9]+_packets:/ { split($1, p, "_"); if (p[3] < nq && $2 == 0) idle++ }
		/^ +tx_queue_[0-9]+_packets:/ { split($1, p, "_"); if (p[3] < nq && $2 == 0) idle++ }
		/^ +queue_[0-9]+_(grant_copy_ops|static_hits):/ { split($1, p, "_"); copies[p[2]] += $2 }
		END { for (q = 0; q < nq; q++) if (!copies[q]) idle++
		      printf "frontend queues %d, idle counters %d\n", nq, idle; exit idle != 0 }'
}
check_extended "per-queue counters: every connected queue carries traffic both ways" vif_queues

# Grant reuse: netfront_opt registers its buffer pages as static grants and
# steady traffic then needs no grant hypercall (at most 0.05 grant-copy
# operations per packet, both ways); the stock C netfront never registers
# and everything goes by grant copy.
grant_reuse() {
	vif=vif$domid1.0
	fe=/local/domain/$domid1/device/vif/0
	nq=$(xenstore-read $fe/multi-queue-num-queues 2>/dev/null || echo 1)
	st() { ethtool -S "$vif" | awk -v f="$1" '$1 ~ "^(rx_|tx_)?queue_[0-9]+_" f ":$" { s += $2 } END { print s + 0 }'; }
	held=$(st static_grants)
	o0=$(st grant_copy_ops) p0=$(($(st packets))) h0=$(st static_hits) m0=$(st static_map_calls)
	iperf3 -c "$G" -t 3 -P 4 >/dev/null && iperf3 -c "$G" -t 3 -P 4 -R >/dev/null || return 1
	o1=$(st grant_copy_ops) p1=$(($(st packets))) h1=$(st static_hits) m1=$(st static_map_calls)
	ops=$((o1 - o0)) pkts=$((p1 - p0)) hits=$((h1 - h0))
	echo "frontend $RIG_frontend, $nq queue(s): static grants held $held, packets $pkts, grant-copy ops $ops, static hits $hits, map ops $(st gref_map_ops) in $m1 map call(s), $(st static_add_refused) ADD(s) refused"
	[ "$pkts" -gt 1000 ] || return 1
	# steady traffic maps nothing new
	[ "$m1" = "$m0" ] || { echo "map calls during the traffic: $((m1 - m0))"; return 1; }
	if [ "$RIG_frontend" = rust ]; then
		[ "$held" = $((nq * 512)) ] && [ $((ops * 100)) -le $((pkts * 5)) ] && [ "$hits" -ge "$pkts" ] &&
			[ "$(st gref_map_ops)" -ge "$held" ] && [ "$m1" -ge "$nq" ] && [ "$(st static_add_refused)" = 0 ]
	else
		[ "$held" = 0 ] && [ "$ops" -ge "$pkts" ] && [ "$m1" = 0 ]
	fi
}
check_extended "grant reuse: static grants with netfront_opt, grant copy with the C netfront" grant_reuse

# A packet that finds too few guest buffers is held and its queue stopped
# until the guest posts more (the vif never hands it back to the stack with
# NETDEV_TX_BUSY). The guest is paused for half a second under an 8-stream
# load, so it runs out of buffers whatever the machine's speed: packets are
# held, then every held packet is delivered, none dropped.
held_delivered() {
	vif=vif$domid1.0
	sum() { ethtool -S "$vif" | awk -v f="$1" '$1 ~ "^tx_queue_[0-9]+_" f ":$" { s += $2 } END { print s + 0 }'; }
	h0=$(sum held) d0=$(sum dropped)
	iperf3 -c "$G" -t 4 -P 8 >/tmp/held-iperf.log 2>&1 &
	ip=$!
	usleep 1500000
	xl pause guest1 && usleep 500000 && xl unpause guest1 || { xl unpause guest1; wait $ip; return 1; }
	wait $ip || { tail -n 5 /tmp/held-iperf.log; return 1; }
	h1=$(sum held) d1=$(sum dropped)
	echo "held $((h1 - h0)), dropped $((d1 - d0))"
	[ $((h1 - h0)) -gt 0 ] || { echo "nothing held while the guest was paused"; return 1; }
	[ $((d1 - d0)) = 0 ]
}
tname="packets waiting for guest buffers are held, then delivered"
if [ "$RIG_backend" = rust ]; then check "$tname" held_delivered
else ktap_skip "$tname" "backend $RIG_backend"; fi

# Offloads the frontend accepts are on the vif, the rest off.
offloads() {
	vif=vif$domid1.0
	fe=/local/domain/$domid1/device/vif/0
	f=$(ethtool -k "$vif") || return 1
	echo "$f" | grep -E "^(scatter-gather|tcp-segmentation-offload|tx-checksum-ip-generic|tx-checksum-ipv4|tx-checksum-ipv6):"
	sg=$(xenstore-read $fe/feature-sg 2>/dev/null || echo 0)
	if [ "$sg" = 1 ]; then echo "$f" | grep -q "^scatter-gather: on"; else echo "$f" | grep -q "^scatter-gather: off"; fi
}
check "vif offloads follow the frontend's features" offloads

two_guests() {
	ping -c 2 -W 2 "$GUEST2_IP" || return 1
	guest-exec 1 "ping -c 2 -W 2 $GUEST2_IP" || return 1
	# both guests at once, through their own vifs
	iperf3 -c "$GUEST2_IP" -t 3 >/dev/null 2>&1 &
	p=$!
	iperf_mbits -c "$G" -t 3 || { wait $p; return 1; }
	wait $p || return 1
	guest-exec 1 "iperf3 -c $GUEST2_IP -t 2 -f m | grep receiver"
}
tname="two guests: dom0 to both at once, guest to guest"
if [ "$N" -ge 2 ]; then check "$tname" two_guests; else ktap_skip "$tname" "one guest (run with --guests 2)"; fi

# Defaults as the C driver's: a queue per dom0 CPU (at most 8), split event
# channels offered.
module_params() {
	cpus=$(grep -c ^processor /proc/cpuinfo)
	want=$((cpus < 8 ? cpus : 8))
	got=$(xenstore-read "$be1/multi-queue-max-queues") || return 1
	split=$(xenstore-read "$be1/feature-split-event-channels") || return 1
	echo "dom0 CPUs $cpus: multi-queue-max-queues $got (want $want), split channels $split"
	[ "$got" = "$want" ] && [ "$split" = 1 ]
}
check "defaults of max_queues and separate_tx_rx_irq" module_params

# Features the C netback offers beyond the data rings.
more_keys() {
	for k in feature-ctrl-ring feature-multicast-control feature-xdp-headroom; do
		v=$(xenstore-read "$be1/$k") || { echo "missing $k"; return 1; }
		echo "$k = $v"; [ "$v" = 1 ] || return 1
	done
}
check "control ring, multicast control and XDP headroom offered" more_keys

# XDP in the guest (the C netfront; netfront_opt asks for no headroom, its
# program runs on its own copy: the netfront suite tests it): attaching a
# program makes the frontend ask for headroom (Reconfiguring); the program
# reads frames at that headroom and drops 628-byte pings only, so small
# pings pass and big ones vanish only if the data sits where the backend's
# XDP extra says. Detaching gives the headroom back.
xdp() {
	fe=/local/domain/$domid1/device/vif/0
	# the backend's last word on the headroom since MARK is N
	headroom_is() { dmesg | tail -n +"$1" | grep "vif$domid1.0: XDP headroom" | tail -n 1 | grep -q "headroom $2\$"; }
	mark=$(($(dmesg | wc -l) + 1))
	guest-exec 1 '/usr/bin/ip link set dev eth0 xdp obj /rig/xdp-filter.o sec xdp' || return 1
	wait_for 10 headroom_is "$mark" 256 || { echo "backend did not apply headroom 256"; dmesg | tail -n +"$mark"; return 1; }
	wait_for 10 sh -c "[ \"\$(xenstore-read $be1/state)\" = 4 ]" || { echo "backend not Connected again"; return 1; }
	echo "frontend xdp-headroom $(xenstore-read $fe/xdp-headroom); $(dmesg | grep "vif$domid1.0: XDP headroom" | tail -n 1)"
	ping -c 3 -W 2 -s 100 "$G" || { echo "small pings lost under XDP"; return 1; }
	if ping -c 3 -W 2 -s 600 "$G" >/dev/null; then echo "628-byte pings were not dropped: XDP saw the wrong bytes"; return 1; fi
	echo "628-byte pings dropped by the guest's XDP program, as they should be"
	mark=$(($(dmesg | wc -l) + 1))
	guest-exec 1 '/usr/bin/ip link set dev eth0 xdp off' || return 1
	wait_for 10 headroom_is "$mark" 0 || { echo "backend did not take the headroom back"; return 1; }
	ping -c 2 -W 2 -s 600 "$G" >/dev/null && iperf_mbits -c "$G" -t 2
}
tname="XDP in the guest: headroom honoured, then given back"
if [ "$RIG_frontend" = c ]; then check "$tname" xdp; else ktap_skip "$tname" "netfront_opt asks for no XDP headroom (the netfront suite tests its XDP)"; fi

# A frontend asking for an absurd headroom (0xffff) gets it clamped, with a
# log line, and traffic keeps flowing with the data at the clamped offset.
headroom_clamp() {
	fe=/local/domain/$domid1/device/vif/0
	xenstore-write "$fe/xdp-headroom" 65535 "$fe/state" 7 || return 1
	wait_for 10 sh -c "[ \"\$(xenstore-read $be1/state)\" = 8 ]" || { echo "backend not Reconfigured"; return 1; }
	xenstore-write "$fe/state" 4 || return 1
	wait_for 10 sh -c "[ \"\$(xenstore-read $be1/state)\" = 4 ]" || { echo "backend not Connected again"; return 1; }
	dmesg | grep "vif$domid1.0: frontend asked for 65535 bytes of XDP headroom" | tail -n 1 | grep . || return 1
	ping -c 2 -W 2 -s 1400 "$G" >/dev/null || { echo "pings lost at headroom 2048"; return 1; }
	r=$(iperf_mbits -c "$G" -t 2) || return 1
	echo "guest receive at headroom 2048: $r"
	xenstore-write "$fe/xdp-headroom" 0 "$fe/state" 7 &&
		wait_for 10 sh -c "[ \"\$(xenstore-read $be1/state)\" = 8 ]" &&
		xenstore-write "$fe/state" 4 &&
		wait_for 10 sh -c "[ \"\$(xenstore-read $be1/state)\" = 4 ]" &&
		wait_for 10 ping -c 1 -W 1 "$G"
}
check_extended "hostile xdp-headroom: clamped and logged, traffic flows" headroom_clamp

# Multicast control (netfront_opt asks for it by default; the C netfront
# does not): frames to a group guest1 did not join are dropped in dom0 and
# counted; after it joins (ip maddr add: netfront_opt sends MCAST_ADD on its
# TX ring) they pass; after it leaves, they are dropped again.
mcast_requested() { [ "$(xenstore-read /local/domain/$domid1/device/vif/0/request-multicast-control 2>/dev/null)" = 1 ]; }
mcast() {
	mcast_requested || { echo "netfront_opt did not ask for multicast control"; return 1; }
	vif=vif$domid1.0
	filtered() { ethtool -S "$vif" | awk '/mcast_filtered:/ { s += $2 } END { print s + 0 }'; }
	# 20 frames to 239.1.1.1 each time; other multicast (IPv6 and IGMP
	# housekeeping to groups the guest did not join) may add a few.
	send() { ping -c 20 -i 0.05 -W 1 239.1.1.1 >/dev/null 2>&1; sleep 1; filtered; }
	ip route replace 239.0.0.0/8 dev xenbr0 || return 1
	f0=$(filtered); f1=$(send)
	guest-exec 1 '/usr/bin/ip maddr add 01:00:5e:01:01:01 dev eth0' || return 1
	sleep 1; f2=$(send)
	guest-exec 1 '/usr/bin/ip maddr del 01:00:5e:01:01:01 dev eth0' || return 1
	sleep 1; f3=$(send)
	echo "multicast frames dropped in dom0: not joined +$((f1 - f0)), joined +$((f2 - f1)), left +$((f3 - f2))"
	[ $((f1 - f0)) -ge 20 ] && [ $((f2 - f1)) -lt 5 ] && [ $((f3 - f2)) -ge 20 ]
}
tname="multicast control: unjoined groups dropped in dom0, joined ones delivered"
if [ "$RIG_frontend" = rust ] || mcast_requested; then
	check_extended "$tname" mcast
else
	ktap_skip "$tname" "frontend $RIG_frontend did not ask for multicast control"
fi

reattach1() { # VIF-SPEC-EXTRAS...
	xl network-detach guest1 0 || return 1
	wait_for 20 guest-exec 1 '! test -e /sys/class/net/eth0' || { echo "eth0 still there"; return 1; }
	xl network-attach guest1 "mac=$mac1" bridge=xenbr0 "$@" || return 1
	wait_for 20 guest-exec 1 "test -e /sys/class/net/eth0 && ip addr add $G/24 dev eth0 && ip link set eth0 up" ||
		{ echo "eth0 did not come back"; return 1; }
	wait_for 10 ping -c 1 -W 1 "$G"
}
mac1=$(xl network-list guest1 | awk 'NR == 2 { print $3 }')

# rate= in the vif spec limits what the guest sends (as the C netback).
# The cap is a quarter of what the path carries without one, so a slow rig
# (the debug kernel carries ~20 Mbit/s) still tells a cap from no cap.
rate_limit() {
	free=$(iperf_mbits -c "$G" -t 3 -R) || { echo "$free"; return 1; }
	echo "guest tx without a limit: $free"
	f=${free% Mbit/s}
	rate=$(awk -v f="$f" 'BEGIN { r = int(f / 4); print (r < 2 ? 2 : r) }')
	reattach1 "rate=${rate}Mb/s" || return 1
	echo "rate node: $(xenstore-read "/local/domain/0/backend/vif/$domid1/0/rate")"
	limited=$(iperf_mbits -c "$G" -t 4 -R) || { echo "$limited"; return 1; }
	echo "guest tx with rate=${rate}Mb/s: $limited"
	reattach1 || return 1
	l=${limited% Mbit/s}
	awk -v l="$l" -v f="$f" -v r="$rate" 'BEGIN { exit !(l > r / 4 && l < r * 1.5 && f > 2 * l) }'
}
check_extended "rate limit: rate= at a quarter of the free speed holds guest transmit near it" rate_limit

# Detach/attach cycles with traffic in flight, whichever frontend: each
# time the vif, its backend directory and its queues go and come back.
cycles() {
	i=0
	while [ $i -lt "$CYCLES" ]; do
		i=$((i + 1))
		iperf3 -c "$G" -t 30 >/dev/null 2>&1 &
		usleep 500000
		reattach1 || { echo "cycle $i failed"; kill $! 2>/dev/null; return 1; }
		kill $! 2>/dev/null; wait $! 2>/dev/null
	done
	n=$(ls /sys/bus/xen-backend/drivers/netback_mq | grep -c '^vif-')
	echo "$CYCLES cycles; vifs bound: $n (guests: $N)"
	[ "$n" = "$N" ] && iperf_mbits -c "$G" -t 2
}
check "$CYCLES detach/attach cycles with traffic, then iperf3" cycles

# A guest that stops posting receive buffers (its interface down) stalls
# its queue: carrier off after the stall timeout (the rig loads netback_mq
# with 5 s), then back on once the guest takes traffic again.
stall() {
	vif=vif$domid1.0
	guest-exec 1 'ip link set eth0 down' || return 1
	# more packets than the 256 buffers the guest had posted
	ping -q -c 600 -i 0.01 -s 1000 -W 1 "$G" >/dev/null 2>&1
	wait_for 15 sh -c "ip link show $vif | grep -q NO-CARRIER" || { echo "carrier still on"; ip link show $vif; return 1; }
	echo "stalled: $(ip -o link show $vif | cut -c1-90)"
	logged=$(dmesg | grep "$vif: queue [0-9]*: guest receive stalled" | tail -n 1)
	guest-exec 1 "ip link set eth0 up && ip addr replace $G/24 dev eth0" || return 1
	# the queue the guest's RSS table (or the stack) put the pings on
	[ -n "$logged" ] || { echo "no stall log line"; return 1; }
	echo "$logged"
	wait_for 20 sh -c "ip link show $vif | grep -q LOWER_UP" || { echo "carrier did not come back"; return 1; }
	wait_for 10 ping -c 1 -W 1 "$G" || return 1
	echo "ready again: $(ip -o link show $vif | cut -c1-90)"
	iperf_mbits -c "$G" -t 2
}
check_extended "guest receive stall: carrier off, then on when the guest posts again" stall

# xl destroy of the last guest with traffic running: its vif and backend
# directory go, dom0 stays healthy, the other guests keep working.
destroy() {
	victim=guest$N
	vdom=$(xl domid "$victim") || return 1
	eval vip=\$GUEST${N}_IP
	iperf3 -c "$vip" -t 30 >/dev/null 2>&1 &
	p1=$!
	iperf3 -c "$vip" -t 30 -R >/dev/null 2>&1 &
	p2=$!
	sleep 2
	xl destroy "$victim" || return 1
	kill $p1 $p2 2>/dev/null; wait $p1 $p2 2>/dev/null
	wait_for 20 sh -c "! ip link show vif$vdom.0" || { echo "vif$vdom.0 still there"; return 1; }
	wait_for 20 sh -c "! xenstore-read /local/domain/0/backend/vif/$vdom/0/state" ||
		{ echo "backend directory still there"; return 1; }
	echo "vif$vdom.0 and its backend directory are gone"
	if [ "$N" -ge 2 ]; then iperf_mbits -c "$G" -t 2 || return 1; fi
}
check "xl destroy mid-traffic: vif and backend gone, other guests fine" destroy

no_leftovers() {
	n=$(ls /sys/bus/xen-backend/drivers/netback_mq | grep -c '^vif-')
	echo "vifs bound: $n (guests left: $((N - 1)))"
	[ "$n" = $((N - 1)) ]
}
check "no vif left behind by the destroyed guest" no_leftovers
# The destroyed guest started again: a new domain's vif on the same
# backend, and the guest back for the suites after this one.
recreate() {
	guest_up "$N" || return 1
	eval vip=\$GUEST${N}_IP
	iperf_mbits -c "$vip" -t 2 && iperf_mbits -c "$vip" -t 2 -R
}
check "the destroyed guest started again: connected, traffic both ways" recreate
dom0_clean() { dmesg | tail -n +"$dom0_log_start" | dmesg_clean; }
check "dom0 dmesg clean" dom0_clean
ktap_exit
