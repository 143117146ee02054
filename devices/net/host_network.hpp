// Host networking for one VM, set up by the VMM (needs CAP_NET_ADMIN and
// CAP_SYS_ADMIN): every VM gets the same guest address and MAC, so a VM
// snapshot restored or forked N times needs no guest reconfiguration
// (design: fork-and-snapshot.md, section 3). Per slot N:
//
//   guest 172.16.0.2/30 --tap0 [netns fkvm-N: 172.16.0.1/30, veth fkvmNn 10.200.a.b+2/30]
//         --veth-- [host: fkvmNh 10.200.a.b+1/30] -- default route
//
//   * in the netns: MASQUERADE 172.16.0.0/30 out of the veth, DNAT whatever
//     reaches 10.200.a.b+2 to the guest (the host reaches guest port P at
//     ns_address():P), ip_forward on;
//   * on the host: nft table ip fkvm_N masquerading the /30 out of any other
//     interface, ip_forward on.
// The TAP is created inside the netns from a short-lived thread (setns is
// per thread); its fd keeps working from the VMM's own namespace. Teardown
// (the destructor) deletes the netns, which takes the veth pair and TAP
// with it, and the host table.
//
// Setting a slot up runs a dozen `ip` and `nft` commands: tens of
// milliseconds a VM start would wait for. prepare() does it ahead of time
// (the API engine keeps a few slots prepared), leaving a persistent TAP and
// a marker file; create() on a prepared slot claims the marker (unlinking
// it: one claimant wins) and only attaches to the TAP. A claimed slot is
// the claimant's to tear down, as if it had set it up itself.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::net {

inline constexpr uint32_t kMaxSlot = 16383;  // 10.200.0.0/16 in /30s
inline constexpr const char* kGuestAddress = "172.16.0.2";
inline constexpr const char* kGatewayAddress = "172.16.0.1";
inline constexpr std::array<uint8_t, 6> kGuestMac{0x06, 0x00, 0xAC, 0x10, 0x00, 0x02};
inline constexpr const char* kTapName = "tap0";
inline constexpr const char* kPreparedDir = "/run/forkvm-net";  // prepared-<slot> markers

class HostNetwork {
 public:
  static Result<std::unique_ptr<HostNetwork>> create(uint32_t slot);
  // Sets the slot up for a later create() and leaves it so.
  static Status prepare(uint32_t slot);
  // Takes back a prepared slot nobody claimed: false if it was not (or no
  // longer) prepared. Its network is left for the caller to remove.
  static bool unprepare(uint32_t slot);
  // The slots with a prepared marker, claimed or not yet.
  [[nodiscard]] static std::vector<uint32_t> prepared_slots();
  [[nodiscard]] bool adopted() const { return adopted_; }  // a prepared slot, claimed
  ~HostNetwork();
  HostNetwork(const HostNetwork&) = delete;
  HostNetwork& operator=(const HostNetwork&) = delete;

  // The TAP fd for virtio::Net (once).
  [[nodiscard]] UniqueFd take_tap() { return std::move(tap_); }
  [[nodiscard]] uint32_t slot() const { return slot_; }
  [[nodiscard]] const std::string& netns() const { return netns_; }
  [[nodiscard]] const std::string& host_address() const { return host_ip_; }  // host end of the veth
  [[nodiscard]] const std::string& ns_address() const { return ns_ip_; }      // reaches the guest (DNAT)
  // Kernel arguments that configure the guest's eth0 (CONFIG_IP_PNP).
  [[nodiscard]] static std::string guest_cmdline();

 private:
  explicit HostNetwork(uint32_t slot);
  Status setup();
  Status adopt();
  Status open_tap_in_netns();
  void teardown();

  uint32_t slot_;
  std::string netns_;
  std::string host_if_;
  std::string ns_if_;
  std::string host_ip_;
  std::string ns_ip_;
  std::string subnet_;
  std::string host_table_;
  std::string ip_tool_;
  std::string nft_tool_;
  bool netns_created_ = false;
  bool host_table_created_ = false;
  bool adopted_ = false;
  UniqueFd tap_;
};

}  // namespace forkvm::net
