#!/bin/sh
# netfront suite: run with the Rust frontend in the guests (scripts/rig
# --frontend rust). Driver binding, counters, 20 detach/attach cycles with
# traffic, unbind + rmmod + insmod under traffic, clean logs.
. /rig/selftests/lib.sh
G=$GUEST1_IP
CYCLES=${RIG_netfront_cycles:-20}
ktap_plan 23

dom0_log_start=$(($(dmesg | wc -l) + 1))
guest_log_start=$(($(guest-exec 1 'dmesg | wc -l') + 1))

check "netfront_opt bound to vif-0" guest-exec 1 'test -e /sys/bus/xen/drivers/netfront_opt/vif-0'

# Grant reuse: against netback_mq each queue registers its 512 buffer
# pages as static grants; the stock C netback answers NOT_SUPPORTED and the
# guest goes on with grant copy (its log says so).
static_grants() {
	held=$(guest-exec 1 "ethtool -S eth0 | awk '/queue_[0-9]+_static_grants:/ { s += \$2 } END { print s + 0 }'")
	nq=$(xenstore-read /local/domain/$(xl domid guest1)/device/vif/0/multi-queue-num-queues 2>/dev/null || echo 1)
	log=$(guest-exec 1 "dmesg | grep -E 'static grants|grant reuse' | tail -3")
	echo "backend $RIG_backend, $nq queue(s): $held pages registered; $log"
	if [ "$RIG_backend" = rust ]; then
		[ "$held" = $((nq * 512)) ] && echo "$log" | grep -q "buffer pages registered as static grants"
	else
		[ "$held" = 0 ] && echo "$log" | grep -q "offers no static grants"
	fi
}
check "grant reuse: registered with netback_mq, grant copy with the C netback" static_grants

# With more than one vCPU the guest asks for a queue per vCPU (the C netback
# offers as many as dom0 has vCPUs); every queue must carry traffic.
queues() {
	domid=$(xl domid guest1)
	fe=/local/domain/$domid/device/vif/0
	ncpu=$(guest-exec 1 'grep -c ^processor /proc/cpuinfo')
	bemax=$(xenstore-read "$(xenstore-read $fe/backend)/multi-queue-max-queues" 2>/dev/null || echo 1)
	want=$((ncpu < bemax ? ncpu : bemax))
	if [ "$want" = 1 ]; then
		echo "single queue (guest vCPUs $ncpu, backend max $bemax): flat xenstore layout"
		xenstore-read $fe/tx-ring-ref && ! xenstore-read $fe/multi-queue-num-queues 2>/dev/null
		return
	fi
	got=$(xenstore-read $fe/multi-queue-num-queues) || return 1
	echo "queues: $got (guest vCPUs $ncpu, backend max $bemax)"
	[ "$got" = "$want" ] || return 1
	irqs() { guest-exec 1 "awk '/netfront_opt-q/ { s = 0; for (i = 2; i <= NF; i++) if (\$i ~ /^[0-9]+\$/) s += \$i; print \$NF, s }' /proc/interrupts"; }
	before=$(irqs)
	iperf3 -c "$G" -t 3 -P 8 >/dev/null && iperf3 -c "$G" -t 3 -P 8 -R >/dev/null || return 1
	after=$(irqs)
	echo "events per queue before: $before"
	echo "events per queue after:  $after"
	q=0
	while [ $q -lt "$got" ]; do
		# the queue's shared channel, or its -tx and -rx ones
		b=$(echo "$before" | awk -v n="netfront_opt-q$q" 'index($1, n) == 1 { s += $2 } END { print s + 0 }')
		a=$(echo "$after" | awk -v n="netfront_opt-q$q" 'index($1, n) == 1 { s += $2 } END { print s + 0 }')
		[ "$a" -gt "$b" ] || { echo "queue $q carried nothing"; return 1; }
		q=$((q + 1))
	done
}
check_extended "one queue per vCPU (up to the backend's maximum), each carrying traffic" queues

