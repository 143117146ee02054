// virtio-net (device id 1) over a TAP device: one rx and one tx queue, the
// MAC and link status in config space, no offloads. Frames carry the 12-byte
// virtio_net_hdr_v1 on both sides (the TAP is opened with IFF_VNET_HDR and a
// 12-byte header size, see devices/net/tap.hpp), so a frame moves between
// guest buffers and the TAP with one readv/writev and no copy.
//
// Threads and locks: under the transport's one mutex like every device. The
// TAP is not watched directly; it sits in a private epoll set whose fd is
// event_fd(), so readiness arrives as MmioTransport::process_event() with
// that lock held. EPOLLIN is registered only while the guest has rx buffers:
// with none, the TAP's own queue holds (and past its length drops) frames and
// nothing spins; posting buffers re-arms it. Byte counters are atomics so
// another thread (the idle timer) may read them without the lock.
#pragma once

#include <array>
#include <atomic>
#include <memory>

#include "devices/virtio/device.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::virtio {

inline constexpr uint32_t kNetDeviceId = 1;
inline constexpr unsigned kNetFeatureMac = 5;
inline constexpr unsigned kNetFeatureStatus = 16;
inline constexpr uint16_t kNetStatusLinkUp = 1;
// struct virtio_net_hdr_v1 (VERSION_1 always has num_buffers).
inline constexpr size_t kNetHdrSize = 12;
// Without offloads a frame is at most the MTU plus its Ethernet header; we
// allow up to 64 KiB so a guest with a jumbo MTU still works.
inline constexpr size_t kNetMaxFrame = 65535;

using MacAddress = std::array<uint8_t, 6>;

struct NetStats {
  uint64_t rx_bytes = 0;  // host -> guest, frame bytes without the virtio header
  uint64_t rx_frames = 0;
  uint64_t tx_bytes = 0;  // guest -> host
  uint64_t tx_frames = 0;
  uint64_t tx_dropped = 0;  // malformed chains and frames the TAP refused
};

class Net final : public Device {
 public:
  static constexpr uint16_t kQueueMaxSize = 256;
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;

  // `tap`: nonblocking, IFF_TAP|IFF_NO_PI|IFF_VNET_HDR with a 12-byte header.
  // Tests pass one end of a SOCK_DGRAM socketpair, which keeps frame boundaries.
  static Result<std::shared_ptr<Net>> create(UniqueFd tap, const MacAddress& mac);

  [[nodiscard]] uint32_t device_id() const override { return kNetDeviceId; }
  [[nodiscard]] uint64_t device_features() const override;
  void process_queue(uint16_t index) override;
  [[nodiscard]] int event_fd() const override { return epoll_.get(); }
  void process_event() override;

  // Safe from any thread.
  [[nodiscard]] NetStats stats() const;

 private:
  Net(UniqueFd tap, UniqueFd epoll, const MacAddress& mac);
  [[nodiscard]] std::span<const uint8_t> config_space() const override { return config_; }
  [[nodiscard]] Status do_activate() override;
  void do_reset() override;

  void process_tx();
  void process_rx();
  void set_interest(bool want_in, bool want_out);

  UniqueFd tap_;
  UniqueFd epoll_;
  std::array<uint8_t, 10> config_{};  // mac[6], le16 status, le16 max_virtqueue_pairs
  bool want_in_ = false;
  bool want_out_ = false;  // tx is waiting for the TAP to take a frame
  bool registered_ = false;
  std::atomic<uint64_t> rx_bytes_{0};
  std::atomic<uint64_t> rx_frames_{0};
  std::atomic<uint64_t> tx_bytes_{0};
  std::atomic<uint64_t> tx_frames_{0};
  std::atomic<uint64_t> tx_dropped_{0};
};

}  // namespace forkvm::virtio
