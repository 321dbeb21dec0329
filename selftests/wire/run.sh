#!/bin/sh
# wire suite (scripts/rig --nic igb --wire --test wire): traffic from an
# external machine. The peer (10.99.0.2) sits on the igb's port, a tap in a
# network namespace on the host; dom0 bridges the PF to xenbr0 as a host
# bridges its uplink. Frames from the peer reach a guest through the PF,
# igb and the bridge (the copy path), or, once the guest has its own VF,
# through the VF's pool straight into the guest's pages (the NIC path,
# netback_mq only); the guests' frames leave through the PF.
. /rig/selftests/lib.sh
. /rig/nic-setup
ktap_plan 8

dom0_log_start=$(($(dmesg | wc -l) + 1))
ifstat() { cat "/sys/class/net/$1/statistics/$2"; }
# peer_stat KEY: one of the peer's counters (wire-peer snap).
peer_stat() { wire-peer snap | tr ' ' '\n' | sed -n "s/^$1=//p"; }
vif_of() { echo "vif$(xl domid "guest$1").0"; }
nic_stat() { ethtool -S "$(vif_of "$1")" | awk -v k="$2:" '$1 == k { s += $2 } END { print s + 0 }'; }
rust_backend() { [ "$RIG_backend" = rust ]; }

# The rig's wire is set up by scripts/rig --wire: without it this suite
# was started wrongly, which is a failure, not a skip.
wire_up() {
	[ "${RIG_wire:-0}" = 1 ] || { echo "the rig has no wire: run with scripts/rig --nic igb --wire"; return 1; }
	wire-peer snap || { echo "the peer's agent does not answer on the management NIC"; return 1; }
	pf_up && wire_setup || return 1
	wire-peer ping -c 2 -W 2 "$GUEST1_IP" || { echo "the peer cannot reach guest1"; return 1; }
}
check "the peer answers over the management NIC; the PF bridged to xenbr0; the peer reaches guest1" wire_up || ktap_exit
# (check runs each case in a subshell: pf and pfdev for the later ones.)
pf_up >/dev/null || ktap_exit

# iperf3 from the peer to guest N for 3 s; prints the receiver's Mbit/s.
peer_iperf() { # N [ARGS]
	local n=$1 ip out
	shift
	eval ip=\$GUEST${n}_IP
	out=$(wire-peer iperf3 -f m -c "$ip" -t 3 "$@") || { echo "$out"; return 1; }
	echo "$out" | awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print v " Mbit/s"; exit !(v > 0) }'
}

# The copy path: every frame of the stream through the PF (its counter
# moves frame by frame), dom0's igb and GRO, the bridge and the vif.
copy_path() {
	pf0=$(ifstat "$pfdev" rx_packets) v0=$(ifstat "$(vif_of 1)" tx_bytes) s0=$(peer_stat tap_tx_packets)
	peer_iperf 1 || return 1
	pfn=$(($(ifstat "$pfdev" rx_packets) - pf0)) v=$(($(ifstat "$(vif_of 1)" tx_bytes) - v0)) s=$(($(peer_stat tap_tx_packets) - s0))
	echo "frames the peer sent: $s; frames the PF received: $pfn; bytes the vif delivered to guest1: $v"
	[ "$s" -gt 1000 ] && [ "$pfn" -ge $((s * 9 / 10)) ] && [ "$v" -gt $((s * 1000)) ]
}
check "from the wire by the copy path: peer -> PF -> bridge -> vif -> guest1" copy_path

