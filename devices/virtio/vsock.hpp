// virtio-vsock (device id 19) in userspace, no vhost: three queues (rx, tx,
// event), config space = guest_cid, and a host side that speaks the hybrid
// vsock protocol over Unix sockets (vsock_muxer.hpp).
//
// Threads and locks: like every device, this runs under the transport's one
// mutex (mmio.hpp). Host sockets are not watched one by one on the event
// loop; they sit in the muxer's epoll set whose fd is event_fd(), so host
// readiness arrives as MmioTransport::process_event() with that same lock
// held. The only entry point safe without the lock is
// request_transport_reset(), which sets atomics and kicks the epoll set.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "devices/virtio/device.hpp"
#include "devices/virtio/vsock_muxer.hpp"

namespace forkvm::virtio {

struct VsockConfig {
  uint64_t guest_cid = 3;
  std::string uds_path;  // host programs connect here; guest connections to port P go to uds_path_P
};

class Vsock final : public Device {
 public:
  static constexpr uint16_t kQueueMaxSize = 256;
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kEventQueue = 2;

  static Result<std::shared_ptr<Vsock>> create(const VsockConfig& config);

  [[nodiscard]] uint32_t device_id() const override { return vsock::kDeviceId; }
  [[nodiscard]] uint64_t device_features() const override;
  void process_queue(uint16_t index) override;
  [[nodiscard]] int event_fd() const override { return muxer_->epoll_fd(); }
  void process_event() override;

  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET: closes every connection (guest
  // listeners survive), optionally moves the guest to a new CID first, and
  // tells the driver on the event queue (or as soon as it posts a buffer).
  // Under the transport's lock, or in tests.
  void send_transport_reset(std::optional<uint64_t> new_cid = std::nullopt);
  // The same from any thread: done on the next process_event().
  void request_transport_reset(std::optional<uint64_t> new_cid = std::nullopt);

  [[nodiscard]] uint64_t guest_cid() const { return guest_cid_; }
  [[nodiscard]] vsock::Muxer& muxer() { return *muxer_; }

 private:
  Vsock(std::unique_ptr<vsock::Muxer> muxer, uint64_t guest_cid);
  [[nodiscard]] std::span<const uint8_t> config_space() const override { return config_; }
  [[nodiscard]] Status do_activate() override;
  void do_reset() override;
  // Snapshot: connections are host sockets and are not saved. A restored
  // device already carries its new CID; after_restore() sends the driver a
  // transport reset, which drops its connections and makes it re-read the CID.
  void do_save_state(StateWriter& out) const override;
  [[nodiscard]] Status do_load_state(StateReader& in) override;
  void on_restored() override { send_transport_reset(); }

  void set_cid(uint64_t cid);
  // tx then rx until neither can move; rx draining may unblock a stalled tx.
  void run_queues();
  void process_tx();
  void pump_rx();
  void deliver_events();
  void acknowledge_reset(bool timed_out);
  [[nodiscard]] bool queue_usable(uint16_t index);

  std::unique_ptr<vsock::Muxer> muxer_;
  uint64_t guest_cid_;
  uint64_t previous_cid_ = 0;        // the CID in the snapshot this device was restored from
  std::array<uint8_t, 8> config_{};  // struct virtio_vsock_config { le64 guest_cid; }
  bool tx_stalled_ = false;          // tx left in the ring until the guest takes our RSTs
  bool reset_event_owed_ = false;
  // A transport reset the driver was sent and has not handled yet: host
  // connections are refused meanwhile, since one made now would be closed by
  // the reset, or answered from the guest's old CID. The driver re-posts its
  // event buffer (a kick on the event queue) once it handled the event; a
  // driver that never does is trusted after kResetAckTimeout.
  bool reset_unacknowledged_ = false;
  std::chrono::steady_clock::time_point reset_sent_at_;
  uint16_t reset_avail_mark_ = 0;  // the event queue's avail idx when the reset was delivered
  std::atomic<bool> reset_requested_{false};
  std::atomic<uint64_t> requested_cid_{0};  // 0: keep the CID
};

}  // namespace forkvm::virtio
