#include "devices/virtio/mmio.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_width{false};
std::atomic<bool> g_logged_legacy{false};
std::atomic<bool> g_logged_register{false};
std::atomic<bool> g_logged_status{false};
std::atomic<bool> g_logged_features{false};
std::atomic<bool> g_logged_queue{false};
std::atomic<bool> g_logged_activate{false};

constexpr uint32_t kSetupStatus = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk;

uint32_t low32(uint64_t v) { return static_cast<uint32_t>(v); }
uint32_t high32(uint64_t v) { return static_cast<uint32_t>(v >> 32); }
uint64_t with_low32(uint64_t v, uint32_t low) { return (v & ~uint64_t{0xffffffff}) | low; }
uint64_t with_high32(uint64_t v, uint32_t high) {
  return (v & uint64_t{0xffffffff}) | (uint64_t{high} << 32);
}
}  // namespace

MmioTransport::MmioTransport(std::shared_ptr<Device> device, const GuestMemory& mem, InterruptLine& irq,
                             uint64_t base)
    : device_(std::move(device)), mem_(mem), irq_(irq), base_(base) {}

void MmioTransport::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset >= mmio::kConfig) {
    device_->read_config(offset - mmio::kConfig, data);
    return;
  }
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (data.size() != 4) {
    log_once(g_logged_width, "virtio-mmio: ignored {}-byte read of register {:#x} (32-bit only)", data.size(),
             offset);
    return;
  }
  const uint32_t v = read_register(offset);
  std::memcpy(data.data(), &v, sizeof v);
}

void MmioTransport::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset >= mmio::kConfig) {
    device_->write_config(offset - mmio::kConfig, data);
    return;
  }
  if (data.size() != 4) {
    log_once(g_logged_width, "virtio-mmio: ignored {}-byte write of register {:#x} (32-bit only)",
             data.size(), offset);
    return;
  }
  uint32_t v;
  std::memcpy(&v, data.data(), sizeof v);
  write_register(offset, v);
}

uint32_t MmioTransport::status() {
  std::lock_guard lock(mu_);
  return status_ | (device_->needs_reset() ? kStatusNeedsReset : 0);
}

Queue* MmioTransport::selected_queue() {
  return queue_sel_ < device_->queue_count() ? &device_->queue(queue_sel_) : nullptr;
}

uint32_t MmioTransport::read_register(uint64_t offset) {
  Queue* q = selected_queue();
  switch (offset) {
    case mmio::kMagicValue:
      return mmio::kMagic;
    case mmio::kVersion:
      return mmio::kVersion2;
    case mmio::kDeviceId:
      return device_->device_id();
    case mmio::kVendorId:
      return mmio::kVendor;
    case mmio::kDeviceFeatures: {
      const uint64_t f = device_->device_features();
      return device_features_sel_ == 0 ? low32(f) : device_features_sel_ == 1 ? high32(f) : 0;
    }
    case mmio::kQueueNumMax:
      return q != nullptr ? q->max_size() : 0;
    case mmio::kQueueReady:
      return q != nullptr && q->ready() ? 1 : 0;
    case mmio::kInterruptStatus:
      return device_->interrupt_status();
    case mmio::kStatus:
      return status_ | (device_->needs_reset() ? kStatusNeedsReset : 0);
    case mmio::kConfigGeneration:
      return device_->config_generation();
    default:
      break;
  }
  // No shared memory regions: their length and base read as all ones (4.2.2).
  if (offset >= mmio::kShmLenLow && offset <= mmio::kShmBaseHigh) return 0xffffffff;
  return 0;  // write-only and reserved registers
}

void MmioTransport::write_register(uint64_t offset, uint32_t value) {
  switch (offset) {
    case mmio::kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case mmio::kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case mmio::kDriverFeatures: {
      // Features may change only between DRIVER and FEATURES_OK (3.1.1).
      if (status_ != (kStatusAcknowledge | kStatusDriver) || driver_features_sel_ > 1) {
        log_once(g_logged_features, "virtio-mmio: ignored DriverFeatures write in status {:#x} (select {})",
                 status_, driver_features_sel_);
        return;
      }
      const uint64_t v = driver_features_sel_ == 0 ? with_low32(driver_features_, value)
                                                   : with_high32(driver_features_, value);
      const uint64_t offered = device_->device_features();
      if ((v & ~offered) != 0) {
        log_once(g_logged_features, "virtio-mmio: driver acked unoffered features {:#x}; dropped",
                 v & ~offered);
      }
      driver_features_ = v & offered;
      return;
    }
    case mmio::kQueueSel:
      queue_sel_ = value;
      return;
    case mmio::kQueueNotify:
      process_queue_locked(static_cast<uint16_t>(value));
      return;
    case mmio::kInterruptAck:
      device_->ack_interrupt(value);
      return;
    case mmio::kStatus:
      write_status(value);
      return;
    case mmio::kLegacyGuestPageSize:
    case mmio::kLegacyQueueAlign:
    case mmio::kLegacyQueuePfn:
      log_once(g_logged_legacy, "virtio-mmio: legacy register {:#x} written; only version 2 is supported",
               offset);
      return;
    case mmio::kQueueNum:
    case mmio::kQueueReady:
    case mmio::kQueueDescLow:
    case mmio::kQueueDescHigh:
    case mmio::kQueueDriverLow:
    case mmio::kQueueDriverHigh:
    case mmio::kQueueDeviceLow:
    case mmio::kQueueDeviceHigh:
      write_queue_register(offset, value);
      return;
    default:
      log_once(g_logged_register, "virtio-mmio: ignored write of {:#x} to register {:#x}", value, offset);
      return;
  }
}