# The NIC path: each guest's receive on its own VF (nic_setup). The stream
# from the peer lands in guest1's VF pool (netback_mq's counters move);
# the PF takes none of it (a few broadcasts at most) and dom0 copies none.
nic_path() {
	nic_setup || return 1
	pf0=$(ifstat "$pfdev" rx_packets) f0=$(nic_stat 1 queue_0_nic_frames) t0=$(nic_stat 1 tx_queue_0_packets)
	s0=$(peer_stat tap_tx_packets)
	peer_iperf 1 || return 1
	pfn=$(($(ifstat "$pfdev" rx_packets) - pf0)) f=$(($(nic_stat 1 queue_0_nic_frames) - f0))
	copied=$(($(nic_stat 1 tx_queue_0_packets) - t0 - f)) s=$(($(peer_stat tap_tx_packets) - s0))
	echo "frames the peer sent: $s; written by guest1's VF into its pages: $f; received by the PF: $pfn; packets dom0 copied to guest1: $copied"
	[ "$s" -gt 1000 ] && [ "$f" -ge $((s * 9 / 10)) ] && [ "$pfn" -le 20 ] && [ "$copied" -le 5 ]
}
if rust_backend; then
	check "from the wire by the NIC path: guest1's VF pool takes the stream, the PF none, dom0 copies none" nic_path
else
	ktap_skip "from the wire by the NIC path" "needs netback_mq (--backend rust)"
fi

# The guest sends to the peer (iperf3 -R): vif -> bridge -> PF -> wire.
guest_to_wire() {
	pf0=$(ifstat "$pfdev" tx_packets) r0=$(peer_stat tap_rx_packets)
	peer_iperf 1 -R || return 1
	pfn=$(($(ifstat "$pfdev" tx_packets) - pf0)) r=$(($(peer_stat tap_rx_packets) - r0))
	echo "frames the PF sent: $pfn; frames the peer received: $r"
	[ "$r" -gt 1000 ] && [ "$pfn" -ge "$r" ]
}
check "guest1 to the wire: vif -> bridge -> PF -> peer" guest_to_wire

# 64-byte UDP from the peer at a fixed rate (the benchmark's source,
# rig/udpgen, to a port nothing listens on): guest1's interface counts
# what the peer sent, and frames for guest1 never reach guest2's pool.
grx() { guest-exec "$1" "cat /sys/class/net/eth0/statistics/rx_packets"; }
udp_fixed() {
	o0=$(nic_stat 2 queue_0_nic_frames) f0=$(nic_stat 1 queue_0_nic_frames) g0=$(grx 1)
	out=$(wire-peer udpgen "$GUEST1_IP" 9 5000 3) || { echo "$out"; return 1; }
	o=$(($(nic_stat 2 queue_0_nic_frames) - o0)) f=$(($(nic_stat 1 queue_0_nic_frames) - f0)) g=$(($(grx 1) - g0))
	sent=$(echo "$out" | awk '$1 == "sent" { print $2 }')
	echo "udpgen: $out; guest1's interface received $g frames, through its VF $f; guest2's VF took $o"
	[ "${sent:-0}" -ge 13000 ] && [ "$g" -ge $((sent * 98 / 100)) ] && [ "$f" -ge $((sent * 98 / 100)) ] && [ "$o" -lt 20 ]
}
if rust_backend && [ "${RIG_GUESTS:-1}" -ge 2 ]; then
	check "64-byte UDP from the wire at 5000 frames/s: counted by the receiver, none in guest2's pool" udp_fixed
else
	ktap_skip "64-byte UDP from the wire" "needs netback_mq and two guests (--guests 2)"
fi

