#!/usr/bin/env bash
# Snapshot and restore of a running guest, end to end:
#
#   tests/integration/snapshot_restore_test.sh BUILD_DIR
#
# Boots the test initramfs counting on its console (forkvm.test=counter: a
# line every 100 ms), checks pause/resume through the control socket,
# snapshots it there with "stop", then restores the snapshot twice at once.
# Each restored guest must go on counting from where the snapshot was taken
# (its shell's memory, its registers and its timer all came back), without
# a reboot. A snapshot onto a full disk fails, leaves nothing partial and the
# VM runs on; a VMM killed mid-snapshot leaves the snapshot already in that
# directory whole. A snapshot with one flipped byte, and a truncated one, must
# be refused with a message that names the file and the problem.
#
# Sockets and the snapshot live under /tmp: Unix sockets cannot be bound on
# the rig's 9p shares, and tmpfs is where a memory file is cheapest to map.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?build dir}" && pwd)
forkvm=$build/forkvm
vmlinux=$("$top/tools/guest/artifacts" vmlinux)
initramfs=$("$top/tools/guest/artifacts" initramfs)
guest_timeout=${FORKVM_GUEST_TIMEOUT:-120}
d=$(mktemp -d -p /tmp forkvm-snap.XXXXXX)
pids=()
mounted=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for m in "${mounted[@]}"; do umount "$m"; done
  for p in "${pids[@]}"; do wait_exit "$p" 30 || echo "cleanup: process $p did not exit"; done
  rm -rf "$d"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for f in "$d"/*.log "$d"/*.console; do [[ -f $f ]] && { echo "--- $f (tail)"; tail -n 15 "$f"; }; done
  exit 1
}

# Counts from complete console lines only: the guest may have been paused
# in the middle of writing one.
counts() {
  local f=$1
  [[ -f $f ]] || return 0
  if [[ -n $(tail -c1 "$f") ]]; then sed '$d' "$f"; else cat "$f"; fi | tr -d '\r' |
    grep -aoE '^FORKVM-TEST: count=[0-9]+$' | sed 's/.*=//'
}
last_count() { counts "$1" | tail -n 1; }
first_count() { counts "$1" | head -n 1; }

# wait_count FILE N SECONDS [PID]: until the console shows a count >= N;
# fails at once if PID (the VMM writing FILE) has exited.
# A deadline, not an iteration count: process start-up alone is slow in the
# nested rig.
wait_count() {
  local c end=$((SECONDS + $3))
  while ((SECONDS < end)); do
    c=$(last_count "$1")
    [[ -n $c && $c -ge $2 ]] && return 0
    [[ -n ${4:-} ]] && ! kill -0 "$4" 2>/dev/null && fail "$1: the VMM exited before count $2 (last: ${c:-none})"
    sleep 0.2
  done
  fail "$1: no count >= $2 within $3 s (last: ${c:-none})"
}

# wait_exit PID SECONDS: until PID (a child of this shell) has exited, its status then in
# exit_rc; false on the deadline.
exit_rc=
wait_exit() {
  local end=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
  wait "$1" 2>/dev/null
  exit_rc=$?
}

# Bounded: a VMM that stops answering fails the test instead of hanging it.
ctl() { timeout -k 5 120 "$forkvm" control --control "$1" "$2"; }

# ---- the original VM ----
timeout -k 5 "$guest_timeout" "$forkvm" run --kernel "$vmlinux" --initrd "$initramfs" --mem 256 \
  --cmdline forkvm.test=counter --console "$d/orig.console" --control "$d/orig.ctl" >"$d/orig.log" 2>&1 &
orig=$!
pids+=("$orig")
wait_count "$d/orig.console" 15 60 "$orig"

ctl "$d/orig.ctl" '{"op":"status"}' | tee "$d/status" || fail "status op"
grep -q '"state":"running"' "$d/status" || fail "status does not say running"
ctl "$d/orig.ctl" '{"op":"nonsense"}' >"$d/bad-op" && fail "an unknown op was accepted"
grep -q '"ok":false' "$d/bad-op" || fail "an unknown op did not get ok:false"

# Paused, the count stands still; resumed, it goes on.
ctl "$d/orig.ctl" '{"op":"pause"}' || fail "pause op"
sleep 0.3
a=$(last_count "$d/orig.console")
sleep 1
b=$(last_count "$d/orig.console")
[[ $a == "$b" ]] || fail "the guest counted from $a to $b while paused"
ctl "$d/orig.ctl" '{"op":"resume"}' || fail "resume op"
wait_count "$d/orig.console" $((b + 3)) 30 "$orig"
echo "pause/resume: held at $b while paused, counting again after resume"

"$forkvm" snapshot --control "$d/orig.ctl" --dir "$d/snap" --stop | tee "$d/snap.json" || fail "snapshot"
wait_exit "$orig" 60 || fail "the snapshotted VM did not exit within 60 s"
rc=$exit_rc
[[ $rc == 130 ]] || fail "the snapshotted VM exited with $rc, expected 130 (stopped)"
k=$(last_count "$d/orig.console")
echo "snapshot taken at count $k"
ls -ls "$d/snap"
mem_alloc=$(du -k "$d/snap/memory" | cut -f1)
mem_size=$(($(stat -c %s "$d/snap/memory") / 1024))
echo "memory file: ${mem_alloc} KiB allocated of ${mem_size} KiB guest RAM; state file $(stat -c %s "$d/snap/state") bytes"
((mem_alloc < mem_size / 2)) || fail "the memory file is not sparse"

# ---- two VMs restored from the same snapshot, at the same time ----
for r in r1 r2; do
  timeout -k 5 "$guest_timeout" "$forkvm" restore --snapshot "$d/snap" --console "$d/$r.console" \
    --control "$d/$r.ctl" >"$d/$r.log" 2>&1 &
  pids+=($!)
  eval "${r}_pid=$!"
done
for r in r1 r2; do
  pid_var=${r}_pid
  wait_count "$d/$r.console" $((k + 10)) 60 "${!pid_var}"
  first=$(first_count "$d/$r.console")
  # k+1 normally; k+2 when the snapshot caught line k+1 half written.
  [[ $first == $((k + 1)) || $first == $((k + 2)) ]] ||
    fail "$r: first count after restore is $first, expected $((k + 1))"
  grep -aq FORKVM-GUEST-READY "$d/$r.console" && fail "$r: the guest booted again instead of resuming"
  ctl "$d/$r.ctl" '{"op":"status"}' | grep -q '"restored":true' || fail "$r: status does not say restored"
  echo "$r: resumed at count $first, now at $(last_count "$d/$r.console"); $(grep -a 'restored in' "$d/$r.log")"
done
# ---- a snapshot onto a full disk: refused, the VM runs on, nothing partial is left ----
mkdir -p "$d/full"
mount -t tmpfs -o size=4m forkvm-full "$d/full" || fail "could not mount a 4 MiB tmpfs (the test runs as root)"
mounted=("$d/full")
for mode in live stop; do
  args=()
  [[ $mode == stop ]] && args=(--stop)
  "$forkvm" snapshot --control "$d/r2.ctl" --dir "$d/full/$mode" "${args[@]}" >"$d/full-$mode.out" 2>&1 &&
    fail "a $mode snapshot onto a full disk succeeded"
  grep -q "No space left on device" "$d/full-$mode.out" || fail "full disk ($mode): $(cat "$d/full-$mode.out")"
  left=$(ls "$d/full/$mode" | grep -E '^(memory|state)' | grep -vx 'memory.base')
  [[ -z $left ]] || fail "full disk ($mode): partial files left: $left"
  c=$(last_count "$d/r2.console")
  wait_count "$d/r2.console" $((c + 3)) 30 "$r2_pid"
  echo "full disk ($mode snapshot): refused ($(grep -o 'No space left on device' "$d/full-$mode.out" | head -1)), r2 counts on past $c"
done
umount "$d/full" && mounted=()

ctl "$d/r2.ctl" '{"op":"stop"}' >/dev/null || fail "r2: stop op"
wait_exit "$r2_pid" 60 || fail "r2 did not exit within 60 s"
rc=$exit_rc
[[ $rc == 130 ]] || fail "r2 exited with $rc, expected 130 (stopped)"

# ---- a snapshot of a restored VM writes only the pages it changed (a delta) ----
"$forkvm" snapshot --control "$d/r1.ctl" --dir "$d/snap2" --stop >"$d/snap2.json" || fail "snapshot of r1"
wait_exit "$r1_pid" 60 || fail "r1 did not exit within 60 s"
rc=$exit_rc
[[ $rc == 130 ]] || fail "r1 exited with $rc after its snapshot, expected 130 (stopped)"
grep -q '"memory_delta":true' "$d/snap2.json" || fail "the snapshot of a restored VM is not a delta: $(cat "$d/snap2.json")"
k2=$(last_count "$d/r1.console")
timeout -k 5 "$guest_timeout" "$forkvm" restore --snapshot "$d/snap2" --console "$d/r3.console" \
  --control "$d/r3.ctl" >"$d/r3.log" 2>&1 &
r3_pid=$!
pids+=("$r3_pid")
wait_count "$d/r3.console" $((k2 + 5)) 60 "$r3_pid"
first=$(first_count "$d/r3.console")
[[ $first == $((k2 + 1)) || $first == $((k2 + 2)) ]] || fail "r3: first count after the delta restore is $first, expected $((k2 + 1))"
echo "delta snapshot of r1 at count $k2: $(stat -c %s "$d/snap2/memory") bytes written for $((mem_size / 1024)) MiB of RAM; r3 resumed at $first"

# ---- SIGKILL of the VMM and its memory writer mid-snapshot: the snapshot already there stays whole ----
timeout -k 5 120 "$forkvm" snapshot --control "$d/r3.ctl" --dir "$d/kept" >"$d/kept.json" || fail "snapshot of r3"
before=$(sha256sum <"$d/kept/state")
k3=$(last_count "$d/r3.console")
vmm=$(pgrep -P "$r3_pid") || fail "r3's VMM process not found"
echo "kill test: r3 (VMM $vmm) snapshotted to $d/kept at count $k3; snapshotting it there again"
timeout -k 5 120 "$forkvm" snapshot --control "$d/r3.ctl" --dir "$d/kept" >/dev/null 2>&1 &
pids+=($!)
# The writer is the VMM's only child: kill at once when it appears (builtins only, so the
# loop is fast), the whole process group (timeout, VMM, writer) in one signal.
writer=
for ((i = 0; i < 20000 && ${#writer} == 0; i++)); do
  for f in /proc/"$vmm"/task/*/children; do
    read -r writer <"$f" 2>/dev/null  # "PID " without a newline: read fails but sets it
    [[ -n $writer ]] && break
  done