# ethtool -S: 11 one-word counters per queue (packets, bytes, errors and
# dropped each way, hashed, misrouted, lent), every queue received and
# sent packets, and the per-queue counters add up to the device's.
ethtool_stats() {
	out=$(guest-exec 1 'ethtool -S eth0; cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets')
	echo "$out" | grep -E 'queue_[0-9]+_packets'
	ncpu=$(guest-exec 1 'grep -c ^processor /proc/cpuinfo')
	echo "$out" | awk -v ncpu="$ncpu" '
		/^ +[rt]x_queue_[0-9]+_[a-z]+:/ { n++ }
		/^ +rx_queue_[0-9]+_packets:/ { rx += $2; if ($2 == 0) idle++ }
		/^ +tx_queue_[0-9]+_packets:/ { tx += $2; if ($2 == 0) idle++ }
		/^[0-9]+$/ { tot[++t] = $1 }
		END {
			printf "counters %d, sum rx %d tx %d, device rx %d tx %d, idle %d\n", n, rx, tx, tot[1], tot[2], idle
			exit !(n == 11 * (ncpu < 8 ? ncpu : 8) && rx == tot[1] && tx == tot[2] && idle == 0)
		}'
}
check_extended "ethtool -S: per-queue counters, all moving, summing to the device's" ethtool_stats

# RSS over the control ring: with several queues and a backend offering
# the control ring (both netbacks do), the guest sets a Toeplitz key and an
# indirection table; the backend steers each flow to the queue the table
# names and sends the hash along. Hashed packets must arrive on the queue
# our table names (a backend ignoring the table misroutes about half; a
# packet in flight while the table is first set may legitimately not).
rss() {
	domid=$(xl domid guest1)
	fe=/local/domain/$domid/device/vif/0
	echo "ctrl-ring-ref $(xenstore-read $fe/ctrl-ring-ref), event-channel-ctrl $(xenstore-read $fe/event-channel-ctrl)"
	guest-exec 1 'dmesg | grep "RSS over the control ring"' || { echo "RSS not configured"; return 1; }
	iperf3 -c "$G" -t 3 -P 8 >/dev/null || return 1
	out=$(guest-exec 1 'ethtool -S eth0') || return 1
	echo "$out" | grep -E "_(packets|hashed|misrouted):" | grep rx_
	echo "$out" | awk '/rx_queue_[0-9]+_hashed:/ { h += $2 } /rx_queue_[0-9]+_misrouted:/ { m += $2 }
		END { printf "hashed %d, misrouted %d\n", h, m; exit !(h > 1000 && m * 1000 < h) }'
}
# One queue (1-vCPU guest, or a backend offering one): nothing to steer. Whether
# one queue is right is the queues check's verdict.
tname="RSS over the control ring: hashed packets on the queue the guest's table names"
nq=$(xenstore-read "/local/domain/$(xl domid guest1)/device/vif/0/multi-queue-num-queues" 2>/dev/null || echo 1)
if [ "$nq" -gt 1 ]; then check_extended "$tname" rss; else ktap_skip "$tname" "single queue (run with --guest-vcpus 2)"; fi

# IPv6 neighbour discovery needs the guest's solicited-node groups: with
# multicast control (both netbacks filter) it works only if netfront_opt
# keeps the backend's list in step with the device's.
ipv6_nd() {
	domid=$(xl domid guest1)
	echo "request-multicast-control: $(xenstore-read /local/domain/$domid/device/vif/0/request-multicast-control 2>/dev/null || echo unset)"
	ll=$(guest-exec 1 "/usr/bin/ip -6 -o addr show dev eth0 scope link" | awk '{ sub("/.*", "", $4); print $4; exit }')
	[ -n "$ll" ] || { echo "guest has no IPv6 link-local address"; return 1; }
	echo "guest1 link-local $ll"
	wait_for 15 ping6 -c 1 -W 1 -I xenbr0 "$ll" || { echo "no IPv6 reply"; return 1; }
	ping6 -c 3 -W 2 -I xenbr0 "$ll" | tail -n 2
}
check_extended "IPv6 neighbour discovery through the backend's multicast filter" ipv6_nd

