#!/usr/bin/env bash
# `forkvm serve` restarted on the same data directory finds its VMs again:
# two VMs are made, the server is SIGKILLed, one VM's VMM is SIGKILLed while
# no server runs, and a new server is started. The surviving VM keeps
# answering execs; the other is `lost` and says why. Then the surviving VM's
# VMM is SIGKILLed under the running server, and it becomes `lost` too.
#
#   tests/integration/serve_restart_test.sh BUILD_DIR     (needs a KVM that runs guests)
set -uo pipefail
forkvm=$(cd "${1:?build dir}" && pwd)/forkvm
data=$(mktemp -d -p /var/tmp forkvm-restart.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
base=http://127.0.0.1:$port
serve=
a= b=
cleanup() {
  for id in $a $b; do curl -s -m 120 -X DELETE -H "Authorization: Bearer $key" "$base/v1/vms/$id" >/dev/null; done
  [[ -n $serve ]] && { kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
  rm -rf "$data"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- serve.log (tail)"; tail -30 "$data/serve.log"; exit 1; }

start_serve() {
  "$forkvm" serve --listen 127.0.0.1:"$port" --data "$data" --vm-mem 512 >>"$data/serve.log" 2>&1 &
  serve=$!
  for _ in $(seq 300); do curl -sf -m 5 "$base/healthz" >/dev/null && return 0; sleep 0.2; done
  fail "serve did not answer /healthz"
}
# api METHOD PATH [BODY]: the response body on stdout; fails on a non-200 answer.
api() {
  local out code
  out=$(curl -s -m 900 -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $key" ${3:+-d "$3"} "$base$2")
  code=${out##*$'\n'}
  printf '%s' "${out%$'\n'*}"
  [[ $code == 200 ]]
}
field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }
vmm_pid() { awk '$1 == "pid" { print $2 }' "$data/vms/$1/runtime"; }
exec_echo() {  # exec_echo VM WORD: the VM answers an exec with WORD
  local r
  r=$(api POST "/v1/vms/$1/exec-await" "{\"command\":\"echo $2\"}") || return 1
  [[ $(field stdout <<<"$r") == "$2" ]]
}

key=$("$forkvm" keys create --data "$data") || fail "keys create"
start_serve
echo "creating two VMs (the first boots the image for the golden snapshot)"
a=$(api POST /v1/vms '{}' | field id) && [[ -n $a ]] || fail "create A"
b=$(api POST /v1/vms '{}' | field id) && [[ -n $b ]] || fail "create B"
exec_echo "$a" before || fail "exec in A before the restart"
exec_echo "$b" before || fail "exec in B before the restart"
pid_a=$(vmm_pid "$a") pid_b=$(vmm_pid "$b")
[[ -n $pid_a && -n $pid_b ]] || fail "no runtime files naming the VMMs"

echo "SIGKILL serve (pid $serve), then B's VMM (pid $pid_b)"
kill -9 "$serve"; wait "$serve" 2>/dev/null; serve=
kill -0 "$pid_a" || fail "A's VMM died with the server"
kill -9 "$pid_b"
for _ in $(seq 50); do kill -0 "$pid_b" 2>/dev/null || break; sleep 0.1; done

start_serve
[[ $(api GET "/v1/vms/$a" | field state) == running ]] || fail "A is not running after the restart"
exec_echo "$a" after || fail "exec in A after the restart"
echo "PASS A answers an exec after the server restarted"
r=$(api GET "/v1/vms/$b")
[[ $(field state <<<"$r") == lost ]] || fail "B is not lost: $r"
field message <<<"$r" | grep -q "gone when the server restarted" || fail "B's message does not say why: $r"
echo "PASS B is lost: $(field message <<<"$r")"
r=$(curl -s -m 60 -H "Authorization: Bearer $key" -d '{"command":"true"}' "$base/v1/vms/$b/exec-await")
grep -q "is lost" <<<"$r" || fail "an exec in lost B does not say it is lost: $r"

echo "SIGKILL A's VMM (pid $pid_a) under the running server"
kill -9 "$pid_a"
for _ in $(seq 100); do
  r=$(api GET "/v1/vms/$a")
  [[ $(field state <<<"$r") == lost ]] && break
  sleep 0.2
done
[[ $(field state <<<"$r") == lost ]] || fail "A is not lost after its VMM was killed: $r"
field message <<<"$r" | grep -q "ended unexpectedly" || fail "A's message does not say why: $r"
echo "PASS A is lost: $(field message <<<"$r")"
echo "serve restart: all checks passed"
