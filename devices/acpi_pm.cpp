#include "devices/acpi_pm.hpp"

#include <algorithm>

namespace forkvm {

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    data[i] = at < regs_.size() ? regs_[at] : 0xff;
  }
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
  bool poweroff = false;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < data.size(); ++i) {
      const uint64_t at = offset + i;
      if (at < kEnable) continue;  // status is write-1-to-clear, and nothing in it is ever set
      if (at < regs_.size()) regs_[at] = data[i];
    }
    regs_[kControl] |= kSciEnable;  // SCI_EN cannot be cleared: there is no legacy mode
    const auto control = static_cast<uint16_t>(regs_[kControl] | regs_[kControl + 1] << 8);
    const auto sleep_type = static_cast<uint16_t>((control >> kSleepTypeShift) & 0x7);
    if ((control & kSleepEnable) != 0) {
      // SLP_EN is a write-only strobe; it never reads back as set.
      regs_[kControl + 1] = static_cast<uint8_t>(regs_[kControl + 1] & ~(kSleepEnable >> 8));
      poweroff = sleep_type == kS5SleepType;
    }
  }
  if (poweroff && on_poweroff_) on_poweroff_();
}

void AcpiPm::save_state(StateWriter& out) {
  std::lock_guard lock(mu_);
  out.bytes(regs_);
}

Status AcpiPm::load_state(StateReader& in) {
  std::lock_guard lock(mu_);
  const auto regs = FORKVM_TRY(in.bytes(regs_.size()));
  if (regs.size() != regs_.size())
    return make_error("state of ACPI PM: {} register bytes, {} expected", regs.size(), regs_.size());
  std::copy(regs.begin(), regs.end(), regs_.begin());
  regs_[kControl] |= kSciEnable;
  return {};
}

}  // namespace forkvm
