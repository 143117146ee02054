#include "devices/net/host_network.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "devices/net/command.hpp"
#include "devices/net/tap.hpp"
#include "vmm/log.hpp"

namespace forkvm::net {
namespace {

std::string ipv4(uint32_t v) {
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

std::string marker_path(uint32_t slot) { return fmt::format("{}/prepared-{}", kPreparedDir, slot); }

Status write_file(const char* path, std::string_view value) {
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || ::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return errno_error(fmt::format("write {}", path));
  }
  return {};
}

}  // namespace

HostNetwork::HostNetwork(uint32_t slot) : slot_(slot) {
  netns_ = fmt::format("fkvm-{}", slot);
  host_if_ = fmt::format("fkvm{}h", slot);  // IFNAMSIZ: at most 10 characters
  ns_if_ = fmt::format("fkvm{}n", slot);
  const uint32_t base = (10U << 24) | (200U << 16) | (slot * 4);
  subnet_ = ipv4(base) + "/30";
  host_ip_ = ipv4(base + 1);
  ns_ip_ = ipv4(base + 2);
  host_table_ = fmt::format("fkvm_{}", slot);
}

std::string HostNetwork::guest_cmdline() {
  // ip=<client>:<server>:<gateway>:<netmask>:<hostname>:<device>:<autoconf>
  return fmt::format("ip={}::{}:255.255.255.252::eth0:off", kGuestAddress, kGatewayAddress);
}

Result<std::unique_ptr<HostNetwork>> HostNetwork::create(uint32_t slot) {
  if (slot > kMaxSlot) return make_error("network slot {} out of range (0..{})", slot, kMaxSlot);
  std::unique_ptr<HostNetwork> n(new HostNetwork(slot));
  n->ip_tool_ = FORKVM_TRY(find_tool("ip", "iproute2"));
  n->nft_tool_ = FORKVM_TRY(find_tool("nft", "nftables"));
  if (::unlink(marker_path(slot).c_str()) == 0) {
    // Ours now: attach, or (a half-gone slot) clear it and set it up afresh.
    if (auto s = n->adopt(); s.ok())
      return n;
    else
      log(LogLevel::warn, "net: prepared slot {} unusable ({}); setting it up again", slot,
          s.error().message);
    n->teardown();
  }
  if (auto s = n->setup(); !s.ok()) return s.error().context(fmt::format("network slot {}", slot));
  return n;  // a failure above tore down what was built, in the destructor
}

Status HostNetwork::prepare(uint32_t slot) {
  auto n = FORKVM_TRY(create(slot));
  FORKVM_CHECK(set_tap_persistent(n->tap_, true));
  ::mkdir(kPreparedDir, 0755);
  UniqueFd marker(::open(marker_path(slot).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!marker.valid()) return errno_error("create " + marker_path(slot));  // n's destructor tears down
  // Left standing for the claimant: the destructor must not undo it.
  n->netns_created_ = n->host_table_created_ = false;
  return {};
}

bool HostNetwork::unprepare(uint32_t slot) { return ::unlink(marker_path(slot).c_str()) == 0; }

std::vector<uint32_t> HostNetwork::prepared_slots() {
  std::vector<uint32_t> slots;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(kPreparedDir, ec)) {
    std::string name = e.path().filename().string();
    uint32_t slot = 0;
    if (std::sscanf(name.c_str(), "prepared-%u", &slot) == 1 && name == fmt::format("prepared-{}", slot))
      slots.push_back(slot);
  }
  return slots;
}

Status HostNetwork::adopt() {
  netns_created_ = host_table_created_ = true;  // claimed: ours to tear down
  struct stat st {};
  if (::stat(("/run/netns/" + netns_).c_str(), &st) != 0) return errno_error("/run/netns/" + netns_);
  FORKVM_CHECK(open_tap_in_netns());
  // Back to an ordinary TAP: it goes with this fd or the netns, as an unprepared one does.
  FORKVM_CHECK(set_tap_persistent(tap_, false));
  adopted_ = true;
  return {};
}

Status HostNetwork::setup() {
  struct stat st {};
  if (::stat(("/run/netns/" + netns_).c_str(), &st) == 0) {
    return make_error("netns {} exists (another VM on slot {}, or a leftover: ip netns del {})", netns_,
                      slot_, netns_);
  }
  const std::string& ip = ip_tool_;
  FORKVM_CHECK(run_command({ip, "netns", "add", netns_}));
  netns_created_ = true;
  // A leftover host end from a crashed run would block the veth; it is ours to remove.
  if (::access(("/sys/class/net/" + host_if_).c_str(), F_OK) == 0) {
    FORKVM_CHECK(run_command({ip, "link", "del", host_if_}));
  }
  FORKVM_CHECK(
      run_command({ip, "link", "add", host_if_, "type", "veth", "peer", "name", ns_if_, "netns", netns_}));
  FORKVM_CHECK(run_command({ip, "addr", "add", host_ip_ + "/30", "dev", host_if_}));
  FORKVM_CHECK(run_command({ip, "link", "set", host_if_, "up"}));
  FORKVM_CHECK(run_command({ip, "-n", netns_, "link", "set", "lo", "up"}));
  FORKVM_CHECK(run_command({ip, "-n", netns_, "addr", "add", ns_ip_ + "/30", "dev", ns_if_}));
  FORKVM_CHECK(run_command({ip, "-n", netns_, "link", "set", ns_if_, "up"}));
  FORKVM_CHECK(run_command({ip, "-n", netns_, "route", "add", "default", "via", host_ip_}));
  FORKVM_CHECK(open_tap_in_netns());
  FORKVM_CHECK(
      run_command({ip, "-n", netns_, "addr", "add", std::string(kGatewayAddress) + "/30", "dev", kTapName}));
  FORKVM_CHECK(run_command({ip, "-n", netns_, "link", "set", kTapName, "up"}));
  // Inside: the guest's /30 leaves as the veth address; the veth address comes in as the guest.
  FORKVM_CHECK(
      run_command({ip, "netns", "exec", netns_, nft_tool_,
                   fmt::format("add table ip fkvm; "
                               "add chain ip fkvm post {{ type nat hook postrouting priority 100 ; }}; "
                               "add rule ip fkvm post oifname \"{0}\" ip saddr 172.16.0.0/30 masquerade; "
                               "add chain ip fkvm pre {{ type nat hook prerouting priority -100 ; }}; "
                               "add rule ip fkvm pre iifname \"{0}\" ip daddr {1} dnat to {2}",
                               ns_if_, ns_ip_, kGuestAddress)}));
  // Host: the veth's /30 leaves through whatever the default route picks.
  // add+delete+add makes the table exactly this even after a crashed run.
  FORKVM_CHECK(run_command(
      {nft_tool_, fmt::format("add table ip {0}; delete table ip {0}; add table ip {0}; "
                              "add chain ip {0} post {{ type nat hook postrouting priority 100 ; }}; "
                              "add rule ip {0} post ip saddr {1} oifname != \"{2}\" masquerade",
                              host_table_, subnet_, host_if_)}));
  host_table_created_ = true;
  FORKVM_CHECK(write_file("/proc/sys/net/ipv4/ip_forward", "1"));
  return {};
}

Status HostNetwork::open_tap_in_netns() {
  // setns(CLONE_NEWNET) changes only the calling thread: do it on a thread
  // of its own so the VMM's threads stay in the host namespace.
  Status result = make_error("TAP thread did not run");
  std::thread t([&] {
    UniqueFd ns(::open(("/run/netns/" + netns_).c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) {
      result = errno_error("open /run/netns/" + netns_);
      return;
    }
    if (::setns(ns.get(), CLONE_NEWNET) != 0) {
      result = errno_error("setns into " + netns_);
      return;
    }
    auto tap = open_tap(kTapName);
    if (!tap.ok()) {
      result = tap.error();
      return;
    }
    tap_ = std::move(*tap);
    // /proc/sys/net resolves against the opening thread's namespace: this is the netns's own switch.
    result = write_file("/proc/sys/net/ipv4/ip_forward", "1");
  });
  t.join();
  return result;
}

void HostNetwork::teardown() {
  tap_.reset();
  // Best effort, and logged: teardown runs on VM exit where nothing can be done about a failure.
  if (host_table_created_) {
    if (auto s = run_command({nft_tool_, "delete table ip " + host_table_}); !s.ok()) {
      log(LogLevel::warn, "net: {}", s.error().message);
    }
  }
  if (netns_created_) {
    // Deleting the netns destroys the veth pair (both ends) and the TAP once no fd holds it.
    if (auto s = run_command({ip_tool_, "netns", "del", netns_}); !s.ok()) {
      log(LogLevel::warn, "net: {}", s.error().message);
    }
  }
  host_table_created_ = netns_created_ = false;
}

HostNetwork::~HostNetwork() { teardown(); }

}  // namespace forkvm::net
