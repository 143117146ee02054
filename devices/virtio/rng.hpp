// virtio-rng (device id 4): fills device-writable buffers from the host's
// getrandom(). One queue, no config space.
#pragma once

#include <memory>

#include "devices/virtio/device.hpp"

namespace forkvm::virtio {

inline constexpr uint32_t kRngDeviceId = 4;

class Rng final : public Device {
 public:
  static constexpr uint16_t kQueueMaxSize = 256;
  // Per request: bounds the time one notification can keep the event loop.
  static constexpr size_t kMaxBytesPerRequest = 64 * 1024;

  Rng() : Device(1, kQueueMaxSize) {}

  [[nodiscard]] uint32_t device_id() const override { return kRngDeviceId; }
  [[nodiscard]] uint64_t device_features() const override;
  void process_queue(uint16_t index) override;

 private:
  [[nodiscard]] std::span<const uint8_t> config_space() const override { return {}; }
  [[nodiscard]] Status do_activate() override { return {}; }
  void do_reset() override {}

  // Bytes written into the chain's writable buffers, or an error for a bad chain.
  [[nodiscard]] Result<uint32_t> fill(DescriptorChain& chain);
};

}  // namespace forkvm::virtio
