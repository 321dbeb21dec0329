# KTAP helpers for rig suites (sourced; busybox sh). Each suite prints one
# KTAP document; the host (scripts/test, ktap_count in scripts/lib.sh) counts
# its "ok", "not ok" and "ok ... # SKIP" lines, and fails a suite that printed
# fewer results than its plan.
KTAP_N=0
KTAP_FAIL=0
# The rig's options, rig.KEY=VALUE on dom0's command line, as RIG_KEY
# (scripts/rig --set KEY=VALUE adds one).
[ ! -r /run/rig.env ] || . /run/rig.env
ktap_plan() { echo "KTAP version 1"; echo "1..$1"; }
ktap_ok() { KTAP_N=$((KTAP_N + 1)); echo "ok $KTAP_N $*"; }
ktap_fail() { KTAP_N=$((KTAP_N + 1)); KTAP_FAIL=$((KTAP_FAIL + 1)); echo "not ok $KTAP_N $*"; }
# ktap_skip NAME REASON: NAME's precondition is not met in this rig set-up
# (KTAP's SKIP directive). Only for a set-up that cannot run the test, never
# for a failure.
ktap_skip() { KTAP_N=$((KTAP_N + 1)); echo "ok $KTAP_N $1 # SKIP${2:+ $2}"; }
# check NAME CMD...: runs CMD, indents its output as KTAP diagnostics,
# with the seconds it took (where a suite's time goes).
check() {
	name=$1; shift
	# --set only=TEXT: only the checks whose name contains TEXT (a run by
	# hand, to repeat one case); the others are listed as skipped.
	case "$name" in
	*"${RIG_only:-}"*) ;;
	*) ktap_skip "$name" "not selected (only=$RIG_only)"; return 0 ;;
	esac
	_check_t0=$(cut -d. -f1 /proc/uptime)
	out=$("$@" 2>&1); rc=$?
	[ -z "$out" ] || echo "$out" | sed 's/^/# /'
	echo "# ($(($(cut -d. -f1 /proc/uptime) - _check_t0)) s)"
	if [ $rc = 0 ]; then ktap_ok "$name"; else ktap_fail "$name # exit $rc"; fi
	return $rc
}
# check_extended NAME CMD...: a check that adds coverage beyond the core
# cases of a long suite. The hostile suites' core is one case per way the
# driver reacts (packet dropped, delivered intact, queue disabled, connection
# refused, static grants refused or left to the grant layer); the other
# cases of each class are extended. With --set extended=0 they are listed as
# skipped: CI runs them on the normal kernel and leaves them out on the
# debug kernel, whose run would not fit CI's time otherwise. In the netfront
# and netback suites the extended checks are the features and the plain
# cycles (ethtool, RSS, IPv6 ND, event channel layout, MTU 9000, XDP,
# multicast, rate limit, counters, switches), which the normal kernel's
# rigs run; the debug kernel's run keeps the lifecycle checks (unload and
# reload, save and restore, lent pages, destroy and recreate).
check_extended() {
	if [ "${RIG_extended:-1}" = 0 ]; then ktap_skip "$1" "extended case, left out of this run (extended=0)"; return 0; fi
	check "$@"
}
# check_lifecycle NAME CMD...: a check of a driver's lifecycle under
# traffic (unload and reload, save and restore, pages lent and returned).
# With --set lifecycle=0 it is listed as skipped: CI runs the netfront
# suite's lifecycle checks against netback_mq on the debug kernel (where
# any report fails them too) and its other checks on the normal kernel.
check_lifecycle() {
	if [ "${RIG_lifecycle:-1}" = 0 ]; then ktap_skip "$1" "lifecycle case, left out of this run (lifecycle=0): it runs on the debug kernel"; return 0; fi
	check "$@"
}
# check_log_clean NAME CMD...: a suite's own clean-log check. On the debug
# kernel it is listed as skipped: the debug_reports suite reads every
# console and log of the run for the same reports, once, at the end.
check_log_clean() {
	if [ "${RIG_kernel:-}" = debug ]; then ktap_skip "$1" "the debug kernel's run: debug_reports reads every log for reports"; return 0; fi
	check "$@"
}
# check_core NAME CMD...: one of those core cases. With --set core=0 they
# are listed as skipped: CI runs them once, on the debug kernel (where any
# report the kernel prints fails them too), and the extended ones once, on
# the normal kernel.
check_core() {
	if [ "${RIG_core:-1}" = 0 ]; then ktap_skip "$1" "core case, left out of this run (core=0): it runs on the debug kernel"; return 0; fi
	check "$@"
}
ktap_exit() { [ "$KTAP_FAIL" = 0 ]; exit $?; }

