#include "devices/virtio/device.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_unoffered{false};
std::atomic<bool> g_logged_config_write{false};
std::atomic<bool> g_logged_needs_reset{false};
}  // namespace

Device::Device(size_t queue_count, uint16_t queue_max_size)
    : queue_max_size_(queue_max_size), queues_(queue_count, Queue(queue_max_size)) {}

void Device::set_acked_features(uint64_t features) {
  const uint64_t offered = device_features();
  if ((features & ~offered) != 0) {
    log_once(g_logged_unoffered,
             "virtio device {}: driver acked features {:#x} that were not offered; dropped", device_id(),
             features & ~offered);
  }
  acked_features_ = features & offered;
}

void Device::read_config(uint64_t offset, std::span<uint8_t> out) const {
  std::fill(out.begin(), out.end(), uint8_t{0});
  const auto config = config_space();
  if (offset >= config.size()) return;
  const size_t n = std::min<uint64_t>(out.size(), config.size() - offset);
  std::memcpy(out.data(), config.data() + offset, n);
}

void Device::write_config(uint64_t offset, std::span<const uint8_t> in) { do_write_config(offset, in); }

void Device::do_write_config(uint64_t offset, std::span<const uint8_t> in) {
  log_once(g_logged_config_write, "virtio device {}: ignored {}-byte config write at {:#x} (read-only)",
           device_id(), in.size(), offset);
}

Status Device::activate(const GuestMemory& mem, InterruptLine& irq) {
  if (activated_) return make_error("virtio device {} is already active", device_id());
  irq_ = &irq;  // first, so a failure below can raise the config-change interrupt
  const bool event_idx = (acked_features_ & feature_bit(kFeatureEventIdx)) != 0;
  for (size_t i = 0; i < queues_.size(); ++i) {
    Queue& q = queues_[i];
    if (!q.ready()) continue;  // a driver may leave queues it does not use unset
    q.set_event_idx(event_idx);
    if (auto s = q.activate(mem); !s.ok()) {
      const Error e = s.error().context(fmt::format("activate queue {}", i));
      set_needs_reset(e);
      return e;
    }
  }
  mem_ = &mem;
  if (auto s = do_activate(); !s.ok()) {
    set_needs_reset(s.error());
    return s.error();
  }
  activated_ = true;
  return {};
}

void Device::reset() {
  do_reset();
  for (auto& q : queues_) q.reset();
  acked_features_ = 0;
  mem_ = nullptr;
  activated_ = false;
  needs_reset_ = false;
  interrupt_status_ = 0;
  // irq_ is kept: set_needs_reset() may need it before the next activation.
}

Status Device::save_state(StateWriter& out) {
  FORKVM_CHECK(prepare_save());
  out.u32(device_id());
  out.u64(acked_features_);
  out.u32(config_generation_);
  out.boolean(activated_);
  out.boolean(needs_reset_);
  out.u32(interrupt_status_.load());
  out.u32(static_cast<uint32_t>(queues_.size()));
  for (const Queue& q : queues_) q.save_state(out);
  StateWriter own;
  do_save_state(own);
  out.bytes(own.data());
  return {};
}

Status Device::load_state(StateReader& in, const GuestMemory& mem, InterruptLine& irq) {
  const uint32_t id = FORKVM_TRY(in.u32());
  if (id != device_id()) {
    return make_error("state of {}: saved from virtio device type {}, restoring into type {}", in.what(), id,
                      device_id());
  }
  const uint64_t features = FORKVM_TRY(in.u64());
  if ((features & ~device_features()) != 0) {
    return make_error("state of {}: driver features {:#x} include bits this device does not offer ({:#x})",
                      in.what(), features, device_features());
  }
  acked_features_ = features;
  config_generation_ = FORKVM_TRY(in.u32());
  const bool activated = FORKVM_TRY(in.boolean());
  needs_reset_ = FORKVM_TRY(in.boolean());
  interrupt_status_ = FORKVM_TRY(in.u32()) & (kInterruptUsedBuffer | kInterruptConfigChange);
  const uint32_t count = FORKVM_TRY(in.u32());
  if (count != queues_.size()) {
    return make_error("state of {}: {} queues saved, the device has {}", in.what(), count, queues_.size());
  }
  for (Queue& q : queues_) FORKVM_CHECK(q.load_state(in));
  const auto own = FORKVM_TRY(in.bytes(in.remaining()));
  StateReader own_reader(own, in.what());
  FORKVM_CHECK(do_load_state(own_reader));
  irq_ = &irq;
  if (!activated) return {};
  for (size_t i = 0; i < queues_.size(); ++i) {
    Queue& q = queues_[i];
    if (!q.ready()) continue;
    if (auto s = q.activate(mem); !s.ok()) {
      return s.error().context(fmt::format("state of {}: queue {}", in.what(), i));
    }
  }
  mem_ = &mem;
  FORKVM_CHECK(do_activate());
  activated_ = true;
  return {};
}

void Device::after_restore() {
  if (interrupt_status_.load() != 0 && irq_ != nullptr) irq_->trigger();
  on_restored();
  if (!activated_ || needs_reset_) return;
  // A notify the guest made just before the state was saved may not have
  // been seen: its ioeventfd belonged to the saving process. Look at every
  // queue once, as if notified (an empty queue costs nothing), or a request
  // in flight at a fork or snapshot would wait forever.
  for (size_t i = 0; i < queues_.size(); ++i) {
    if (queues_[i].active()) process_queue(static_cast<uint16_t>(i));
  }
}

void Device::signal_used_queue() {
  interrupt_status_.fetch_or(kInterruptUsedBuffer);
  if (irq_ != nullptr) irq_->trigger();
}

void Device::signal_config_change() {
  interrupt_status_.fetch_or(kInterruptConfigChange);
  if (irq_ != nullptr) irq_->trigger();
}

void Device::set_needs_reset(const Error& why) {
  log_once(g_logged_needs_reset, "virtio device {} needs reset: {}", device_id(), why.message);
  if (needs_reset_) return;
  needs_reset_ = true;
  signal_config_change();
}

}  // namespace forkvm::virtio
