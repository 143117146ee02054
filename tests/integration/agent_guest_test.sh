#!/usr/bin/env bash
# The guest agent inside the Debian image, booted by forkvm (run inside tools/rig):
#
#   tests/integration/agent_guest_test.sh BUILD_DIR
#
# Boots `forkvm run --image default --net --vsock`, waits for the agent's console marker,
# runs BUILD_DIR/tests/integration/agent-guest-test through the vsock socket (exec, files,
# watch, systemd, terminals), then checks the network both ways: the guest fetches a page
# from a server on the host end of its veth (through the netns NAT), and the host fetches
# a page from a server in the guest. Prints PASS/FAIL lines; exit 0 when all pass.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: agent_guest_test.sh BUILD_DIR}" && pwd)
slot=${FORKVM_NET_SLOT:-9}
base=$((slot * 4))
host_ip=10.200.$((base / 256)).$((base % 256 + 1))
# Unix sockets cannot live on the rig's 9p-shared /var/tmp; /tmp is local.
work=$(mktemp -d -p /tmp forkvm-guest.XXXXXX)
pid=
failed=0
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  jobs -p | xargs -r kill 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; failed=1; }

start=$(date +%s%N)
TMPDIR=$work "$build/forkvm" run --image default --mem 1024 --cpus 2 --net --net-slot "$slot" \
  --vsock "$work/vsock.sock" --vsock-cid $((3 + slot)) --console "$work/console.log" >"$work/vmm.log" 2>&1 &
pid=$!
ready=0
for _ in $(seq 1 ${FORKVM_GUEST_BOOT_TIMEOUT:-600}); do
  grep -q FORKVM-AGENT-READY "$work/console.log" 2>/dev/null && { ready=1; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if [[ $ready != 1 ]]; then
  fail "debian guest boots to agent-ready" "no marker; VMM log: $(tail -3 "$work/vmm.log"); console: $(tail -5 "$work/console.log" 2>/dev/null)"
  exit 1
fi
pass "debian guest boots to agent-ready ($(( ($(date +%s%N) - start) / 1000000 )) ms under this rig)"

"$build/tests/integration/agent-guest-test" --mux "$work/vsock.sock" | tee "$work/agent.out"
grep -q '^FAIL' "$work/agent.out" && failed=1
grep -qE '^[0-9]+ passed, 0 failed' "$work/agent.out" || failed=1

# A one-shot HTTP answer on the host end of the VM's veth.
exec_in_guest() { "$build/forkvm" guest exec --vsock "$work/vsock.sock" --timeout-ms 60000 -- "$@" 2>&1; }
printf 'HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\nhello-from-host' >"$work/reply"
( timeout 60 /usr/bin/python3 -c '
import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 18081)); s.listen(1)
c,_=s.accept(); c.recv(4096); c.sendall(open(sys.argv[2],"rb").read()); c.close()
' "$host_ip" "$work/reply" ) &
sleep 1
out=$(exec_in_guest curl -s -m 20 "http://$host_ip:18081/")
[[ $out == *hello-from-host* ]] && pass "guest reaches the host through the NAT" \
  || fail "guest reaches the host through the NAT" "curl said: $out"

# The guest serves a page; the host reaches it at the guest's address inside the netns.
exec_in_guest 'mkdir -p /srv/www && echo hello-from-guest > /srv/www/index.html &&
  systemd-run -q --unit=forkvm-test-web --working-directory=/srv/www python3 -m http.server 8080' >/dev/null
out=
for _ in $(seq 1 30); do  # the server takes a moment to start under emulation
  out=$(ip netns exec "fkvm-$slot" curl -s -m 5 http://172.16.0.2:8080/index.html)
  [[ $out == hello-from-guest ]] && break
  sleep 1
done
[[ $out == hello-from-guest ]] && pass "host reaches a port in the guest" \
  || fail "host reaches a port in the guest" "curl said: $out"

kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
pid=
exit $failed