# Split event channels when the backend offers them (the C netback does by
# default), one shared channel otherwise.
split_channels() {
	domid=$(xl domid guest1)
	fe=/local/domain/$domid/device/vif/0
	dir=$fe
	[ -z "$(xenstore-read $fe/multi-queue-num-queues 2>/dev/null)" ] || dir=$fe/queue-0
	if [ "$(xenstore-read "$(xenstore-read $fe/backend)/feature-split-event-channels" 2>/dev/null)" = 1 ]; then
		echo "backend offers split channels: tx $(xenstore-read $dir/event-channel-tx) rx $(xenstore-read $dir/event-channel-rx)"
		xenstore-read $dir/event-channel-tx >/dev/null && xenstore-read $dir/event-channel-rx >/dev/null &&
			guest-exec 1 'grep -q "netfront_opt-q0-rx" /proc/interrupts' &&
			! xenstore-read $dir/event-channel 2>/dev/null
	else
		echo "backend offers no split channels: shared $(xenstore-read $dir/event-channel)"
		xenstore-read $dir/event-channel >/dev/null
	fi
}
check_extended "event channels: split when offered, shared otherwise" split_channels

counters_move() {
	before=$(guest-exec 1 'cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets' | tr '\n' ' ')
	iperf_mbits -c "$G" -t 2 || return 1
	after=$(guest-exec 1 'cat /sys/class/net/eth0/statistics/rx_packets /sys/class/net/eth0/statistics/tx_packets' | tr '\n' ' ')
	echo "rx tx packets before: $before after: $after"
	set -- $before $after
	[ "$3" -gt "$1" ] && [ "$4" -gt "$2" ]
}
check_extended "rx/tx counters move with traffic" counters_move

mem_start=$(guest_mem_kb)

reattach() {
	mac=$1
	xl network-detach guest1 0 || return 1
	wait_for 20 guest-exec 1 '! test -e /sys/class/net/eth0' || { echo "eth0 still there"; return 1; }
	xl network-attach guest1 "mac=$mac" bridge=xenbr0 || return 1
	wait_for 20 guest-exec 1 "test -e /sys/class/net/eth0 && ip addr add $G/24 dev eth0 && ip link set eth0 up" ||
		{ echo "eth0 did not come back"; return 1; }
	wait_for 10 ping -c 1 -W 1 "$G" || { echo "no ping after attach"; return 1; }
}
cycles() {
	mac=$(xl network-list guest1 | awk 'NR == 2 { print $3 }')
	i=0
	while [ $i -lt "$CYCLES" ]; do
		i=$((i + 1))
		# traffic in flight while the vif goes away
		iperf3 -c "$G" -t 30 >/dev/null 2>&1 &
		usleep 500000
		reattach "$mac" || { echo "cycle $i failed"; kill $! 2>/dev/null; return 1; }
		kill $! 2>/dev/null; wait $! 2>/dev/null
	done
	echo "$CYCLES cycles"
}
check_extended "$CYCLES detach/attach cycles with traffic" cycles
check_extended "iperf3 after the cycles" iperf_mbits -c "$G" -t 2

# reload_netfront (selftests/lib.sh) under traffic.
unload_reload() {
	iperf3 -c "$G" -t 30 >/dev/null 2>&1 &
	usleep 500000
	reload_netfront
	rc=$?
	kill $! 2>/dev/null; wait $! 2>/dev/null
	return $rc
}
check_lifecycle "unbind + rmmod under traffic, insmod, traffic again" unload_reload
check_extended "iperf3 after the reload" iperf_mbits -c "$G" -t 2

