#!/bin/sh
# A measurement, not a test: guest1's free memory across detach/attach
# cycles of its vif under traffic, with whichever backend and frontend the
# rig runs, to tell a frontend's loss from a backend's. Run it in dom0:
#   scripts/rig --backend c --frontend c --script selftests/stress/frontend-memory.sh
#   scripts/rig --backend rust --frontend c --script selftests/stress/frontend-memory.sh
# (--set stress_cycles=N, default 10). Prints MemAvailable before and after
# (caches dropped) and the warnings the guest logged; exits 1 only if a
# cycle failed.
. /rig/selftests/lib.sh
. /rig/selftests/stress/counts.sh
CYCLES=${RIG_stress_cycles:-10}
ip=$GUEST1_IP
mac=$(xl network-list guest1 | awk 'NR == 2 { print $3 }')
drv=$(guest-exec 1 'basename $(readlink /sys/class/net/eth0/device/driver)')
before=$(guest_mem_of 1)
i=0
while [ $i -lt "$CYCLES" ]; do
	i=$((i + 1))
	iperf3 -c "$ip" -t 30 >/dev/null 2>&1 &
	usleep 300000
	xl network-detach guest1 0 || { echo "cycle $i: detach failed"; kill $!; exit 1; }
	wait_for 20 guest-exec 1 '! test -e /sys/class/net/eth0' || { echo "cycle $i: eth0 still there"; kill $!; exit 1; }
	kill $! 2>/dev/null; wait $! 2>/dev/null
	xl network-attach guest1 "mac=$mac" bridge=xenbr0 || { echo "cycle $i: attach failed"; exit 1; }
	wait_for 20 guest-exec 1 "test -e /sys/class/net/eth0 && ip addr add $ip/24 dev eth0 && ip link set eth0 up" ||
		{ echo "cycle $i: eth0 did not come back"; exit 1; }
	wait_for 10 ping -c 1 -W 1 "$ip" || { echo "cycle $i: no ping after attach"; exit 1; }
done
after=$(guest_mem_of 1)
echo "frontend-memory: backend $RIG_backend, guest1 frontend $drv, $CYCLES cycles under traffic:" \
	"MemAvailable $before kB before, $after kB after ($(((before - after) / CYCLES)) kB lost per cycle)"
echo "frontend-memory: guest1 warnings: $(guest-exec 1 'dmesg | grep -c "WARNING:"')"
guest-exec 1 'dmesg | grep -m 1 -A 3 "WARNING:"' | cut -c1-120
