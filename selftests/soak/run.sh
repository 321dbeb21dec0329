#!/bin/sh
# soak suite: a long run of traffic to every guest at once, several queues
# each (scripts/soak: the Rust backend, 4 guests with 2 vCPUs, alternately
# xen-netfront and netfront_opt). Not in CI. Each round runs two TCP
# streams to or from every guest at once (the direction alternates by round
# and by guest), then prints the leak counters
# (selftests/stress/counts.sh); at the end they
# must be where they started: vifs, event channels, grants active in Xen,
# dom0's and each guest's free memory, and dom0's log clean.
. /rig/selftests/lib.sh
N=${RIG_GUESTS:-1}
SECONDS_WANTED=${RIG_soak_seconds:-1800}
ROUND=${RIG_soak_round:-20}
ktap_plan 4
. /rig/selftests/stress/counts.sh

queues() { # N: guest N's queues, as netback_mq set them up
	d=$(xl domid "guest$1")
	ls -d /sys/class/net/vif$d.0/queues/rx-* 2>/dev/null | wc -l
}
save_guests_mem
for n in $(seq 1 "$N"); do echo "# guest$n: $(queues "$n") queue(s)"; done
base=$(counts)
show_counts "# at the start" "$base"

soak() {
	t0=$(date +%s) round=0 failed=0 mbits_sum=0
	while [ $(( $(date +%s) - t0 )) -lt "$SECONDS_WANTED" ]; do
		round=$((round + 1))
		pids=""
		for n in $(seq 1 "$N"); do
			eval ip=\$GUEST${n}_IP
			# odd rounds guest receive, even rounds guest transmit; the
			# guest after this one also gets small UDP packets
			dir=""; [ $(((round + n) % 2)) = 0 ] && dir=-R
			iperf3 -f m -c "$ip" -t "$ROUND" -P 2 $dir >"/run/soak.$n" 2>&1 & pids="$pids $!"
		done
		for p in $pids; do wait "$p" || failed=$((failed + 1)); done
		for n in $(seq 1 "$N"); do
			m=$(awk '/SUM.*receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print int(v) }' "/run/soak.$n")
			mbits_sum=$((mbits_sum + m))
		done
		echo "round $round ($(( $(date +%s) - t0 )) s): $(counts)"
	done
	echo "$round rounds of ${ROUND} s to $N guests, $failed transfer(s) failed, mean total $((mbits_sum / round)) Mbit/s"
	[ "$failed" = 0 ]
}
check "soak: ${SECONDS_WANTED} s of TCP to and from $N guests at once, every transfer completes" soak

sleep 5
check "vifs, event channels, grants active in Xen and dom0 memory as at the start" counts_back "$base"
check "every netfront_opt guest has its memory back" guests_mem_back
check "dom0 dmesg clean" dom0_log_clean
ktap_exit
