// An interrupt line a device raises. In a VM it is an eventfd bound to a GSI
// with KVM_IRQFD (no exit to userspace); in unit tests it counts.
#pragma once

#include <cstdint>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

class InterruptLine {
 public:
  virtual ~InterruptLine() = default;
  virtual void trigger() = 0;
};

class EventFdInterrupt final : public InterruptLine {
 public:
  static Result<EventFdInterrupt> create(uint32_t gsi);
  void trigger() override;
  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] uint32_t gsi() const { return gsi_; }

 private:
  EventFdInterrupt(UniqueFd fd, uint32_t gsi) : fd_(std::move(fd)), gsi_(gsi) {}
  UniqueFd fd_;
  uint32_t gsi_;
};

}  // namespace forkvm
