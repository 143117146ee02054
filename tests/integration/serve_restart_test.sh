#!/usr/bin/env bash
# `forkvm serve` restarted on the same data directory finds its VMs again:
# two VMs are made, the server is SIGKILLed, one VM's VMM is SIGKILLed while
# no server runs, and a new server is started. The surviving VM keeps
# answering execs; the other is `lost` and says why. Then the surviving VM's
# VMM is SIGKILLed under the running server, and it becomes `lost` too.
# The creates restore in standby VMMs (api/engine/vmm_pool.hpp, on by
# default): claimed ones outlive the server like any VMM, unclaimed ones die
# with it. (A message is matched with [[ ]], not `| grep -q`: under pipefail,
# grep leaving early can fail the pipeline with python's broken pipe.)
#
#   tests/integration/serve_restart_test.sh BUILD_DIR     (needs a KVM that runs guests)
set -uo pipefail
source "$(dirname "$0")/serve_lib.sh" "${1:?build dir}" restart
vmm_pid() { awk '$1 == "pid" { print $2 }' "$data/vms/$1/runtime"; }

start_serve
say "creating two VMs (the first boots the image for the golden snapshot)"
a=$(create_vm '{}') || fail "create A"
vms+=("$a")
b=$(create_vm '{}') || fail "create B"
vms+=("$b")
say "created $a and $b"
exec_echo "$a" before || fail "exec in A before the restart"
exec_echo "$b" before || fail "exec in B before the restart"
pid_a=$(vmm_pid "$a") pid_b=$(vmm_pid "$b")
[[ -n $pid_a && -n $pid_b ]] || fail "no runtime files naming the VMMs"
grep -q "restores in standby VMM $pid_b" "$data/serve.log" \
  || fail "B did not restore in a standby VMM: $(grep -a 'restores in' "$data/serve.log")"
say "PASS B restored in a standby VMM (pid $pid_b)"
# The unclaimed standbys of server $1 (a claimed one keeps its command line: skip A's and B's).
standbys() { pgrep -f -- "restore --standby /run/forkvm/standby-$1/" | grep -vxF -e "$pid_a" -e "$pid_b"; }
[[ -n $(standbys "$serve") ]] || fail "no standby VMMs wait beside the server"
old_serve=$serve

say "SIGKILL serve (pid $serve), then B's VMM (pid $pid_b)"
kill -9 "$serve"; wait "$serve" 2>/dev/null; serve=
kill -0 "$pid_a" || fail "A's VMM died with the server"
for _ in $(seq 50); do [[ -z $(standbys "$old_serve") ]] && break; sleep 0.1; done
[[ -z $(standbys "$old_serve") ]] || fail "standby VMMs outlived their server: $(standbys "$old_serve")"
say "PASS the unclaimed standby VMMs died with the server, the claimed ones did not"
kill -9 "$pid_b"
for _ in $(seq 50); do kill -0 "$pid_b" 2>/dev/null || break; sleep 0.1; done

start_serve
[[ $(vm_state "$a") == running ]] || fail "A is not running after the restart"
exec_echo "$a" after || fail "exec in A after the restart"
say "PASS A answers an exec after the server restarted"
r=$(API_TIMEOUT=30 api GET "/v1/vms/$b")
[[ $(field state <<<"$r") == lost ]] || fail "B is not lost: $r"
[[ $(field message <<<"$r") == *"gone when the server restarted"* ]] || fail "B's message does not say why: $r"
say "PASS B is lost: $(field message <<<"$r")"
r=$(curl -s -m 60 -H "Authorization: Bearer $key" -d '{"command":"true"}' "$base/v1/vms/$b/exec-await")
grep -q "is lost" <<<"$r" || fail "an exec in lost B does not say it is lost: $r"

say "SIGKILL A's VMM (pid $pid_a) under the running server"
kill -9 "$pid_a"
for _ in $(seq 100); do
  r=$(API_TIMEOUT=30 api GET "/v1/vms/$a")
  [[ $(field state <<<"$r") == lost ]] && break
  sleep 0.2
done
[[ $(field state <<<"$r") == lost ]] || fail "A is not lost after its VMM was killed: $r"
[[ $(field message <<<"$r") == *"ended unexpectedly"* ]] || fail "A's message does not say why: $r"
say "PASS A is lost: $(field message <<<"$r")"
say "serve restart: all checks passed"
