#!/bin/sh
# Baseline suite: the loaded backend/frontend pair carries traffic between
# dom0 and guest 1, and survives xl network-detach/attach.
. /rig/selftests/lib.sh
G=$GUEST1_IP
ktap_plan 11

check "guest1 eth0 up" wait_for 10 guest-exec 1 'grep -qx up /sys/class/net/eth0/operstate'
vif_bridged() { ip -o link show | grep -E "vif[0-9]+\.0.*[<,]UP[,>].*master xenbr0"; }
check "dom0 vif up and bridged" vif_bridged
check "ping dom0 -> guest" ping -c 3 -W 2 "$G"
check "ping guest -> dom0" guest-exec 1 "ping -c 3 -W 2 $DOM0_IP"
check "iperf3 guest rx (dom0 -> guest)" iperf_mbits -c "$G" -t 3
check "iperf3 guest tx (guest -> dom0)" iperf_mbits -c "$G" -t 3 -R

mac=$(xl network-list guest1 | awk 'NR == 2 { print $3 }')
check "xl network-detach" xl network-detach guest1 0
check "guest eth0 gone after detach" wait_for 10 guest-exec 1 '! test -e /sys/class/net/eth0'
check "xl network-attach" xl network-attach guest1 "mac=$mac" bridge=xenbr0
check "guest eth0 back after attach" wait_for 20 guest-exec 1 \
	"test -e /sys/class/net/eth0 && ip addr add $G/24 dev eth0 && ip link set eth0 up"
traffic_again() { wait_for 10 ping -c 1 -W 1 "$G" && iperf_mbits -c "$G" -t 2; }
check "ping and iperf3 after re-attach" traffic_again
ktap_exit