done
kill -KILL -- -"$r3_pid" 2>/dev/null
wait_exit "$r3_pid" 60 || fail "r3's VMM did not die of SIGKILL within 60 s"
[[ $(sha256sum <"$d/kept/state") == "$before" ]] && when="before it replaced the state file" || when="after it finished"
echo "kill test: VMM ${writer:+and writer $writer }killed $when"
timeout -k 5 "$guest_timeout" "$forkvm" restore --snapshot "$d/kept" --console "$d/r4.console" \
  --control "$d/r4.ctl" >"$d/r4.log" 2>&1 &
r4_pid=$!
pids+=("$r4_pid")
wait_count "$d/r4.console" $((k3 + 5)) 60 "$r4_pid"
ctl "$d/r4.ctl" '{"op":"stop"}' >/dev/null || fail "r4: stop op"
wait_exit "$r4_pid" 60 || fail "r4 did not stop within 60 s"
echo "SIGKILL mid-snapshot: the snapshot in $d/kept restores; r4 resumed at $(first_count "$d/r4.console")"

# ---- damaged snapshots are refused ----
cp -r "$d/snap" "$d/bad"
size=$(stat -c %s "$d/bad/state")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$d/bad/state" | tr -d ' ')
printf "$(printf '\\%03o' $((byte ^ 0x40)))" | dd of="$d/bad/state" bs=1 seek="$off" conv=notrunc status=none
"$forkvm" restore --snapshot "$d/bad" --console "$d/bad.console" >"$d/bad.log" 2>&1
rc=$?
cat "$d/bad.log"
[[ $rc == 1 ]] || fail "a corrupted snapshot gave exit status $rc, expected 1"
grep -q "$d/bad/state" "$d/bad.log" && grep -q "checksum mismatch" "$d/bad.log" ||
  fail "the corrupted snapshot's message does not name the file and the checksum"

cp "$d/snap/state" "$d/bad/state" && truncate -s $((size - 7)) "$d/bad/state"
"$forkvm" restore --snapshot "$d/bad" --console "$d/bad.console" >"$d/bad.log" 2>&1
rc=$?
cat "$d/bad.log"
[[ $rc == 1 ]] && grep -q "truncated" "$d/bad.log" || fail "a truncated snapshot was not refused as truncated"
echo "snapshot_restore: ok"