# An administrator cuts guest1 off the wire: its vif moves to a bridge of
# its own. The NIC path ends (it stands in only for a bridge the PF is a
# port of), and the frames the peer sends guest1, which its VF's pool
# still takes, no longer reach it; back on xenbr0, they reach it through
# its VF again.
udp_sent() { echo "$1" | awk '$1 == "sent" { print $2 }'; }
on_nic_since() { # N MARK: guest N's last NIC-path line since MARK says it is on the NIC
	dmesg | tail -n +"$2" | grep -E "$(vif_of "$1"): queue 0: guest receive (through|leaves) the NIC" | tail -n 1 | grep -q "through the NIC"
}
cut_off() {
	vif=$(vif_of 1) mark=$(($(dmesg | wc -l) + 1))
	{ ip link show xnr-iso >/dev/null 2>&1 || ip link add xnr-iso type bridge; } && ip link set xnr-iso up || return 1
	ip link set "$vif" master xnr-iso || return 1
	wait_for 10 sh -c "dmesg | tail -n +$mark | grep -q '$vif: queue 0: guest receive leaves the NIC'" ||
		{ echo "the NIC path did not end"; ip link set "$vif" master xenbr0; ip link del xnr-iso; return 1; }
	g0=$(grx 1) p0=$(ifstat "$pfdev" rx_packets) s0=$(peer_stat tap_tx_packets)
	out=$(wire-peer udpgen "$GUEST1_IP" 9 2000 2)
	g=$(($(grx 1) - g0)) pfn=$(($(ifstat "$pfdev" rx_packets) - p0)) s=$(($(peer_stat tap_tx_packets) - s0))
	ip link set "$vif" master xenbr0 || return 1
	ip link del xnr-iso
	echo "cut off: the peer sent $(udp_sent "$out") frames to guest1 ($s onto the wire); guest1 received $g frames, the PF $pfn"
	[ "$(udp_sent "$out")" -ge 3000 ] && [ "$s" -ge 3000 ] && [ "$g" -lt 10 ] || return 1
	wait_for 10 on_nic_since 1 "$mark" || { echo "guest1 not back on its VF"; dmesg | tail -n +"$mark" | tail; return 1; }
	g0=$(grx 1) f0=$(nic_stat 1 queue_0_nic_frames)
	out=$(wire-peer udpgen "$GUEST1_IP" 9 2000 2)
	g=$(($(grx 1) - g0)) f=$(($(nic_stat 1 queue_0_nic_frames) - f0)) sent=$(udp_sent "$out")
	echo "back on xenbr0: the peer sent $sent frames; guest1 received $g, through its VF $f"
	[ "${sent:-0}" -ge 3000 ] && [ "$g" -ge $((sent * 98 / 100)) ] && [ "$f" -ge $((sent * 98 / 100)) ]
}
if rust_backend; then
	check "guest1 cut off (its vif on a bridge without the PF): the peer's frames stop reaching it; back through its VF on its return" cut_off
else
	ktap_skip "guest1 cut off from the wire" "needs netback_mq (--backend rust)"
fi

# The benchmark's wire rows measure each pair this way: one short wire
# workload through rig/bench-dom0 (BENCH_WIRE=1) gives a row with wire
# frames, QEMU's threads and the peer's count.
bench_row() {
	out=$(BENCH_WIRE=1 BENCH_PEER_CMD=wire-peer BENCH_PEER_SNAP=1 BENCH_PEER_IP=$WIRE_PEER_IP BENCH_SECONDS=2 \
		BENCH_COUNT_SECONDS=1 BENCH_WORKLOADS=tcp_rx BENCH_TCP_STREAMS=1 BENCH_GUESTS=guest1 BENCH_GUEST_IPS=$GUEST1_IP \
		sh /rig/bench-dom0 2>&1)
	rc=$?
	echo "$out" | grep -v '^bench-probes'
	[ $rc = 0 ] || return 1
	echo "$out" | grep '^BENCH test=wire_tcp_rx ' | awk '{
		for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
		ok = v["wire_frames"] > 1000 && v["peer_frames"] >= v["wire_frames"] * 0.9 && v["qemu_io_s"] > 0 && v["qemu_vcpu_s"] > 0 && v["cframes"] > 0 }
		END { exit !ok }'
}
check "bench-dom0's wire row: wire frames, the peer's count, QEMU's threads" bench_row

# Back as the rig started: the PF off the bridge, the VFs gone (the guests
# go on by grant copy), and nothing in dom0's log.
teardown() {
	ip link set "$pfdev" nomaster || return 1
	echo 0 >"$pf/sriov_numvfs" || return 1
	wait_for 10 ping -c 1 -W 1 "$GUEST1_IP" >/dev/null || { echo "guest1 unreachable after its VF went"; return 1; }
	dmesg | tail -n +"$dom0_log_start" | dmesg_clean
}
check "PF off the bridge, VFs gone, guest1 reachable by grant copy, dom0 log clean" teardown
ktap_exit