# The helpers below keep their variables local: a check's own variables
# (a loop's $t, say) must survive the helpers it calls.
# wait_for SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
wait_for() {
	local left=$(( $1 * 2 )); shift
	while [ $left -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		usleep 500000; left=$((left - 1))
	done
	"$@"
}

# iperf3 CLIENT-ARGS...: one run, prints the receiver's Mbit/s; fails on 0.
iperf_mbits() {
	local tries=0 out mbits
	# The guest's server stays busy for a while after a client was killed.
	while out=$(iperf3 -f m "$@" 2>&1); [ $? != 0 ]; do
		tries=$((tries + 1))
		case "$out" in *"server is busy"*) [ $tries -lt 15 ] && { sleep 2; continue; } ;; esac
		echo "$out"; return 1
	done
	mbits=$(echo "$out" | awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") v = $i } END { print v }')
	echo "$mbits Mbit/s"
	awk -v v="$mbits" 'BEGIN { exit !(v > 0) }'
}

# dmesg_clean [LABEL]: stdin is a kernel log; fails on warnings, oopses, BUGs.
dmesg_clean() {
	local bad
	bad=$(grep -E 'WARNING:|BUG:|Oops|Call Trace|general protection|kernel panic|UBSAN|KASAN|refcount_t:|rcu_sched self-detected|soft lockup|hung_task' -)
	[ -z "$bad" ] && return 0
	echo "$bad" | head -n 20
	return 1
}

# guest_log_clean N FROM: guest N's kernel log from line FROM on holds no
# report. A guest that does not answer fails it: an empty log read from a
# dead guest is not a clean one.
guest_log_clean() {
	local out
	out=$(guest-exec "$1" "dmesg | tail -n +$2") || { echo "guest$1 did not answer: its log is unread"; return 1; }
	printf '%s\n' "$out" | dmesg_clean
}

# guest_up N: guest N (re)created from its configuration (after an xl
# destroy), up and reachable. The debug kernel boots about three times
# slower.
guest_up() {
	local d ip wait=90
	[ "${RIG_kernel:-}" != debug ] || wait=240
	xl create "/run/guest$1.cfg" >/dev/null 2>&1 || { echo "xl create guest$1 failed"; return 1; }
	d=$(xl domid "guest$1") || return 1
	wait_for $wait sh -c "[ \"\$(xenstore-read /local/domain/$d/data/rig-ready 2>/dev/null)\" = 1 ]" ||
		{ echo "guest$1 did not come up"; return 1; }
	eval ip=\$GUEST$1_IP
	wait_for 20 ping -c 1 -W 1 "$ip" >/dev/null
}

# guest_mem_kb: guest1's MemAvailable (kB).
guest_mem_kb() { guest-exec 1 "awk '/MemAvailable/ { print \$2 }' /proc/meminfo"; }

# guest_mem_back START_KB WHAT: guest1 has its memory back after WHAT
# (within 8 MB: one leaked connection holds about 2 MB of pages).
guest_mem_back() {
	local now
	sleep 5
	now=$(guest_mem_kb)
	echo "guest MemAvailable: $1 kB before $2, $now kB after"
	[ $(($1 - now)) -lt 8192 ]
}

# guest1's retransmitted TCP segments (/proc/net/snmp).
guest_retrans() { guest-exec 1 "awk '/^Tcp: [0-9]/ { print \$13 }' /proc/net/snmp"; }

# tcp_intact [KIB]: KIB (default 256) KiB over TCP from guest1 to a
# listener in dom0; the same bytes arrive. Guest1's retransmissions are
# shown, not checked: on a loaded rig its tail loss probes count as
# retransmissions. The listener's stdin never ends (a FIFO it holds open):
# busybox nc shuts its sending side at stdin's end, and the guest's nc
# stops at that.
tcp_intact() {
	local sent r0 r1
	sent=$(guest-exec 1 "dd if=/dev/urandom of=/tmp/tcp.tx bs=1k count=${1:-256} 2>/dev/null; md5sum < /tmp/tcp.tx")
	rm -f /tmp/tcp.in /tmp/tcp.rx && mkfifo /tmp/tcp.in
	(timeout 30 nc -l -p 5001 0<>/tmp/tcp.in | md5sum >/tmp/tcp.rx) &
	sleep 1
	r0=$(guest_retrans)
	guest-exec 1 "timeout 20 nc $DOM0_IP 5001 < /tmp/tcp.tx" || { echo "the transfer failed"; wait; return 1; }
	wait
	r1=$(guest_retrans)
	echo "md5 sent ${sent%% *}, received $(cut -d' ' -f1 /tmp/tcp.rx); segments guest1 retransmitted: $((r1 - r0))"
	[ "$sent" = "$(cat /tmp/tcp.rx)" ]
}

# reload_netfront [PARAM=V...]: guest1's netfront_opt unbound, unloaded and
# loaded again with the parameters; eth0 addressed and reachable again.
reload_netfront() {
	guest-exec 1 "echo vif-0 > /sys/bus/xen/drivers/netfront_opt/unbind && rmmod netfront_opt && insmod /rig/modules/netfront_opt.ko $*" ||
		return 1
	wait_for 20 guest-exec 1 "test -e /sys/class/net/eth0 && ip addr add $GUEST1_IP/24 dev eth0 && ip link set eth0 up" ||
		{ echo "eth0 did not come back"; return 1; }
	wait_for 10 ping -c 1 -W 1 "$GUEST1_IP"
}

# lent_packets: packets guest1's netfront_opt sent with their pages lent.
lent_packets() { guest-exec 1 "ethtool -S eth0 | awk '/tx_queue_[0-9]+_lent:/ { s += \$2 } END { print s + 0 }'"; }
