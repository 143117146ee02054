#!/bin/sh
# /init of the forkvm test initramfs (packed by tools/guest/build-test-initramfs).
#
# Reports what the guest sees, prints the marker FORKVM-GUEST-READY, then does what the
# kernel command line asks with forkvm.test=<mode>:
#   poweroff (default)  poweroff -f
#   reboot              reboot -f
#   panic               exit init, which panics the kernel
#   disk                hash the first 4 KiB of /dev/vda, write a fixed pattern at 4096, power off
#   ro                  try to write /dev/vda, report refused/accepted, power off
#   shell               interactive sh on the console
#   counter             print "FORKVM-TEST: count=N" every 100 ms forever (snapshot tests:
#                       a restored guest must go on from the N it was saved at)
#   ledger              append record N to /tmp/ledger (memory) and write it to block N of
#                       /dev/vda, print "count=N", every 10 records read both back whole and
#                       print "verified=N" or an error (generation tests: nothing lost)
# Every line a test looks for starts with "FORKVM-TEST: " or is the marker itself.
export PATH=/bin

say() { echo "FORKVM-TEST: $*"; }

# The same 4 KiB the host side checks for:
#   yes forkvm-guest-write | head -c 4096
PATTERN=/tmp/forkvm-pattern
PATTERN_OFFSET_BLOCKS=1 # in 4 KiB blocks: the pattern goes at byte 4096

mount -t devtmpfs devtmpfs /dev 2>/dev/null # the kernel may already have mounted it
mount -t proc proc /proc
mount -t sysfs sysfs /sys

# Count CPUs from the online mask ("0-1,4"), not sched affinity.
online_cpus() {
  n=0
  IFS=,
  # shellcheck disable=SC2013 # splitting on commas is the point
  for range in $(cat /sys/devices/system/cpu/online); do
    case $range in
    *-*) n=$((n + ${range#*-} - ${range%-*} + 1)) ;;
    *) n=$((n + 1)) ;;
    esac
  done
  unset IFS
  echo "$n"
}

# Module-style parameters (with a dot) never reach init's argv/env; read them here.
mode=poweroff
# shellcheck disable=SC2013 # one word per parameter is the point
for arg in $(cat /proc/cmdline); do
  case $arg in
  forkvm.test=*) mode=${arg#forkvm.test=} ;;
  esac
done

power_off() {
  poweroff -f
  # Only reached if the reboot syscall failed; exiting init then panics the kernel.
  say "error: poweroff failed"
  exit 1
}

# dd with conv=fsync: a write the device refuses surfaces as an error here, not later.
write_pattern() {
  dd if="$PATTERN" of=/dev/vda bs=4096 seek="$PATTERN_OFFSET_BLOCKS" count=1 conv=notrunc,fsync 2>/dev/null
}

need_vda() {
  if [ ! -b /dev/vda ]; then
    say "error: no /dev/vda"
    power_off
  fi
}

say "cpus=$(online_cpus) nproc=$(nproc)"
say "uptime=$(cut -d' ' -f1 /proc/uptime)"
say "mode=$mode"
echo FORKVM-GUEST-READY

case $mode in
poweroff)
  power_off
  ;;
reboot)
  reboot -f
  say "error: reboot failed"
  exit 1
  ;;
panic)
  # init exiting panics the kernel ("Attempted to kill init!") with no page fault on the
  # way, unlike sysrq-c's NULL write: in CI's nested rig that test twice left L1 stuck.
  exit 1
  ;;
disk)
  need_vda
  say "vda-read=$(head -c 4096 /dev/vda | sha256sum | cut -d' ' -f1)"
  yes forkvm-guest-write | head -c 4096 >"$PATTERN"
  if write_pattern; then
    say "vda-write=ok"
  else
    say "vda-write=failed"
  fi
  power_off
  ;;
ro)
  need_vda
  yes forkvm-guest-write | head -c 4096 >"$PATTERN"
  if write_pattern; then
    say "ro-write=accepted"
  else
    say "ro-write=refused"
  fi
  power_off
  ;;
counter)
  # The count lives in this shell's memory, and the 100 ms sleeps need the
  # guest's timer: a restore that loses either stops or restarts the count.
  n=0
  while :; do
    say "count=$n"
    n=$((n + 1))
    sleep 0.1
  done
  ;;
ledger)
  # n lives in this shell's memory, the records in the guest's tmpfs and on
  # its disk: a generation that loses any of them stops or breaks the check.
  need_vda
  n=0
  while :; do
    n=$((n + 1))
    printf 'ledger %d\n' "$n" >>/tmp/ledger
    printf 'ledger %d\n' "$n" | dd of=/dev/vda bs=4096 seek="$n" count=1 conv=sync,notrunc,fsync 2>/dev/null ||
      say "error: disk write of record $n failed"
    say "count=$n"
    if [ $((n % 10)) = 0 ]; then
      want=$(seq 1 "$n" | sed 's/^/ledger /' | sha256sum | cut -d' ' -f1)
      mem=$(sha256sum </tmp/ledger | cut -d' ' -f1)
      disk=$(dd if=/dev/vda bs=4096 skip=1 count="$n" 2>/dev/null | tr -d '\000' | sha256sum | cut -d' ' -f1)
      if [ "$mem" = "$want" ] && [ "$disk" = "$want" ]; then
        say "verified=$n"
      else
        say "error: records 1..$n: memory $mem, disk $disk, want $want"
      fi
    fi
    sleep 0.1
  done
  ;;
shell)
  # setsid + cttyhack give the shell a controlling terminal, so Ctrl-C works.
  setsid cttyhack sh
  power_off
  ;;
*)
  say "error: unknown forkvm.test mode '$mode'"
  power_off
  ;;
esac
