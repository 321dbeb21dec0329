# Leak counters shared by the stress and soak suites (sourced; busybox sh;
# N is the number of guests). What connections hold in dom0 and in Xen:
# vifs bound to netback_mq, their event channels, dom0's MemAvailable and
# each guest's grant entries that another domain has mapped or pinned.

# active_grants: "D:N ..." for every guest D, N the entries of its grant
# table active in Xen (mapped or pinned by another domain), from Xen's
# grant-table dump.
active_grants() {
	xl dmesg -c >/dev/null
	xl debug-keys g
	xl dmesg -c | awk '
		/grant-table for remote d[0-9]+/ { match($0, /remote d[0-9]+/); cur = substr($0, RSTART + 8, RLENGTH - 8); if (cur != 0) n[cur] += 0 }
		/^\(XEN\) +\[0x[0-9a-f]+\]/ && cur != 0 { n[cur]++ }
		END { for (d in n) printf "%s:%d ", d, n[d] }'
}
# mem_kb: dom0's MemAvailable with its clean caches dropped first (what
# the page cache holds moves by several MB from one reading to the next).
mem_kb() {
	sync; echo 3 >/proc/sys/vm/drop_caches
	awk '/MemAvailable/ { print $2 }' /proc/meminfo
}
vifs_bound() { ls /sys/bus/xen-backend/drivers/netback_mq | grep -c '^vif-'; }
vif_evtchns() { grep -c ' vif[0-9]' /proc/interrupts; }
# grants_by_guest: "guest1=N guest2=M" (by name: a guest started again has
# a new domain ID).
grants_by_guest() {
	g=$(active_grants)
	for n in $(seq 1 "$N"); do
		d=$(xl domid "guest$n" 2>/dev/null)
		printf 'guest%s=%s ' "$n" "$(echo "$g" | tr ' ' '\n' | awk -F: -v d="$d" '$1 == d { print $2 }')"
	done
}
# counts: one line: vifs, vif event channels, dom0 MemAvailable (kB), then
# each guest's active grants; taken with the vifs idle (static grants stay
# mapped, no copy pins anything between packets).
counts() {
	sleep 2
	echo "$(vifs_bound) $(vif_evtchns) $(mem_kb) $(grants_by_guest)"
}
show_counts() { # LABEL COUNTS
	set -- "$1" $2
	l=$1; shift
	echo "$l: vifs $1, vif event channels $2, dom0 MemAvailable $3 kB, grants active in Xen: $4 $5 $6 $7"
}
# same_counts BEFORE AFTER: everything equal but dom0's memory, which must
# be within 16 MB of what it was: dom0's free memory moves by up to 12 MB
# between readings with nothing leaked (xl's process per domain, logs on
# tmpfs, socket buffers), so it catches only a large leak; the exact
# checks are the counts, and kmemleak on the debug kernel.
# counts_read COUNTS: every figure of a counts line (or of a
# grants_by_guest line) was read: a guest whose grant count could not be
# parsed reads "guestN=", which two equal lines must not hide.
counts_read() {
	case "$1" in guest*) ;; *) echo "$1" | grep -Eq '^[0-9]+ [0-9]+ [0-9]+ ' || return 1 ;; esac
	! echo "$1" | grep -Eq 'guest[0-9]+=( |$)'
}
same_counts() {
	b=$1 a=$2
	counts_read "$b" && counts_read "$a" || { echo "counts not read: '$b' / '$a'"; return 1; }
	set -- $b; bm=$3; shift 3; brest="$*"
	set -- $a; am=$3; shift 3; arest="$*"
	[ "$(echo "$b" | cut -d' ' -f1,2)" = "$(echo "$a" | cut -d' ' -f1,2)" ] && [ "$brest" = "$arest" ] &&
		[ $((bm - am)) -lt 16384 ]
}

guest_mem_of() { guest-exec "$1" "sync; echo 3 >/proc/sys/vm/drop_caches; awk '/MemAvailable/ { print \$2 }' /proc/meminfo"; }

# save_guests_mem: each guest's MemAvailable now, for guests_mem_back.
save_guests_mem() {
	for n in $(seq 1 "$N"); do eval "gmem$n=\$(guest_mem_of $n)"; done
}
# guest_runs_ours N: guest N runs netfront_opt (rig.frontend rust, or
# mixed and N even).
guest_runs_ours() {
	case "$RIG_frontend" in rust) true ;; mixed) [ $(($1 % 2)) = 0 ] ;; *) false ;; esac
}
# guests_mem_back: every netfront_opt guest has within 8 MB of the memory
# it had at save_guests_mem (one leaked connection holds about 2 MB of
# pages). xen-netfront guests' figures are shown, not checked: the C
# driver loses memory across detaches under traffic (Documentation/
# security.md, "Stress and faults").
guests_mem_back() {
	rc=0
	for n in $(seq 1 "$N"); do
		eval was=\$gmem$n
		now=$(guest_mem_of "$n")
		if guest_runs_ours "$n"; then
			echo "guest$n (netfront_opt) MemAvailable: $was kB before, $now kB after"
			[ $((was - now)) -lt 8192 ] || rc=1
		else
			echo "guest$n (xen-netfront, not checked) MemAvailable: $was kB before, $now kB after"
		fi
	done
	return $rc
}
# counts_back BASE: the counts now, shown beside BASE, and the same. A
# destroyed domain's toolstack processes and Xen's deferred teardown give
# their memory back over several seconds, so a mismatch is read again
# every 3 s for up to 30 s before it counts: a leak does not come back.
counts_back() {
	tries=0
	after=$(counts)
	while ! same_counts "$1" "$after" && [ $tries -lt 10 ]; do
		sleep 3; tries=$((tries + 1)); after=$(counts)
	done
	show_counts "before" "$1"; show_counts "after" "$after"
	[ $tries = 0 ] || echo "(read $((tries + 1)) times)"
	same_counts "$1" "$after" || { echo "not everything was given back"; return 1; }
}
# dom0_log_clean: dom0's kernel log since this file was sourced is clean.
dom0_log_start=$(($(dmesg | wc -l) + 1))
dom0_log_clean() { dmesg | tail -n +"$dom0_log_start" | dmesg_clean; }
