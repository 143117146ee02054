// The abstract virtio device, independent of its transport (virtio-mmio
// here). A device owns its queues, its feature set and config space, and
// raises interrupts through the line the transport hands it at activation.
// The transport serialises every call into a device under its one lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/interrupt.hpp"
#include "vmm/result.hpp"

namespace forkvm::virtio {

// Device status bits (virtio 1.2, 2.1).
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// InterruptStatus bits (4.2.2).
inline constexpr uint32_t kInterruptUsedBuffer = 1;
inline constexpr uint32_t kInterruptConfigChange = 2;

// Transport/ring feature bits (6).
inline constexpr unsigned kFeatureIndirectDesc = 28;
inline constexpr unsigned kFeatureEventIdx = 29;
inline constexpr unsigned kFeatureVersion1 = 32;
[[nodiscard]] constexpr uint64_t feature_bit(unsigned bit) { return uint64_t{1} << bit; }

class Device {
 public:
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  virtual ~Device() = default;

  [[nodiscard]] virtual uint32_t device_id() const = 0;
  // Must include VIRTIO_F_VERSION_1: the mmio transport is modern-only.
  [[nodiscard]] virtual uint64_t device_features() const = 0;

  [[nodiscard]] size_t queue_count() const { return queues_.size(); }
  [[nodiscard]] uint16_t queue_max_size() const { return queue_max_size_; }
  [[nodiscard]] Queue& queue(size_t index) { return queues_.at(index); }

  // The driver's accepted features; bits the device did not offer are
  // dropped (and logged once), as a device must not use them.
  void set_acked_features(uint64_t features);
  [[nodiscard]] uint64_t acked_features() const { return acked_features_; }

  // Config space at any width; reads past the end return zeros, writes to
  // read-only fields are ignored.
  void read_config(uint64_t offset, std::span<uint8_t> out) const;
  void write_config(uint64_t offset, std::span<const uint8_t> in);
  [[nodiscard]] uint32_t config_generation() const { return config_generation_; }

  // DRIVER_OK: checks every ready queue against guest memory and starts the
  // device. On failure the device is marked DEVICE_NEEDS_RESET.
  [[nodiscard]] Status activate(const GuestMemory& mem, InterruptLine& irq);
  [[nodiscard]] bool activated() const { return activated_; }

  // The driver notified queue `index` (only called on an activated device).
  virtual void process_queue(uint16_t index) = 0;
  // A device with host-side completions (an io_uring) exposes an eventfd;
  // the event loop calls process_event() when it is readable.
  [[nodiscard]] virtual int event_fd() const { return -1; }
  virtual void process_event() {}

  [[nodiscard]] uint32_t interrupt_status() const { return interrupt_status_.load(); }
  void ack_interrupt(uint32_t bits) { interrupt_status_.fetch_and(~bits); }
  [[nodiscard]] bool needs_reset() const { return needs_reset_; }

  // The driver wrote 0 to Status. Not virtual: devices reset their own state
  // in do_reset(), which runs first, and the base then clears the rest.
  void reset();

  // Snapshot. save_state() first lets the device finish host-side work
  // (prepare_save(): blk drains in-flight I/O into the used ring) so the
  // saved ring positions are final. load_state() restores features, queues
  // and the device's own state into a freshly created device and, if the
  // driver had it running, re-activates it on `mem`/`irq`.
  [[nodiscard]] Status save_state(StateWriter& out);
  [[nodiscard]] Status load_state(StateReader& in, const GuestMemory& mem, InterruptLine& irq);
  // After every device is loaded, before the vCPUs run: re-raise an
  // interrupt the driver had not yet acknowledged (its injection may have
  // been in flight when we saved), let the device do what a restore means
  // to it (vsock: transport reset), and look at every queue once, for
  // notifications that arrived while the VM was being saved.
  void after_restore();

 protected:
  Device(size_t queue_count, uint16_t queue_max_size);

  [[nodiscard]] const GuestMemory* memory() const { return mem_; }
  // Raise "used buffer" / "configuration change" (bits 0 / 1 of InterruptStatus).
  void signal_used_queue();
  void signal_config_change();
  // The device cannot go on (a broken ring, say): the transport reports
  // DEVICE_NEEDS_RESET and the driver gets a config-change interrupt.
  void set_needs_reset(const Error& why);
  void bump_config_generation() { ++config_generation_; }

 private:
  [[nodiscard]] virtual std::span<const uint8_t> config_space() const = 0;
  // Default: config space is read-only.
  virtual void do_write_config(uint64_t offset, std::span<const uint8_t> in);
  [[nodiscard]] virtual Status do_activate() = 0;
  virtual void do_reset() = 0;
  // Snapshot hooks; the defaults have no device-specific state.
  [[nodiscard]] virtual Status prepare_save() { return {}; }
  virtual void do_save_state(StateWriter& /*out*/) const {}
  [[nodiscard]] virtual Status do_load_state(StateReader& /*in*/) { return {}; }
  virtual void on_restored() {}

  uint16_t queue_max_size_;
  std::vector<Queue> queues_;
  uint64_t acked_features_ = 0;
  uint32_t config_generation_ = 0;
  const GuestMemory* mem_ = nullptr;
  InterruptLine* irq_ = nullptr;
  bool activated_ = false;
  bool needs_reset_ = false;
  // Atomic although the transport lock covers every writer: the transport
  // reads it for InterruptStatus without a second code path to audit.
  std::atomic<uint32_t> interrupt_status_{0};
};

}  // namespace forkvm::virtio
