#!/usr/bin/env bash
# Runs the host-level forkvm-agent test (no VM: the agent listens on a Unix
# socket on this host). Prints "PASS name" / "FAIL name: why" lines and ends
# with "N passed, M failed"; exits nonzero on any failure.
#
#   tests/integration/agent_host_test.sh [BUILD_DIR]     (default: build)
#
# Needs root for the run-as-another-user checks (uses "nobody").
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$top/build}" && pwd) || exit 2
agent=$build/forkvm-agent
[[ -x $agent ]] || agent=$build/guestinit/forkvm-agent
test_bin=$build/guestinit/agent-host-test
[[ -x $test_bin ]] || test_bin=$build/tests/integration/agent-host-test
for f in "$agent" "$test_bin"; do
  [[ -x $f ]] || { echo "FAIL agent-host-test: $f is not built"; exit 1; }
done
exec timeout -k 5 600 "$test_bin" --agent "$agent"
