#!/usr/bin/env bash
# Twenty generations of suspend/resume and fork-of-a-fork, nothing lost:
#
#   tests/integration/generations_test.sh BUILD_DIR [GENERATIONS]
#
# Boots the test initramfs in its ledger mode (forkvm.test=ledger): one shell
# process numbers records, appends each to a file in the guest's memory
# (tmpfs) and writes it to its own block of a layered disk, and every ten
# records reads both copies back whole against what they must hold. Then,
# generation after generation, the VM is alternately suspended (snapshot with
# stop, then restored from the files on a fork of the frozen disk) and
# live-forked (the child goes on; its parent is stopped), so later
# generations are restores of restores and forks of forks. Each generation
# must go on from the record its parent was at (the same process, no reboot)
# and pass a read-back that covers every record of every earlier generation.
# Sockets live under /tmp: the rig's 9p shares cannot hold Unix sockets.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
generations=${2:-20}
forkvm=$build/forkvm
vmlinux=$("$top/tools/guest/artifacts" vmlinux)
initramfs=$("$top/tools/guest/artifacts" initramfs)
guest_timeout=${FORKVM_GUEST_TIMEOUT:-120}
d=$(mktemp -d -p /tmp forkvm-gen.XXXXXX)
pids=()
cleanup() {
  local p end=$((SECONDS + 30))
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  # Bounded: a VMM wedged inside KVM_RUN (the rig's emulation) may not die at all.
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && ((SECONDS < end)); do sleep 0.2; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$d"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$d"/*.log "$d"/*.console; do [[ -f $f ]] && { echo "--- $f (tail)"; tail -n 8 "$f" | tr -d '\r'; }; done
  exit 1
}
# Complete console lines only: a snapshot may have caught one half written.
lines() {
  [[ -f $1 ]] || return 0
  if [[ -n $(tail -c1 "$1") ]]; then sed '$d' "$1"; else cat "$1"; fi | tr -d '\r'
}
values() { lines "$1" | grep -aoE "^FORKVM-TEST: $2=[0-9]+\$" | sed 's/.*=//'; }
first_count() { values "$1" count | head -n 1; }
last_count() { values "$1" count | tail -n 1; }
# wait_verified CONSOLE N PID: until the guest has read back at least N records
# whole; fails on a guest error line or when its VMM (PID) exits.
wait_verified() {
  local v end=$((SECONDS + 90))
  while ((SECONDS < end)); do
    lines "$1" | grep -a '^FORKVM-TEST: error' && fail "$1: the guest found its records damaged"
    v=$(values "$1" verified | tail -n 1)
    [[ -n $v && $v -ge $2 ]] && return 0
    kill -0 "$3" 2>/dev/null || fail "$1: the VMM exited (last read-back: ${v:-none})"
    sleep 0.2
  done
  fail "$1: no read-back of >= $2 records within 90 s (last: ${v:-none})"
}
# A VMM that died, stopped answering or left its guest silent. Under the
# rig that is the emulation's doing as far as anyone has seen (a damaged
# record never is: that fails as itself), and the line says so for
# run-all, which then runs the test once more.
wedged() {
  [[ ${FORKVM_RIG_MODE:-} == nested ]] && echo "emulation fault: $*"
  fail "$*"
}
# Bounded: a VMM that stops answering fails the test instead of hanging it.
ctl() { timeout -k 5 120 "$forkvm" control --control "$1" "$2"; }
wait_gone() {  # wait_gone PID: the stopped VMM has exited
  local end=$((SECONDS + 60))
  while kill -0 "$1" 2>/dev/null; do ((SECONDS < end)) || fail "VMM $1 did not exit"; sleep 0.1; done
}

truncate -s 16M "$d/blank.img"
"$forkvm" disk create-chain --base "$d/blank.img" --dir "$d/g0.disk" >/dev/null || fail "create-chain"
timeout -k 5 "$guest_timeout" "$forkvm" run --kernel "$vmlinux" --initrd "$initramfs" --mem 256 \
  --disk "chain:$d/g0.disk" --cmdline forkvm.test=ledger --console "$d/g0.console" \
  --control "$d/g0.ctl" >"$d/g0.log" 2>&1 &
pid=$!
pids+=("$pid")
console=$d/g0.console
control=$d/g0.ctl
wait_verified "$console" 10 "$pid"
echo "generation 0: booted, $(last_count "$console") records"

# settle: the new VM ($pid, $console) goes on from its parent's record
# ($from..$to) and reads back every record whole. A damaged record, a count
# that does not go on, a reboot: the test fails. Returns 1 (reason in $why)
# when its VMM died or it stayed silent, which run() may retry.
settle() {
  local started=$SECONDS first v
  until [[ -n $(first_count "$console") ]]; do
    kill -0 "$pid" 2>/dev/null || { why="its VMM exited before its first record"; return 1; }
    ((SECONDS - started < 60)) || { why="no record within 60 s"; return 1; }
    sleep 0.2
  done
  first=$(first_count "$console")
  # from+1 normally; from+2 when the parent's last line was caught half written.
  ((first >= from + 1 && first <= to + 2)) || fail "generation $g ($how): went on at record $first, its parent was at $from..$to"
  grep -aq FORKVM-GUEST-READY "$console" && fail "generation $g: the guest booted again"
  while :; do
    lines "$console" | grep -a '^FORKVM-TEST: error' && fail "generation $g: the guest found its records damaged"
    v=$(values "$console" verified | tail -n 1)
    [[ -n $v && $v -ge $(((first / 10 + 1) * 10)) ]] && break
    kill -0 "$pid" 2>/dev/null || { why="its VMM exited at record $(last_count "$console")"; return 1; }
    ((SECONDS - started < 120)) || { why="no read-back within 120 s"; return 1; }
    sleep 0.2
  done
  echo "generation $g: $how at record $from, went on at $first, read back $v whole"
}

# Under the rig, restored guests now and then die of the emulation (a triple
# fault, or a vCPU that stops: tools/rig.d/README.md). The state they came
# from is still there (the snapshot's files; the fork's running parent), so
# a generation is tried again from it, twice at most, each retry printed.
# Anywhere else a dead or silent generation fails the test.
retry_budget=0
[[ ${FORKVM_RIG_MODE:-} == nested ]] && retry_budget=4

t0=$SECONDS
for ((g = 1; g <= generations; g++)); do
  parent=$pid
  if ((g % 2)); then
    how="suspended and restored"
    timeout -k 5 120 "$forkvm" snapshot --control "$control" --dir "$d/s$g" --stop >"$d/s$g.json" ||
      wedged "generation $g: the snapshot of its parent did not complete (status $?)"
    wait_gone "$parent"
    from=$(last_count "$console")
    to=$from
  else
    how="forked (the parent stopped)"
    parent_control=$control
    parent_console=$console
  fi
  for ((attempt = 1; ; attempt++)); do
    name=g$g.$attempt
    if ((g % 2)); then
      timeout 60 "$forkvm" disk fork "$d/s$g" --out "$d/$name.disk" >/dev/null || fail "generation $g: disk fork"
      timeout -k 5 "$guest_timeout" "$forkvm" restore --snapshot "$d/s$g" --disk "chain:$d/$name.disk" \
        --console "$d/$name.console" --control "$d/$name.ctl" >"$d/$name.log" 2>&1 &
      pid=$!
      console=$d/$name.console
      control=$d/$name.ctl
    else
      from=$(last_count "$parent_console")
      ctl "$parent_control" "{\"op\":\"fork\",\"count\":1,\"prefix\":\"$d/$name\"}" >"$d/$name.json" ||
        wedged "generation $g: its parent did not fork (status $?)"
      to=$(last_count "$parent_console")
      pid=$(grep -oE '"pid":[0-9]+' "$d/$name.json" | cut -d: -f2)
      [[ -n $pid ]] || fail "generation $g: no child in $(cat "$d/$name.json")"
      console=$d/$name-1.console
      control=$d/$name-1.ctl
    fi
    pids+=("$pid")
    settle && break
    ((attempt <= 2 && retry_budget > 0)) || wedged "generation $g ($how): $why"
    retry_budget=$((retry_budget - 1))
    echo "generation $g: attempt $attempt died under the rig's emulation ($why; $(grep -ah -m1 -o "triple fault" "$d/$name.log" 2>/dev/null || echo "no triple fault logged")); again from the same state"
    kill "$pid" 2>/dev/null
  done
  if ! ((g % 2)); then
    ctl "$parent_control" '{"op":"stop"}' >/dev/null || wedged "generation $g: its parent did not stop"
    wait_gone "$parent"
  fi
done
ctl "$control" '{"op":"stop"}' >/dev/null || fail "stopping the last generation"
echo "generations: $generations generations in $((SECONDS - t0)) s, nothing lost"
