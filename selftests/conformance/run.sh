#!/bin/sh
# The kernel's driver conformance suite (tools/testing/selftests/drivers/net,
# from our kernel source, installed at /rig/ksft by scripts/conformance-
# bundle) in its hardware mode, at both ends of one vif:
#   - netfront: the device under test is guest1's eth0, the remote is dom0;
#   - netback: the device under test is dom0's vif for guest1, the remote is
#     guest1.
# The vif leaves the bridge and carries dom0's addresses itself, so each
# side's remote interface is the other driver's device. Commands for the
# remote go through rexec-server (REMOTE_TYPE=xenrig, remote_xenrig.py).
# One KTAP result per test program and side: it fails if any case failed;
# it is a SKIP when every case skipped or was an expected failure (each
# names the feature the device lacks); its cases are shown as diagnostics.
# RIG_conformance_tests (rig --set conformance_tests=a:b) picks programs.
. "$(dirname "$0")/../lib.sh"

tests=$(echo "${RIG_conformance_tests:-ping:stats:queues:napi_id:napi_threaded:hds:ring_reconfig:xdp:so_txtime:macsec:netpoll_basic:shaper:psp:gro}" | tr : ' ')
sides="netfront netback"
n=0; for t in $tests; do n=$((n + 2)); done
ktap_plan $((n + 2))
dom0_log_start=$(($(dmesg | wc -l) + 1))
dom0_log_clean() { dmesg | tail -n +"$dom0_log_start" | dmesg_clean; }
guest_log_clean_all() { guest_log_clean 1 1; }

dom0_v4=10.99.0.1 guest_v4=10.99.0.11 dom0_v6=fd99::1 guest_v6=fd99::11
domid=$(xl domid guest1)
vif=vif$domid.0
ksft=/rig/ksft/drivers/net
per_test_timeout=${RIG_conformance_timeout:-900}

# The vif out of the bridge, dom0's addresses on it (v4 and v6 at both ends).
# (/usr/bin/ip: busybox sh runs its own ip applet first, which lacks nodad.)
# IPv6 addresses kept across link down/up (the tests take the link down;
# by default that removes them).
setup_link() {
	keep=net.ipv6.conf.all.keep_addr_on_down
	sysctl -qw "$keep=1" && guest-exec 1 "sysctl -qw $keep=1" &&
	/usr/bin/ip link set "$vif" nomaster &&
	/usr/bin/ip addr flush dev xenbr0 &&
	/usr/bin/ip addr add "$dom0_v4/24" dev "$vif" &&
	/usr/bin/ip -6 addr add "$dom0_v6/64" dev "$vif" nodad &&
	/usr/bin/ip link set "$vif" up &&
	guest-exec 1 "/usr/bin/ip -6 addr add $guest_v6/64 dev eth0 nodad" &&
	wait_for 20 ping -c 1 -W 1 "$guest_v4" &&
	wait_for 20 ping -c 1 -W 1 "$guest_v6"
}
# netconsole's configfs (netpoll_basic.py) in both domains.
setup_netconsole() {
	for c in "sh -c" "guest-exec 1"; do
		$c 'modprobe netconsole && { grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs none /sys/kernel/config; }' ||
			return 1
	done
}
# start_rexec: the remote end of both sides, in dom0 and in guest1.
start_rexec() {
	setsid python3 /rig/selftests/conformance/rexec-server </dev/null >/run/rexec.log 2>&1 &
	guest-exec 1 "setsid rexec-server </dev/null >/tmp/rexec.log 2>&1 &" >/dev/null &&
	wait_for 30 sh -c "echo 'import socket; socket.create_connection((\"$guest_v4\", 4790), 2)' | python3" &&
	guest-exec 1 "echo 'import socket; socket.create_connection((\"$dom0_v4\", 4790), 2)' | python3"
}

# test_env NETIF LOCAL_V4 REMOTE_V4 LOCAL_V6 REMOTE_V6: the hardware-mode
# variables (drivers/net/README.rst), the remote reached at REMOTE_V4;
# KSFT_MACHINE_SLOW: the kernel's own switch for emulated machines (TCG
# here), which widens the tests' timing margins.
test_env() {
	echo "NETIF=$1 LOCAL_V4=$2 REMOTE_V4=$3 LOCAL_V6=$4 REMOTE_V6=$5 REMOTE_TYPE=xenrig REMOTE_ARGS=$3 KSFT_MACHINE_SLOW=1"
}

