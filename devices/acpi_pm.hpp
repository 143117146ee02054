// The ACPI PM1a register block (ACPI 6.4, 4.8.3.1-2): PM1 status and enable
// (2 bytes each) at kPm1EventPort and PM1 control (2 bytes) right after.
// The FADT points at these ports and the DSDT's \_S5 gives SLP_TYP
// kS5SleepType, so Linux's `poweroff` writes SLP_TYP << 10 | SLP_EN to
// PM1a_CNT. No fixed event is ever raised: status reads back 0.
#pragma once

#include <array>
#include <functional>
#include <mutex>

#include "vmm/bus.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm {

inline constexpr uint16_t kPm1EventPort = 0x600;
inline constexpr uint64_t kAcpiPmPortCount = 6;  // status, enable, control: the bus range at kPm1EventPort
inline constexpr uint8_t kS5SleepType = 5;
inline constexpr uint16_t kSleepEnable = 1U << 13;  // PM1_CNT.SLP_EN
inline constexpr unsigned kSleepTypeShift = 10;     // PM1_CNT.SLP_TYP is bits 10-12
inline constexpr uint16_t kSciEnable = 1U << 0;     // PM1_CNT.SCI_EN: always in ACPI mode

class AcpiPm final : public BusDevice {
 public:
  // `on_poweroff` runs on the writing vCPU thread, without the device lock.
  explicit AcpiPm(std::function<void()> on_poweroff) : on_poweroff_(std::move(on_poweroff)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  void save_state(StateWriter& out);
  [[nodiscard]] Status load_state(StateReader& in);

 private:
  static constexpr size_t kEnable = 2;
  static constexpr size_t kControl = 4;

  std::mutex mu_;                                                          // guards regs_; a leaf lock
  std::array<uint8_t, kAcpiPmPortCount> regs_{0, 0, 0, 0, kSciEnable, 0};  // status, enable, control
  std::function<void()> on_poweroff_;
};

}  // namespace forkvm
