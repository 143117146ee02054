# Sourced by the serve_* integration tests: a `forkvm serve` on a fresh data
# directory, and curl helpers. Every call is bounded, every step is stamped
# with the seconds since the test began (so a slow step names itself), and a
# failure prints the server's log.
#
#   source serve_lib.sh BUILD_DIR NAME      then: start_serve; api ...; fail ...
forkvm=$(cd "${1:?build dir}" && pwd)/forkvm
# Under /tmp: in the rig that is L1's own tmpfs, where memory files map fast;
# /var/tmp there is a 9p share of the host's.
data=$(mktemp -d -p "${FORKVM_TEST_TMP:-/tmp}" "forkvm-${2:?name}.XXXXXX")
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
base=http://127.0.0.1:$port
serve=
key=
vms=()  # deleted at exit
test_start=$(date +%s.%N)

say() { printf '[%6.1f s] %s\n' "$(echo "$(date +%s.%N) - $test_start" | bc)" "$*"; }
fail() {
  say "FAIL: $*"
  echo "--- serve.log (tail)"
  tail -40 "$data/serve.log"
  local f
  for f in "$data"/vms/*/vmm.log "$data"/vms/*/console.log; do
    [[ -f $f ]] && { echo "--- $f (tail)"; tail -n 25 "$f" | tr -d '\r'; }
  done
  vmm_threads
  exit 1
}
# Every thread of this server's VMMs: state, kernel wait channel and the CPU
# ticks it used in two seconds, so a guest that stopped says whether its vCPU
# threads spin (in KVM_RUN), sleep in the kernel or wait on a lock of ours.
vmm_threads() {
  local pid t pids
  local -A before
  mapfile -t pids < <(pgrep -f -- "$data/")
  ((${#pids[@]})) || return 0
  ticks() { sed 's/.*) //' "$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'; }
  for pid in "${pids[@]}"; do for t in /proc/$pid/task/*; do before[$t]=$(ticks "$t"); done; done
  sleep 2
  echo "--- VMM threads (state, wait channel, CPU ticks in 2 s)"
  for pid in "${pids[@]}"; do
    echo "pid $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
    for t in /proc/$pid/task/*; do
      echo "  ${t##*/} $(cat "$t/comm" 2>/dev/null) $(sed 's/.*) //' "$t/stat" 2>/dev/null | cut -d' ' -f1)" \
        "$(cat "$t/wchan" 2>/dev/null) $(($(ticks "$t") - ${before[$t]:-0}))"
    done
  done
}
cleanup() {
  local id
  for id in "${vms[@]}"; do
    curl -s -m 120 -X DELETE -H "Authorization: Bearer $key" "$base/v1/vms/$id" >/dev/null
  done
  [[ -n $serve ]] && { kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null; }
  # VMMs a killed server left running (the test failed before a new one
  # deleted them) hold network slots a rerun needs.
  local runtime pid slot
  for runtime in "$data"/vms/*/runtime; do
    [[ -f $runtime ]] || continue
    pid=$(awk '$1 == "pid" { print $2 }' "$runtime") slot=$(awk '$1 == "net_slot" { print $2 }' "$runtime")
    [[ -n $pid ]] && grep -qa forkvm "/proc/$pid/cmdline" 2>/dev/null && kill -9 "$pid"
    [[ -n $slot ]] && { ip netns del "fkvm-$slot" 2>/dev/null; nft delete table ip "fkvm_$slot" 2>/dev/null; }
  done
  rm -rf "$data"
}
trap cleanup EXIT

start_serve() {
  [[ -n $key ]] || key=$("$forkvm" keys create --data "$data") || fail "keys create"
  "$forkvm" serve --listen 127.0.0.1:"$port" --data "$data" --vm-mem 512 ${SERVE_ARGS:-} >>"$data/serve.log" 2>&1 &
  serve=$!
  for _ in $(seq 300); do curl -sf -m 5 "$base/healthz" >/dev/null && return 0; sleep 0.2; done
  fail "serve did not answer /healthz"
}

# api METHOD PATH [BODY]: the response body on stdout; fails on a non-200
# answer. Calls that boot or save a guest may take minutes under the rig's
# emulation; reads (API_TIMEOUT=30) must not.
api() {
  local out code
  out=$(curl -s -m "${API_TIMEOUT:-600}" -w '\n%{http_code}' -X "$1" -H "Authorization: Bearer $key" \
    ${3:+-d "$3"} "$base$2")
  code=${out##*$'\n'}
  printf '%s' "${out%$'\n'*}"
  [[ $code == 200 ]]
}
# field NAME: a top-level field of the JSON on stdin ("" when absent or not JSON).
field() {
  python3 -c '
import json, sys
try: v = json.load(sys.stdin).get(sys.argv[1])
except Exception: v = None
print("" if v is None else v)' "$1"
}
vm_state() { API_TIMEOUT=30 api GET "/v1/vms/$1" | field state; }
exec_echo() {  # exec_echo VM WORD: the VM answers an exec with WORD (else says what it got)
  local r
  r=$(api POST "/v1/vms/$1/exec-await" "{\"command\":\"echo $2\"}") && [[ $(field stdout <<<"$r") == "$2" ]] \
    || { say "exec in $1 answered: ${r:-nothing}"; return 1; }
}
# create_vm BODY: the new VM's id on stdout (and it is deleted at exit).
create_vm() {
  local id
  id=$(api POST /v1/vms "$1" | field id)
  [[ -n $id ]] && echo "$id"
}
