#!/usr/bin/env bash
# Live fork of a running guest through the control socket ({"op":"fork"}):
#
#   tests/integration/live_fork_test.sh BUILD_DIR
#
# Boots the counting test initramfs (forkvm.test=counter), forks two children
# while it counts, and checks that the parent keeps counting and that each
# child goes on counting from the parent's count at the fork (same memory,
# CPU and timer state, no reboot), each on its own console and socket. The
# guest has a writable layered disk: the fork freezes it and each child gets
# a chain of its own over the frozen layer.
# Sockets live under /tmp: the rig's 9p shares cannot hold Unix sockets.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
forkvm=$build/forkvm
vmlinux=$("$top/tools/guest/artifacts" vmlinux)
initramfs=$("$top/tools/guest/artifacts" initramfs)
guest_timeout=${FORKVM_GUEST_TIMEOUT:-120}
d=$(mktemp -d -p /tmp forkvm-fork.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$d"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$d"/*.log "$d"/*.console; do [[ -f $f ]] && { echo "--- $f (tail)"; tail -n 15 "$f"; }; done
  exit 1
}
counts() {
  local f=$1
  [[ -f $f ]] || return 0
  if [[ -n $(tail -c1 "$f") ]]; then sed '$d' "$f"; else cat "$f"; fi | tr -d '\r' |
    grep -aoE '^FORKVM-TEST: count=[0-9]+$' | sed 's/.*=//'
}
last_count() { counts "$1" | tail -n 1; }
first_count() { counts "$1" | head -n 1; }
wait_count() {
  local c end=$((SECONDS + $3))
  while ((SECONDS < end)); do
    c=$(last_count "$1")
    [[ -n $c && $c -ge $2 ]] && return 0
    sleep 0.2
  done
  fail "$1: no count >= $2 within $3 s (last: ${c:-none})"
}
# Bounded: a VMM that stops answering fails the test instead of hanging it.
ctl() { timeout -k 5 120 "$forkvm" control --control "$1" "$2"; }

truncate -s 16M "$d/blank.img"
"$forkvm" disk create-chain --base "$d/blank.img" --dir "$d/disk" >/dev/null || fail "create-chain"
timeout -k 5 "$guest_timeout" "$forkvm" run --kernel "$vmlinux" --initrd "$initramfs" --mem 256 \
  --disk "chain:$d/disk" --cmdline forkvm.test=counter --console "$d/parent.console" \
  --control "$d/parent.ctl" >"$d/parent.log" 2>&1 &
parent=$!
pids+=("$parent")
wait_count "$d/parent.console" 15 60

before=$(last_count "$d/parent.console")
ctl "$d/parent.ctl" "{\"op\":\"fork\",\"count\":2,\"prefix\":\"$d/child\"}" | tee "$d/fork.json" || fail "fork op"
after=$(last_count "$d/parent.console")
for p in $(grep -oE '"pid":[0-9]+' "$d/fork.json" | cut -d: -f2); do pids+=("$p"); done
wait_count "$d/parent.console" $((after + 10)) 60
echo "parent: forked at count $before..$after, now at $(last_count "$d/parent.console")"
for i in 1 2; do
  c=$d/child-$i.console
  wait_count "$c" $((before + 10)) 60
  first=$(first_count "$c")
  ((first >= before + 1 && first <= after + 2)) || fail "child $i: first count $first, parent was at $before..$after"
  grep -aq FORKVM-GUEST-READY "$c" && fail "child $i booted again instead of continuing"
  ctl "$d/child-$i.ctl" '{"op":"status"}' | grep -q '"restored":true' || fail "child $i: status"
  # Its own top layer over the parent's frozen one: three layers in all.
  layers=$("$forkvm" disk info "$d/child-$i.disk0" | grep -c '^layer [0-9]') || true
  [[ $layers == 2 ]] || { "$forkvm" disk info "$d/child-$i.disk0"; fail "child $i: chain has $layers layers, expected 2"; }
  echo "child $i: continued at count $first, now at $(last_count "$c")"
done
# A live snapshot: the pause is short, the parent counts on, the snapshot is whole.
ctl "$d/parent.ctl" "{\"op\":\"snapshot\",\"dir\":\"$d/snap\"}" | tee "$d/snap.json" || fail "live snapshot"
grep -q '"stopped":false' "$d/snap.json" || fail "the live snapshot stopped the VM"
for f in state memory chain; do [[ -s $d/snap/$f ]] || fail "the live snapshot has no $f"; done
at=$(last_count "$d/parent.console")
wait_count "$d/parent.console" $((at + 5)) 60
echo "parent: counting on after a live snapshot ($(grep -oE '"pause_ms":[0-9.]+' "$d/snap.json"))"
for i in 1 2; do ctl "$d/child-$i.ctl" '{"op":"stop"}' >/dev/null || fail "child $i: stop"; done
ctl "$d/parent.ctl" '{"op":"stop"}' >/dev/null || fail "parent: stop"
wait "$parent"
rc=$?
[[ $rc == 130 ]] || fail "parent exited with $rc, expected 130"
echo "live_fork: ok"
