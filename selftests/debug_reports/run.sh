#!/bin/sh
# debug_reports suite: run last, on the debug kernel (scripts/rig --kernel
# debug, kernel/config.debug), after the suites that moved traffic. Fails on
# any report the debug kernel printed in dom0 or in a guest, at any time
# during the run: KFENCE, SLUB red zone and poison checks, lockdep, sleeping
# in atomic context, UBSAN, list and object debugging, Rust panics, BUGs,
# WARNINGs, hung tasks. Then asks kmemleak for unreferenced objects in dom0
# and in each running guest. Each report is shown.
. /rig/selftests/lib.sh
ktap_plan 4

# Any line a debug option prints when it catches something (the first line
# of each report), and the plain BUG/oops/panic family.
export REPORT_RE='BUG:|BUG [^ ]+ \((Not t|T)ainted\)|WARNING:|UBSAN:|ODEBUG:|KFENCE:|kernel BUG at|list_(add|del) corruption|general protection fault|Oops|Kernel panic|panicked at|INFO: task .* blocked for more than|soft lockup|workqueue lockup|unregister_netdevice: waiting|refcount_t:|Poison overwritten|Redzone overwritten|Object already free|Freepointer corrupt|Bad page state|suspicious RCU usage|Invalid wait context|sleeping function called from invalid context|scheduling while atomic'

# show_reports NAME: stdin is a kernel log (one or more boots); prints each
# report with the 30 lines after its first line and fails if there was one.
# Reports a kernel printed while booting, before the rig loaded a network
# driver ("rig: loading the network ..." in rig/dom0-init and guest-init),
# come from the kernel itself: listed by their first line, not counted.
show_reports() {
	awk -v name="$1" '
		BEGIN { re = ENVIRON["REPORT_RE"] }
		/Linux version [0-9]/ { booting = 1 }
		/rig: loading the network (backend|frontend)/ { booting = 0 }
		$0 ~ re && booting { nb++; if (nb <= 10) print "boot (not counted): " $0; next }
		$0 ~ re { n++; if (n <= 5) { left = 30; print "--- " name ": report " n } }
		left > 0 { print; left-- }
		END {
			if (nb) print name ": " nb " report line(s) while booting, before any network driver"
			if (n) { print name ": " n " report line(s)"; exit 1 }
			print name ": no report"
		}'
}

# On the debug kernel every check runs: a kmemleak missing there is a
# failure of its checks (the kernel's configuration is ours), not a skip.
debug_kernel() {
	[ "${RIG_kernel:-}" = debug ]
}
if ! debug_kernel; then
	for t in "dom0: no debug-kernel report" "guests: no debug-kernel report" \
		"dom0: kmemleak finds no leak" "guests: kmemleak finds no leak"; do
		ktap_skip "$t" "not the debug kernel (scripts/rig --kernel debug)"
	done
	ktap_exit
fi

dom0_reports() { dmesg | show_reports dom0; }
check "dom0: no debug-kernel report (kernel log of the whole run)" dom0_reports

# The guests' consoles (xenconsoled keeps each one, including guests the
# suites destroyed and started again) at the guests' console loglevel,
# which shows every report.
guest_consoles() {
	rc=0
	for f in /var/log/xen/console/guest-*.log; do
		[ -e "$f" ] || continue
		tr -d '\r' <"$f" | show_reports "$(basename "$f" .log)" || rc=1
	done
	return $rc
}
check "guests: no debug-kernel report (every guest console of the run)" guest_consoles

# kmemleak: two scans (an object is reported once it stayed unreferenced
# for 5 s), then the list of suspects.
# A kmemleak that turned itself off refuses the scan (and lists nothing):
# that fails, it does not pass.
KMEMLEAK_SCAN='[ -e /sys/kernel/debug/kmemleak ] || { echo "no /sys/kernel/debug/kmemleak on the debug kernel"; exit 1; };
	echo scan >/sys/kernel/debug/kmemleak || { echo "kmemleak refused the scan (off?)"; dmesg | grep -i kmemleak | tail -n 3; exit 1; };
	sleep 6; echo scan >/sys/kernel/debug/kmemleak || { echo "kmemleak refused the second scan"; exit 1; };
	n=$(grep -c "^unreferenced object" /sys/kernel/debug/kmemleak);
	head -n 120 /sys/kernel/debug/kmemleak;
	echo "kmemleak: $n unreferenced object(s)"; [ "$n" = 0 ]'
check "dom0: kmemleak finds no leak" sh -c "$KMEMLEAK_SCAN"

# Guests an earlier suite destroyed (the netback suite's last case) are
# gone with their memory: named, not scanned; at least one must be.
guests_kmemleak() {
	rc=0 scanned=0
	for n in $(seq 1 "$RIG_GUESTS"); do
		if ! xl domid "guest$n" >/dev/null 2>&1; then
			echo "guest$n: destroyed by an earlier suite, not scanned"
			continue
		fi
		echo "guest$n:"
		scanned=$((scanned + 1))
		GUEST_EXEC_TIMEOUT=300 guest-exec "$n" "$(echo "grep -q ' /sys/kernel/debug ' /proc/mounts || mount -t debugfs debugfs /sys/kernel/debug; $KMEMLEAK_SCAN" | tr '\n\t' '  ')" || rc=1
	done
	[ "$scanned" -gt 0 ] || { echo "no guest left to scan"; rc=1; }
	return $rc
}
check "guests: kmemleak finds no leak" guests_kmemleak
ktap_exit
