// Per-VM host networking on this machine: needs root (netns, veth, nft) but
// no KVM. Skipped, with a message, where those are not available.
#include <doctest/doctest.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <string>

#include "devices/net/command.hpp"
#include "devices/net/host_network.hpp"

namespace forkvm::net {
namespace {

std::string output_of(const std::string& cmd) {
  std::string out;
  FILE* f = ::popen((cmd + " 2>&1").c_str(), "r");
  if (f == nullptr) return out;
  char buf[512];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  ::pclose(f);
  return out;
}

bool can_run() {
  if (::geteuid() != 0 || !find_tool("nft", "nftables").ok() || !find_tool("ip", "iproute2").ok())
    return false;
  return ::access("/dev/net/tun", R_OK | W_OK) == 0;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

TEST_CASE("net host: run_command reports the command and its stderr") {
  auto s = run_command({"/bin/sh", "-c", "echo boom >&2; exit 3"});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("exit 3") != std::string::npos);
  CHECK(s.error().message.find("boom") != std::string::npos);
  CHECK(run_command({"/bin/true"}).ok());
  CHECK(find_tool("no-such-tool-xyz", "pkg").error().message ==
        "no-such-tool-xyz not found (apt-get install pkg)");
}

TEST_CASE("net host: slot addresses and the guest command line") {
  CHECK(HostNetwork::guest_cmdline() == "ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off");
  CHECK_FALSE(HostNetwork::create(kMaxSlot + 1).ok());
}

TEST_CASE("net host: netns, veth, TAP and NAT for a slot; torn down on destruction") {
  if (!can_run()) {
    MESSAGE("skipped: needs root, /dev/net/tun, ip and nft");
    return;
  }
  constexpr uint32_t kSlot = 16001;                                   // 10.200.250.4/30
  (void)run_command({"/usr/sbin/ip", "netns", "del", "fkvm-16001"});  // a leftover of a killed run
  {
    auto n = HostNetwork::create(kSlot);
    if (!n.ok() && n.error().message.find("Operation not permitted") != std::string::npos) {
      MESSAGE("skipped: " << n.error().message);
      return;
    }
    REQUIRE_MESSAGE(n.ok(), n.error().message);
    HostNetwork& net = **n;
    CHECK(net.netns() == "fkvm-16001");
    CHECK(net.host_address() == "10.200.250.5");
    CHECK(net.ns_address() == "10.200.250.6");
    UniqueFd tap = net.take_tap();
    CHECK(tap.valid());
    const std::string addrs = output_of("ip netns exec fkvm-16001 ip addr");
    CHECK(addrs.find("tap0") != std::string::npos);
    CHECK(addrs.find("172.16.0.1/30") != std::string::npos);
    CHECK(addrs.find("10.200.250.6/30") != std::string::npos);
    CHECK(output_of("ip addr show fkvm16001h").find("10.200.250.5/30") != std::string::npos);
    CHECK(output_of("ip netns exec fkvm-16001 cat /proc/sys/net/ipv4/ip_forward") == "1\n");
    const std::string ns_rules = output_of("ip netns exec fkvm-16001 nft list ruleset");
    CHECK(ns_rules.find("masquerade") != std::string::npos);
    CHECK(ns_rules.find("dnat to 172.16.0.2") != std::string::npos);
    CHECK(output_of("nft list table ip fkvm_16001").find("10.200.250.4/30") != std::string::npos);
    // The host reaches the netns over the veth.
    if (exists("/bin/busybox")) {
      auto ping = run_command({"/usr/sbin/ip", "netns", "exec", "fkvm-16001", "/bin/busybox", "ping", "-c1",
                               "-W2", "10.200.250.5"});
      CHECK_MESSAGE(ping.ok(), (ping.ok() ? "" : ping.error().message));
    }
    // A second VM on the same slot is refused with a clear message.
    auto again = HostNetwork::create(kSlot);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message.find("netns fkvm-16001 exists") != std::string::npos);
  }
  CHECK_FALSE(exists("/run/netns/fkvm-16001"));
  CHECK(output_of("nft list table ip fkvm_16001").find("No such file") != std::string::npos);
}

TEST_CASE("net host: a prepared slot is claimed once, keeps its setup, and goes with its claimant") {
  if (!can_run()) {
    MESSAGE("skipped: needs root, /dev/net/tun, ip and nft");
    return;
  }
  constexpr uint32_t kSlot = 16002;
  (void)run_command({"/usr/sbin/ip", "netns", "del", "fkvm-16002"});
  (void)HostNetwork::unprepare(kSlot);
  auto prepared = HostNetwork::prepare(kSlot);
  if (!prepared.ok() && prepared.error().message.find("Operation not permitted") != std::string::npos) {
    MESSAGE("skipped: " << prepared.error().message);
    return;
  }
  REQUIRE_MESSAGE(prepared.ok(), prepared.error().message);
  // Standing, unclaimed: the netns with its TAP and rules, and the marker.
  CHECK(exists("/run/netns/fkvm-16002"));
  CHECK(output_of("ip netns exec fkvm-16002 ip addr show tap0").find("172.16.0.1/30") != std::string::npos);
  CHECK(output_of("nft list table ip fkvm_16002").find("masquerade") != std::string::npos);
  const auto listed = HostNetwork::prepared_slots();
  CHECK(std::find(listed.begin(), listed.end(), kSlot) != listed.end());
  {
    auto n = HostNetwork::create(kSlot);
    REQUIRE_MESSAGE(n.ok(), n.error().message);
    CHECK((*n)->adopted());
    CHECK((*n)->take_tap().valid());
    // Claimed: the marker is gone, so a second start on the slot is refused as before.
    CHECK_FALSE(HostNetwork::unprepare(kSlot));
    auto again = HostNetwork::create(kSlot);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message.find("netns fkvm-16002 exists") != std::string::npos);
  }
  CHECK_FALSE(exists("/run/netns/fkvm-16002"));
  CHECK(output_of("nft list table ip fkvm_16002").find("No such file") != std::string::npos);

  // A marker whose network is gone: the claimant sets the slot up afresh.
  REQUIRE(HostNetwork::prepare(kSlot).ok());
  REQUIRE(run_command({"/usr/sbin/ip", "netns", "del", "fkvm-16002"}).ok());
  {
    auto n = HostNetwork::create(kSlot);
    REQUIRE_MESSAGE(n.ok(), n.error().message);
    CHECK_FALSE((*n)->adopted());
    CHECK(exists("/run/netns/fkvm-16002"));
  }
  CHECK_FALSE(exists("/run/netns/fkvm-16002"));
}

}  // namespace
}  // namespace forkvm::net
