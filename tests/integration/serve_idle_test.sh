#!/usr/bin/env bash
# idleTimeoutSeconds: a VM created with a short idle timeout and left alone
# (no API calls; its guest sends nothing) is suspended by `forkvm serve`
# itself, and the next exec resumes it transparently. That resume's VMM is
# SIGKILLed as soon as it appears: the engine restores once more in another
# VMM process, and the exec still answers, with the file written before.
#
#   tests/integration/serve_idle_test.sh BUILD_DIR     (needs a KVM that runs guests)
set -uo pipefail
SERVE_ARGS="--standby-vmms 0"  # the resume must be a new process, found by its command line
source "$(dirname "$0")/serve_lib.sh" "${1:?build dir}" idle

start_serve
say "creating a VM with idleTimeoutSeconds 15 (boots the image for the golden snapshot)"
vm=$(create_vm '{"idleTimeoutSeconds":15}') || fail "create"
vms+=("$vm")
say "created $vm"
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo awake"}') && [[ $(field stdout <<<"$r") == awake ]] \
  || fail "first exec: $r"
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo kept >/root/kept && sync"}') \
  && [[ $(field statusCode <<<"$r") == 0 ]] || fail "writing /root/kept: $r"
say "first exec answered; now leaving it alone"
start=$(date +%s)
# 15 s of quiet, a check every 5 s, then the save: well within 5 minutes even under the rig.
while (($(date +%s) - start < 300)); do
  state=$(vm_state "$vm")
  [[ $state == suspended ]] && break
  [[ $state == lost ]] && fail "the VM was lost while idle"
  sleep 1
done
[[ $(vm_state "$vm") == suspended ]] || fail "not suspended after $(($(date +%s) - start)) s idle"
say "PASS suspended by the server after $(($(date +%s) - start)) s without activity"
# The VMM's argv[0] is /proc/self/exe: match the rest of its command line.
(
  while :; do
    pid=$(pgrep -f -- "restore --snapshot $data/vms/$vm/suspended") \
      && { kill -9 $pid && echo "$pid" >"$data/killed"; exit; }
    sleep 0.01
  done
) &
killer=$!
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"cat /root/kept; echo resumed"}')
kill "$killer" 2>/dev/null
wait "$killer" 2>/dev/null
[[ $(field stdout <<<"$r") == $'kept\nresumed' ]] || fail "exec after the idle suspend: $r"
[[ $(vm_state "$vm") == running ]] || fail "not running after the exec"
[[ -s $data/killed ]] || fail "the resume's VMM was never seen, so never killed"
grep -q "VM $vm: restoring it once more" "$data/serve.log" || fail "the killed restore was not retried"
say "PASS the next exec resumed it, in a second VMM after the first (pid $(cat "$data/killed")) was killed"
