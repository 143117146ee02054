// The slice of the i8042 PS/2 controller Linux needs: status and data
// reads, the command byte, self-tests, and command 0xFE, which pulses the
// CPU reset line: how `reboot=k` (and the kernel's fallback) reboots.
// There is no keyboard behind it and no IRQ; boot the guest with
// `i8042.noaux i8042.nomux i8042.dumbkbd i8042.nopnp` to skip probing one.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>

#include "vmm/bus.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm {

// One bus range, 0x60..0x64: offset 0 is the data port, offset 4 the
// status/command port. Offsets 1-3 (0x61, the PIT/speaker port, is served
// by KVM's in-kernel PIT) read 0 here.
inline constexpr uint64_t kI8042Base = 0x60;
inline constexpr uint64_t kI8042Size = 5;

class I8042 final : public BusDevice {
 public:
  // `on_reset` runs on the vCPU thread that wrote 0xFE, without the lock.
  explicit I8042(std::function<void()> on_reset);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  void save_state(StateWriter& out);
  [[nodiscard]] Status load_state(StateReader& in);

 private:
  // Returns true when the guest asked for a reset.
  bool command(uint8_t cmd);
  bool data(uint8_t value);

  std::function<void()> on_reset_;
  std::mutex mu_;                // guards the state below
  std::deque<uint8_t> output_;   // bytes the guest reads from port 0x60
  uint8_t command_byte_ = 0x45;  // kbd interrupt, system flag, translate
  uint8_t pending_command_ = 0;  // a command waiting for its data byte
  bool last_was_command_ = false;
};

}  // namespace forkvm
