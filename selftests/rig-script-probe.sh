#!/bin/sh
# Run by scripts/test through `scripts/rig --script`: proves that a script
# runs in dom0 with the rig's environment, that guest-exec returns a guest's
# output and exit code, and that the script's exit code (3) comes back.
echo "probe: dom0=$DOM0_IP guests=$GUEST_IPS"
echo "probe: guest says $(guest-exec 1 'echo hello from $(hostname)')"
guest-exec 1 'exit 7'
echo "probe: guest-exec exit code $?"
exit 3
