#!/usr/bin/env bash
# idleTimeoutSeconds: a VM created with a short idle timeout and left alone
# (no API calls; its guest sends nothing) is suspended by `forkvm serve`
# itself, and the next exec resumes it transparently.
#
#   tests/integration/serve_idle_test.sh BUILD_DIR     (needs a KVM that runs guests)
set -uo pipefail
source "$(dirname "$0")/serve_lib.sh" "${1:?build dir}" idle

start_serve
say "creating a VM with idleTimeoutSeconds 15 (boots the image for the golden snapshot)"
vm=$(create_vm '{"idleTimeoutSeconds":15}') || fail "create"
vms+=("$vm")
say "created $vm"
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo awake"}') && [[ $(field stdout <<<"$r") == awake ]] \
  || fail "first exec: $r"
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
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo resumed"}') && [[ $(field stdout <<<"$r") == resumed ]] \
  || fail "exec after the idle suspend: $r"
[[ $(vm_state "$vm") == running ]] || fail "not running after the exec"
say "PASS the next exec resumed it"