# judge PROGRAM-OUTPUT-FILE EXIT-CODE: prints the cases as diagnostics,
# then on a failure "failed CASE..." (the cases that failed for a reason of
# their own), then "verdict ok ...", "verdict skip REASON" or
# "verdict fail REASON".
# A case that failed only because the device refused, with EOPNOTSUPP, an
# operation neither Xen driver offers counts as skipped for that reason
# (listed as "not offered"): the tests below have no skip path for it.
#   - changing the queue count (ethtool -L, channels_set): a netif
#     frontend picks it when it connects; the backend cannot change it;
#   - resizing the rings (ethtool -G, rings_set): a netif ring is one page.
# Any other failure fails the program, and so does one that stopped short
# of its plan.
judge() {
	awk -v rc="$2" '
		function not_offered(b) {
			if (b !~ /Operation not supported/) return ""
			if (b ~ /CMD: ethtool -L |channels_set|Can.t set \{.*combined-count/) return "changing the queue count (ethtool -L)"
			if (b ~ /CMD: ethtool -G |rings_set/) return "resizing the rings (ethtool -G)"
			return ""
		}
		{ print "# " $0 }
		/^1\.\.[0-9]+$/ { plan = substr($0, 4) + 0 }
		/^ok [0-9]+ .*# SKIP/ { skip++; if (!why) why = $0; block = ""; next }
		/^ok [0-9]+ .*# XFAIL/ { xfail++; if (!why) why = $0; block = ""; next }
		/^ok [0-9]+ / { pass++; block = ""; next }
		# A case that skipped, then failed its clean-up only because the
		# device refused to restore what it never changed.
		/^not ok [0-9]+ .*# SKIP/ && block ~ /Operation not supported/ { skip++; absorbed++; if (!why) why = $0; block = ""; next }
		/^not ok [0-9]+ / {
			r = not_offered(block); block = ""
			if (r != "") { nofr++; absorbed++; printf "# (case above: not offered: %s)\n", r; if (!why) why = "not offered: " r; next }
			fail++; failed = failed " " $4; next
		}
		{ block = block "\n" $0 }
		END {
			total = pass + fail + skip + xfail + nofr
			sub(/^ok [0-9]+ /, "", why)
			# ksft exits 1 for any "not ok", absorbed ones too.
			if (fail || (rc != 0 && !absorbed) || total != plan) {
				if (failed != "") printf "failed%s\n", failed
				printf "verdict fail %d of %d cases failed (exit %d)\n", fail, total, rc
			}
			else if (!pass)
				printf "verdict skip %d cases, none ran: %s\n", total, why
			else
				printf "verdict ok %d passed, %d skipped, %d expected failures, %d not offered\n", pass, skip, xfail, nofr
		}' "$1"
}
# report SIDE TEST OUTPUT RC SECONDS [FIRST-RUN-FAILURES]: the program's
# KTAP result; FIRST-RUN-FAILURES names the cases that failed a first run
# (see run_program).
report() {
	v=$(judge "$3" "$4" | tee /tmp/judged | sed -n 's/^verdict //p')
	grep -v '^verdict \|^failed ' /tmp/judged
	echo "# $1 $2: $5 s"
	again=${6:+ (passed on a second run; the first failed: $6)}
	case "$v" in
	ok*) ktap_ok "$1 $2.py: ${v#ok }$again" ;;
	skip*) ktap_skip "$1 $2.py" "${v#skip }$again" ;;
	*) ktap_fail "$1 $2.py: ${v#fail }" ;;
	esac
}

if ! out=$(setup_link 2>&1 && setup_netconsole 2>&1 && start_rexec 2>&1); then
	echo "$out" | sed 's/^/# /'
	for t in $tests; do for s in $sides; do ktap_fail "$s $t.py # the link or the remote did not come up"; done; done
	ktap_fail "dom0 dmesg clean"; ktap_fail "guest1 dmesg clean"
	ktap_exit
fi

# unmet TEST: why TEST cannot run on this rig's kernel, if it cannot:
#   - shaper.py asks for the net-shaper netlink family before its first
#     case: the kernel has it (CONFIG_NET_SHAPER) only when a driver with
#     shaping selects it, and neither Xen driver offers shaping;
#   - xdp.py's programs need the kernel's BTF (CONFIG_DEBUG_INFO_BTF), which
#     the rig's kernels leave out: debug info for every object would add a
#     third to the kernel builds.
unmet() {
	case "$1" in
	shaper)
		python3 -c "
import sys; sys.path.insert(0, '$ksft')
from lib.py import NetshaperFamily
NetshaperFamily()" >/dev/null 2>&1 ||
			echo "the kernel has no net-shaper netlink family: neither driver offers shaping"
		;;
	xdp) [ -e /sys/kernel/btf/vmlinux ] || echo "the rig's kernel has no BTF (CONFIG_DEBUG_INFO_BTF), which the test's XDP programs need" ;;
	esac
}

# run_side SIDE TEST: runs TEST.py once with SIDE's device under test
# (netfront: guest1's eth0, dom0 the remote; netback: dom0's vif, guest1
# the remote); its output in /tmp/conf.out, its exit code returned.
run_side() {
	if [ "$1" = netfront ]; then
		GUEST_EXEC_TIMEOUT=$((per_test_timeout + 60)) guest-exec 1 \
			"cd $ksft && $(test_env eth0 "$guest_v4" "$dom0_v4" "$guest_v6" "$dom0_v6") timeout $per_test_timeout python3 ./$2.py 2>&1" \
			>/tmp/conf.out
	else
		(cd $ksft && env $(test_env "$vif" "$dom0_v4" "$guest_v4" "$dom0_v6" "$guest_v6") timeout "$per_test_timeout" python3 "./$2.py") \
			>/tmp/conf.out 2>&1
	fi
}
# run_program SIDE TEST: one KTAP result. Some upstream cases count packets
# against timing margins sized for hardware (gro.py's, even with
# KSFT_MACHINE_SLOW); under TCG one of ~300 such cases misses now and then.
# A program with failed cases runs once more: the result passes only if that
# second run passes whole, and it names the cases the first run failed.
run_program() {
	start=$(date +%s)
	run_side "$1" "$2"
	rc=$?
	first=""
	judge /tmp/conf.out "$rc" >/tmp/judged
	if grep -q '^verdict fail' /tmp/judged; then
		first=$(sed -n 's/^failed //p' /tmp/judged)
		grep -E '^# (not ok|# Totals)' /tmp/judged | sed 's/^# /# first run: /'
		run_side "$1" "$2"
		rc=$?
	fi
	report "$1" "$2" /tmp/conf.out "$rc" $(($(date +%s) - start)) "$first"
}

for t in $tests; do
	why=$(unmet "$t")
	if [ -n "$why" ]; then
		for s in $sides; do ktap_skip "$s $t.py" "$why"; done
		continue
	fi
	for s in $sides; do run_program "$s" "$t"; done
done
check "dom0 dmesg clean" dom0_log_clean
check "guest1 dmesg clean" guest_log_clean_all
ktap_exit