# static_grants=0: the guest registers nothing, says so, and its buffers go
# by grant copy both ways (netback_mq holds no static grant for it).
no_static_grants() {
	reload_netfront static_grants=0 || return 1
	iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R
	rc=$?
	held=$(guest-exec 1 "ethtool -S eth0 | awk '/queue_[0-9]+_static_grants:/ { s += \$2 } END { print s + 0 }'")
	log=$(guest-exec 1 "dmesg | grep 'grant reuse off' | tail -1")
	echo "guest: $held static grants; $log"
	[ "$rc" = 0 ] && [ "$held" = 0 ] && [ -n "$log" ] || rc=1
	if [ "$RIG_backend" = rust ]; then
		vif=vif$(xl domid guest1).0
		bheld=$(ethtool -S "$vif" | awk '/queue_[0-9]+_static_grants:/ { s += $2 } END { print s + 0 }')
		echo "netback_mq: $bheld static grants mapped for it"
		[ "$bheld" = 0 ] || rc=1
	fi
	reload_netfront || rc=1
	return $rc
}
check_extended "static_grants=0: nothing registered, grant copy both ways, then back to the default" no_static_grants
# trusted=0, the toolstack's word that the backend is not trusted (in the
# frontend's own directory): netfront_opt says so when it connects and
# carries traffic both ways. What it receives is copied out of the granted
# buffers either way (hostile_backend checks a backend that writes into
# them late). Then the key as it was.
untrusted() {
	fe=/local/domain/$(xl domid guest1)/device/vif/0
	orig=$(xenstore-read "$fe/trusted" 2>/dev/null)
	restore() { if [ -n "$orig" ]; then xenstore-write "$fe/trusted" "$orig"; else xenstore-rm "$fe/trusted"; fi; }
	xenstore-write "$fe/trusted" 0 || return 1
	reload_netfront || { restore; return 1; }
	iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R
	rc=$?
	log=$(guest-exec 1 "dmesg | grep 'connected to backend' | tail -n 1")
	echo "guest: $log"
	echo "$log" | grep -q "untrusted: bounce pages only" || rc=1
	restore
	reload_netfront || rc=1
	echo "guest after: $(guest-exec 1 "dmesg | grep 'connected to backend' | tail -n 1" | sed 's/.*connected/connected/')"
	return $rc
}
check_extended "trusted=0: connected as untrusted, traffic both ways, then trusted again" untrusted
# Zero-copy transmit (tx_zerocopy=1): with a trusted backend and no static
# grants, TCP from the guest goes with its fragments' pages lent as they
# are (the lent counters move) and arrives intact; with static grants
# registered (netback_mq), or with trusted=0, nothing is lent and the
# connect line says tx_zerocopy=0. Then the defaults.
zerocopy_case() {
	local want=$1 l0 l1 log
	shift
	reload_netfront "$@" || return 1
	log=$(guest-exec 1 "dmesg | grep 'connected to backend' | tail -n 1")
	echo "$*: ${log#*; }"
	l0=$(lent_packets)
	if [ "${RIG_extended:-1}" = 0 ]; then
		tcp_intact 1024 || return 1
	else
		tcp_intact 4096 && iperf_mbits -c "$G" -t 2 -R && iperf_mbits -c "$G" -t 2 || return 1
	fi
	l1=$(lent_packets)
	echo "$*: packets lent: $((l1 - l0))"
	if [ "$want" = lent ]; then
		echo "$log" | grep -q "tx_zerocopy=1" && [ $((l1 - l0)) -gt 0 ]
	else
		[ $((l1 - l0)) = 0 ]
	fi
}
tx_zerocopy() {
	local fe orig rc=0
	zerocopy_case lent tx_zerocopy=1 static_grants=0 || rc=1
	# The debug kernel's run (extended=0, where lending is slow) keeps the
	# lending case alone: its memory and leak reports cover the release.
	if [ "${RIG_extended:-1}" = 0 ]; then
		echo "extended=0: the lending case only"
		reload_netfront || rc=1
		return $rc
	fi
	if [ "$RIG_backend" = rust ]; then
		zerocopy_case none tx_zerocopy=1 || rc=1
		guest-exec 1 "dmesg | grep 'registered as static grants' | tail -n 1" | grep "tx_zerocopy off" || rc=1
	fi
	fe=/local/domain/$(xl domid guest1)/device/vif/0
	orig=$(xenstore-read "$fe/trusted" 2>/dev/null)
	xenstore-write "$fe/trusted" 0 || return 1
	zerocopy_case none tx_zerocopy=1 static_grants=0 || rc=1
	if [ -n "$orig" ]; then xenstore-write "$fe/trusted" "$orig"; else xenstore-rm "$fe/trusted"; fi
	reload_netfront || rc=1
	return $rc
}
check_lifecycle "tx_zerocopy=1: TCP from the guest with its pages lent, intact; nothing lent with static grants or trusted=0" tx_zerocopy
# The data path's switches (Documentation/netfront_opt.md, "Tuning"): the
# plainest path (a publish per received packet, no GRO, no batching), then
# every switch on; each carries TCP both ways and 8000-byte pings (IP
# fragments, reassembled in the guest), and the connect line shows what
# was set. The defaults, which every other check runs with, come back last.
TUNING_PLAIN="tx_batch=0 tx_moderation=0 rx_refill_batch=1 rx_copybreak=0 gro=0 profile=0"
TUNING_ALL="tx_batch=1 tx_moderation=1 rx_refill_batch=32 rx_copybreak=1536 gro=1 profile=1"
TUNING_DEFAULT="tx_batch=0 tx_moderation=1 rx_refill_batch=0 rx_copybreak=0 gro=1 profile=0"
tuning_switches() {
	rc=0
	for switches in "$TUNING_PLAIN" "$TUNING_ALL" ""; do
		reload_netfront $switches || return 1
		log=$(guest-exec 1 "dmesg | grep 'connected to backend' | tail -n 1")
		echo "guest: ${log#*; }"
		echo "$log" | grep -q "${switches:-$TUNING_DEFAULT}" || { echo "not the switches asked for"; rc=1; }
		[ -n "$switches" ] || break
		iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R || rc=1
		ping -c 3 -W 2 -s 8000 "$G" >/tmp/ping8000 || { cat /tmp/ping8000; rc=1; }
		# profile=1 (all on): every stage's clock moved; off, none did.
		prof=$(guest-exec 1 "ethtool -S eth0" | awk '/_prof_.*_ns:/ { k = $1; sub(/_[0-9]+_/, "_", k); s[k] += $2 } END { for (k in s) { n++; if (s[k] > 0) moved++ } print moved + 0, n + 0 }')
		echo "stage clocks that moved: ${prof% *} of ${prof#* }"
		case "$switches" in
		*profile=1*) [ "${prof% *}" = "${prof#* }" ] || rc=1 ;;
		*) [ "${prof% *}" = 0 ] || rc=1 ;;
		esac
	done
	return $rc
}
check_extended "tuning switches: the plainest path, then every switch on (with the stage profile), traffic both ways each time; then the defaults" tuning_switches
# The stack's interrupt deferral on the device (napi_defer_hard_irqs,
# gro_flush_timeout): NAPI is then rescheduled by a 2 ms timer instead of
# the event channel, which netfront_opt leaves masked until a poll
# completes, so fewer events come per received packet; traffic must flow
# with it, and again once it is cleared.
irq_deferral() {
	q=/sys/class/net/eth0
	events() { guest-exec 1 "awk '/netfront_opt/ { for (i = 2; i <= NF && \$i ~ /^[0-9]+\$/; i++) s += \$i } END { print s + 0 }' /proc/interrupts"; }
	rxp() { guest-exec 1 "cat $q/statistics/rx_packets"; }
	e0=$(events) p0=$(rxp)
	iperf_mbits -c "$G" -t 2 >/dev/null || return 1
	e1=$(events) p1=$(rxp)
	guest-exec 1 "echo 10 >$q/napi_defer_hard_irqs && echo 2000000 >$q/gro_flush_timeout" || return 1
	iperf_mbits -c "$G" -t 2
	rc=$?
	e2=$(events) p2=$(rxp)
	iperf_mbits -c "$G" -t 2 -R || rc=1
	guest-exec 1 "echo 0 >$q/napi_defer_hard_irqs && echo 0 >$q/gro_flush_timeout" || rc=1
	awk -v a="$((e1 - e0))" -v b="$((p1 - p0))" -v c="$((e2 - e1))" -v d="$((p2 - p1))" \
		'BEGIN { x = a / (b ? b : 1); y = c / (d ? d : 1)
			printf "events per received packet: %.3f without deferral, %.3f with\n", x, y; exit !(y < x) }' || rc=1
	wait_for 10 ping -c 1 -W 1 "$G" && iperf_mbits -c "$G" -t 2 >/dev/null || rc=1
	return $rc
}
check_extended "napi_defer_hard_irqs and gro_flush_timeout: fewer events per packet, traffic with and without" irq_deferral
# Pages the backend still used at teardown are freed late, not leaked: after
# all the cycles the guest must have its memory back (20 leaked connections
# would hold 40 MB).
check_extended "guest memory back after the cycles (no leaked pages)" guest_mem_back "$mem_start" "the cycles"
jumbo() {
	vif=vif$(xl domid guest1).0
	ip link set "$vif" mtu 9000 && ip link set xenbr0 mtu 9000 || return 1
	guest-exec 1 'ip link set eth0 mtu 9000' || return 1
	ping -c 2 -W 2 -s 8000 "$G" && guest-exec 1 "ping -c 2 -W 2 -s 8000 $DOM0_IP" &&
		iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R
	rc=$?
	guest-exec 1 'ip link set eth0 mtu 1500'; ip link set "$vif" mtu 1500; ip link set xenbr0 mtu 1500
	return $rc
}
check_extended "MTU 9000: ping with 8000-byte payloads and iperf3 both ways" jumbo
# Native XDP: the program runs on netfront_opt's private copy of each frame,
# with 256 bytes of headroom, whichever the backend. xdp-filter drops
# 628-byte pings (XDP_DROP) and passes the rest (XDP_PASS: the skb is built
# on the program's page); xdp-reflect answers pings itself (XDP_TX), and
# xdp-redirect the same through the device's ndo_xdp_xmit (XDP_REDIRECT),
# each only if 192 bytes of headroom are there, while the guest's own stack
# ignores pings; both also echo UDP to port 7, which dom0 sends with its
# checksum left to fill: the reply is valid (dom0's stack takes it) only if
# netfront_opt filled it in before the program ran. TCP from dom0 comes as
# GSO frames, which a program cannot
# see: dropped unseen and counted, until dom0 turns TSO/GSO off on the vif.
# An MTU too large for the program's page is refused either way round.
xdp_native() {
	vif=vif$(xl domid guest1).0
	xstat() { guest-exec 1 "ethtool -S eth0 | awk '/_xdp_$1:/ { s += \$2 } END { print s + 0 }'"; }
	attach() { guest-exec 1 "/usr/bin/ip link set dev eth0 xdp off; /usr/bin/ip link set dev eth0 xdpdrv obj /rig/$1 sec xdp"; }
	rc=0
	attach xdp-filter.o || { echo "native XDP refused"; return 1; }
	guest-exec 1 "dmesg | grep 'XDP program attached' | tail -n 1"
	d0=$(xstat drop) p0=$(xstat pass)
	ping -c 3 -W 2 -s 100 "$G" >/dev/null || { echo "small pings lost under XDP"; rc=1; }
	ping -c 3 -W 2 -s 600 "$G" >/dev/null && { echo "628-byte pings were not dropped"; rc=1; }
	d=$(($(xstat drop) - d0)) p=$(($(xstat pass) - p0))
	echo "xdp-filter: $p frames passed, $d dropped"
	[ "$d" -ge 3 ] && [ "$p" -ge 3 ] || rc=1
	o0=$(xstat oversize)
	timeout 20 iperf3 -c "$G" -t 1 >/dev/null 2>&1
	o=$(($(xstat oversize) - o0))
	echo "TCP from dom0 with TSO on the vif: $o GSO frames dropped unseen"
	[ "$o" -gt 0 ] || rc=1
	ethtool -K "$vif" tso off gso off >/dev/null || rc=1
	p0=$(xstat pass)
	iperf_mbits -c "$G" -t 2 || rc=1
	echo "with TSO/GSO off on $vif: $(($(xstat pass) - p0)) frames passed by the program"
	ethtool -K "$vif" tso on gso on >/dev/null
	guest-exec 1 'ip link set eth0 mtu 4000' >/dev/null 2>&1 && { echo "MTU 4000 taken with a program attached"; rc=1; }
	guest-exec 1 'echo 1 > /proc/sys/net/ipv4/icmp_echo_ignore_all'
	x0=$(xstat xmit)
	for p in xdp-reflect.o:tx xdp-redirect.o:redirect; do
		attach "${p%:*}" || { echo "${p%:*} not attached"; rc=1; continue; }
		n0=$(xstat "${p#*:}")
		ping -c 5 -i 0.2 -W 2 "$G" >/dev/null || { echo "${p%:*}: pings unanswered"; rc=1; }
		# (one read of the whole datagram: bash's read takes a byte at a time)
		echo=$(bash -c "exec 3<>/dev/udp/$G/7; echo xdp-echo >&3; timeout 3 dd bs=64 count=1 <&3 2>/dev/null")
		[ "$echo" = xdp-echo ] || { echo "${p%:*}: no valid UDP echo (dom0's stack dropped it, or none came)"; rc=1; }
		n=$(($(xstat "${p#*:}") - n0))
		echo "${p%:*}: $n pings and UDP echoes answered by the program (XDP_$(echo "${p#*:}" | tr a-z A-Z))"
		[ "$n" -ge 6 ] || rc=1
	done
	x=$(($(xstat xmit) - x0))
	echo "frames redirected to eth0 and sent: $x; aborted so far: $(xstat aborted)"
	[ "$x" -ge 6 ] || rc=1
	guest-exec 1 'echo 0 > /proc/sys/net/ipv4/icmp_echo_ignore_all; /usr/bin/ip link set dev eth0 xdp off' || rc=1
	# (MTU 4000 needs the backend's feature-sg; both netbacks offer it.)
	be=$(xenstore-read "/local/domain/$(xl domid guest1)/device/vif/0/backend")
	if [ "$(xenstore-read "$be/feature-sg" 2>/dev/null)" = 1 ]; then
		guest-exec 1 'ip link set eth0 mtu 4000' || rc=1
		attach xdp-filter.o >/dev/null 2>&1 && { echo "a program attached at MTU 4000"; rc=1; }
		guest-exec 1 "/usr/bin/ip link set dev eth0 xdp off; ip link set eth0 mtu 1500"
	fi
	guest-exec 1 "dmesg | grep -E 'XDP needs|XDP: dropped' | tail -n 2"
	ping -c 2 -W 2 "$G" >/dev/null && iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R || rc=1
	return $rc
}
check_extended "native XDP: drop, pass, TX and redirect, 192 bytes of headroom used; GSO frames dropped unseen; MTU held" xdp_native
# Save and restore the guest (what migration does): the frontend reconnects
# to the new backend and traffic flows without touching the guest's setup.
# Counted: the saved domain must go entirely (a grant dom0 still mapped
# would keep it as a dying domain), and the restored one must hold in Xen
# the grants it held before (rings, static grants), no more.
save_restore() {
	. /rig/selftests/stress/counts.sh
	N=1
	old=$(xl domid guest1)
	sleep 2; before=$(grants_by_guest)
	xl save guest1 /run/guest1.save >/run/xl-save.log 2>&1 || { tail -n 5 /run/xl-save.log; return 1; }
	xl restore /run/guest1.save >/dev/null 2>&1 || { rm -f /run/guest1.save; echo "xl restore failed"; return 1; }
	rm -f /run/guest1.save
	wait_for 30 ping -c 1 -W 1 "$G" || { echo "no ping after restore"; return 1; }
	guest-exec 1 'dmesg | grep "domain restored"' | tail -n 1
	iperf_mbits -c "$G" -t 2 && iperf_mbits -c "$G" -t 2 -R || return 1
	sleep 2; after=$(grants_by_guest)
	echo "guest1's grants active in Xen: ${before% } before the save, ${after% } after the restore"
	if xl list | awk 'NR > 1 { print $2 }' | grep -qx "$old"; then echo "domain $old (saved) is still there"; return 1; fi
	counts_read "$before" && counts_read "$after" || { echo "grant counts not read"; return 1; }
	[ "$before" = "$after" ]
}
check_lifecycle "xl save + xl restore: reconnected, traffic both ways" save_restore
guest_clean() { guest_log_clean 1 "$guest_log_start"; }
dom0_clean() { dmesg | tail -n +"$dom0_log_start" | dmesg_clean; }
check_log_clean "guest dmesg clean" guest_clean
check "dom0 dmesg clean" dom0_clean
ktap_exit