void MmioTransport::write_queue_register(uint64_t offset, uint32_t value) {
  Queue* q = selected_queue();
  // Queues are configured after FEATURES_OK and before DRIVER_OK (3.1.1).
  // Linux also clears QueueReady while tearing down after a reset: harmless.
  if (q == nullptr || status_ != kSetupStatus) {
    if (!(offset == mmio::kQueueReady && value == 0)) {
      log_once(g_logged_queue, "virtio-mmio: ignored write to queue {} register {:#x} in status {:#x}",
               queue_sel_, offset, status_);
    }
    return;
  }
  switch (offset) {
    case mmio::kQueueNum:
      if (value > 0xffff || !q->is_valid_size(static_cast<uint16_t>(value))) {
        log_once(g_logged_queue, "virtio-mmio: queue {} size {} refused (power of two up to {})", queue_sel_,
                 value, q->max_size());
        // Size 0 is never valid, so activating this queue will fail and the
        // device will ask for a reset rather than use a size the driver
        // did not choose.
        q->set_size(0);
        return;
      }
      q->set_size(static_cast<uint16_t>(value));
      return;
    case mmio::kQueueReady:
      q->set_ready(value == 1);
      return;
    case mmio::kQueueDescLow:
      q->set_desc_table(with_low32(q->desc_table(), value));
      return;
    case mmio::kQueueDescHigh:
      q->set_desc_table(with_high32(q->desc_table(), value));
      return;
    case mmio::kQueueDriverLow:
      q->set_avail_ring(with_low32(q->avail_ring(), value));
      return;
    case mmio::kQueueDriverHigh:
      q->set_avail_ring(with_high32(q->avail_ring(), value));
      return;
    case mmio::kQueueDeviceLow:
      q->set_used_ring(with_low32(q->used_ring(), value));
      return;
    case mmio::kQueueDeviceHigh:
      q->set_used_ring(with_high32(q->used_ring(), value));
      return;
    default:
      return;
  }
}

void MmioTransport::write_status(uint32_t value) {
  if (value == 0) {
    reset_locked();
    return;
  }
  // Drivers write back what they read plus one bit; what they read may carry
  // our DEVICE_NEEDS_RESET, which is the device's to set, not theirs.
  value &= ~kStatusNeedsReset;
  const uint32_t added = value & ~status_;
  if ((value & status_) != status_ || added == 0) {
    log_once(g_logged_status, "virtio-mmio: status write {:#x} over {:#x} refused (only reset clears bits)",
             value, status_);
    return;
  }
  if (added == kStatusFailed) {  // the driver gave up on the device
    status_ = value;
    return;
  }
  const uint32_t step_from = added == kStatusAcknowledge  ? 0
                             : added == kStatusDriver     ? kStatusAcknowledge
                             : added == kStatusFeaturesOk ? kStatusAcknowledge | kStatusDriver
                             : added == kStatusDriverOk   ? kSetupStatus
                                                          : ~0u;
  if (status_ != step_from) {
    log_once(g_logged_status, "virtio-mmio: status transition {:#x} -> {:#x} refused", status_, value);
    return;
  }
  if (added == kStatusFeaturesOk) {
    // Modern only: a driver that did not accept VERSION_1 is a legacy
    // driver, and leaving FEATURES_OK clear tells it so (3.1.1 step 6).
    if ((driver_features_ & feature_bit(kFeatureVersion1)) == 0) {
      log_once(g_logged_legacy, "virtio-mmio: driver did not accept VIRTIO_F_VERSION_1; FEATURES_OK refused");
      return;
    }
    device_->set_acked_features(driver_features_);
  }
  status_ = value;
  if (added == kStatusDriverOk) {
    if (auto s = device_->activate(mem_, irq_); !s.ok()) {
      log_once(g_logged_activate, "virtio-mmio: activating device {}: {}", device_->device_id(),
               s.error().message);
    }
  }
}

void MmioTransport::reset_locked() {
  device_->reset();
  status_ = 0;
  device_features_sel_ = 0;
  driver_features_sel_ = 0;
  driver_features_ = 0;
  queue_sel_ = 0;
}

Status MmioTransport::save_state(StateWriter& out) {
  std::lock_guard lock(mu_);
  out.u32(status_);
  out.u32(device_features_sel_);
  out.u32(driver_features_sel_);
  out.u64(driver_features_);
  out.u32(queue_sel_);
  return device_->save_state(out);
}

Status MmioTransport::load_state(StateReader& in) {
  std::lock_guard lock(mu_);
  status_ = FORKVM_TRY(in.u32()) & ~kStatusNeedsReset;
  device_features_sel_ = FORKVM_TRY(in.u32());
  driver_features_sel_ = FORKVM_TRY(in.u32());
  driver_features_ = FORKVM_TRY(in.u64());
  queue_sel_ = FORKVM_TRY(in.u32());
  return device_->load_state(in, mem_, irq_);
}

void MmioTransport::after_restore() {
  std::lock_guard lock(mu_);
  device_->after_restore();  // looks at every queue once, as if notified
}

void MmioTransport::process_queue(uint16_t index) {
  std::lock_guard lock(mu_);
  process_queue_locked(index);
}

void MmioTransport::process_queue_locked(uint16_t index) {
  // A notify before DRIVER_OK, for a queue the driver left unset, or after
  // the device broke is dropped: there is nothing valid to look at.
  if (!device_->activated() || device_->needs_reset() || index >= device_->queue_count()) return;
  if (!device_->queue(index).active()) return;
  device_->process_queue(index);
}

void MmioTransport::process_event() {
  std::lock_guard lock(mu_);
  // Always: the device must consume the eventfd's readiness even when it was
  // reset in between, or the event loop would spin on it.
  device_->process_event();
}

}  // namespace forkvm::virtio
