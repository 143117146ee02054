// The virtio-mmio transport, version 2 (virtio 1.2, 4.2.2) only: a 4 KiB
// register window on the MMIO bus in front of one virtio::Device. The legacy
// (version 1) register set is refused.
//
// Threads and locks: register accesses come from vCPU threads; queue
// notifications delivered through an ioeventfd and device completions arrive
// on the event loop thread. One mutex, mu_, serialises all of them and
// covers both the transport's registers and the whole device. Lock order:
// mu_ is the outermost lock; the device takes no lock of its own and calls
// out only to InterruptLine::trigger() (an eventfd write), so nothing is
// ever acquired while holding mu_.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "devices/virtio/device.hpp"
#include "vmm/bus.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/interrupt.hpp"

namespace forkvm::virtio {

// Register offsets in the window.
namespace mmio {
inline constexpr uint64_t kMagicValue = 0x000;
inline constexpr uint64_t kVersion = 0x004;
inline constexpr uint64_t kDeviceId = 0x008;
inline constexpr uint64_t kVendorId = 0x00c;
inline constexpr uint64_t kDeviceFeatures = 0x010;
inline constexpr uint64_t kDeviceFeaturesSel = 0x014;
inline constexpr uint64_t kDriverFeatures = 0x020;
inline constexpr uint64_t kDriverFeaturesSel = 0x024;
inline constexpr uint64_t kLegacyGuestPageSize = 0x028;
inline constexpr uint64_t kQueueSel = 0x030;
inline constexpr uint64_t kQueueNumMax = 0x034;
inline constexpr uint64_t kQueueNum = 0x038;
inline constexpr uint64_t kLegacyQueueAlign = 0x03c;
inline constexpr uint64_t kLegacyQueuePfn = 0x040;
inline constexpr uint64_t kQueueReady = 0x044;
inline constexpr uint64_t kQueueNotify = 0x050;
inline constexpr uint64_t kInterruptStatus = 0x060;
inline constexpr uint64_t kInterruptAck = 0x064;
inline constexpr uint64_t kStatus = 0x070;
inline constexpr uint64_t kQueueDescLow = 0x080;
inline constexpr uint64_t kQueueDescHigh = 0x084;
inline constexpr uint64_t kQueueDriverLow = 0x090;
inline constexpr uint64_t kQueueDriverHigh = 0x094;
inline constexpr uint64_t kQueueDeviceLow = 0x0a0;
inline constexpr uint64_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint64_t kShmSel = 0x0ac;
inline constexpr uint64_t kShmLenLow = 0x0b0;
inline constexpr uint64_t kShmBaseHigh = 0x0bc;
inline constexpr uint64_t kConfigGeneration = 0x0fc;
inline constexpr uint64_t kConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kVersion2 = 2;
inline constexpr uint32_t kVendor = 0x4d564b46;  // "FKVM"
inline constexpr uint64_t kWindowSize = 0x1000;
}  // namespace mmio

class MmioTransport final : public BusDevice {
 public:
  // `base` is the window's guest-physical address (for notify_address()).
  // `mem` and `irq` must outlive the transport.
  MmioTransport(std::shared_ptr<Device> device, const GuestMemory& mem, InterruptLine& irq, uint64_t base);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Where the machine registers one ioeventfd per queue (4 bytes, datamatch
  // = queue index) so notifications skip the vCPU exit; the eventfd's
  // callback calls process_queue(index).
  [[nodiscard]] uint64_t notify_address() const { return base_ + mmio::kQueueNotify; }
  void process_queue(uint16_t index);
  // For Device::event_fd() readiness (e.g. blk's io_uring completions).
  void process_event();

  [[nodiscard]] uint32_t status();
  [[nodiscard]] Device& device() { return *device_; }

  // Snapshot: the transport registers, then the device (Device::save_state).
  // Both under the transport lock, so no notification runs in between.
  [[nodiscard]] Status save_state(StateWriter& out);
  [[nodiscard]] Status load_state(StateReader& in);
  // Device::after_restore() under the lock.
  void after_restore();

 private:
  [[nodiscard]] uint32_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint32_t value);
  void write_status(uint32_t value);
  void write_queue_register(uint64_t offset, uint32_t value);
  [[nodiscard]] Queue* selected_queue();
  void process_queue_locked(uint16_t index);
  void reset_locked();

  std::mutex mu_;  // guards everything below and all of *device_ (see the top of this file)
  std::shared_ptr<Device> device_;
  const GuestMemory& mem_;
  InterruptLine& irq_;
  uint64_t base_;
  uint32_t status_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t queue_sel_ = 0;
};

}  // namespace forkvm::virtio
