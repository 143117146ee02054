#!/usr/bin/env bash
# idleTimeoutSeconds: a VM created with a short idle timeout and left alone
# (no API calls; its guest sends nothing) is suspended by `forkvm serve`
# itself, and the next exec resumes it transparently.
#
#   tests/integration/serve_idle_test.sh BUILD_DIR     (needs a KVM that runs guests)
set -uo pipefail
forkvm=$(cd "${1:?build dir}" && pwd)/forkvm
data=$(mktemp -d -p /var/tmp forkvm-idle.XXXXXX)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
base=http://127.0.0.1:$port
serve=
vm=
cleanup() {
  [[ -n $vm ]] && curl -s -m 120 -X DELETE -H "Authorization: Bearer $key" "$base/v1/vms/$vm" >/dev/null
  [[ -n $serve ]] && { kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
  rm -rf "$data"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- serve.log (tail)"; tail -30 "$data/serve.log"; exit 1; }
api() {
  local out code
  out=$(curl -s -m 900 -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $key" ${3:+-d "$3"} "$base$2")
  code=${out##*$'\n'}
  printf '%s' "${out%$'\n'*}"
  [[ $code == 200 ]]
}
field() { python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

key=$("$forkvm" keys create --data "$data") || fail "keys create"
"$forkvm" serve --listen 127.0.0.1:"$port" --data "$data" --vm-mem 512 >>"$data/serve.log" 2>&1 &
serve=$!
for _ in $(seq 300); do curl -sf -m 5 "$base/healthz" >/dev/null && break; sleep 0.2; done
vm=$(api POST /v1/vms '{"idleTimeoutSeconds":15}' | field id) && [[ -n $vm ]] || fail "create"
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo awake"}') && [[ $(field stdout <<<"$r") == awake ]] \
  || fail "first exec: $r"
start=$(date +%s)
# 15 s of quiet, a check every 5 s, then the save: well within 5 minutes even under the rig.
for _ in $(seq 300); do
  [[ $(api GET "/v1/vms/$vm" | field state) == suspended ]] && break
  sleep 1
done
[[ $(api GET "/v1/vms/$vm" | field state) == suspended ]] || fail "not suspended after $(($(date +%s) - start)) s idle"
echo "PASS suspended by the server after $(($(date +%s) - start)) s without activity"
r=$(api POST "/v1/vms/$vm/exec-await" '{"command":"echo resumed"}') && [[ $(field stdout <<<"$r") == resumed ]] \
  || fail "exec after the idle suspend: $r"
[[ $(api GET "/v1/vms/$vm" | field state) == running ]] || fail "not running after the exec"
echo "PASS the next exec resumed it"
