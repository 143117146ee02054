#include "devices/i8042.hpp"

#include <algorithm>

namespace forkvm {
namespace {

constexpr uint64_t kDataPort = 0;
constexpr uint64_t kCommandPort = 4;

constexpr uint8_t kStatusOutputFull = 0x01;
constexpr uint8_t kStatusSystem = 0x04;   // set after a passed self-test
constexpr uint8_t kStatusCommand = 0x08;  // last write went to the command port

constexpr uint8_t kCmdReadCommandByte = 0x20;
constexpr uint8_t kCmdWriteCommandByte = 0x60;
constexpr uint8_t kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdKbdTest = 0xab;
constexpr uint8_t kCmdAuxTest = 0xa9;
constexpr uint8_t kCmdReadOutputPort = 0xd0;
constexpr uint8_t kCmdWriteOutputPort = 0xd1;
constexpr uint8_t kCmdPulseReset = 0xfe;

constexpr uint8_t kSelfTestPassed = 0x55;
constexpr uint8_t kOutputPortResetHigh = 0x01;  // bit 0 low holds the CPU in reset
constexpr size_t kMaxOutput = 16;

}  // namespace

I8042::I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}

void I8042::read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (data.empty()) return;
  std::lock_guard lock(mu_);
  if (offset == kCommandPort) {
    // Input buffer never full: we consume writes at once, so kb_wait() passes.
    data[0] = static_cast<uint8_t>(kStatusSystem | (last_was_command_ ? kStatusCommand : 0) |
                                   (output_.empty() ? 0 : kStatusOutputFull));
  } else if (offset == kDataPort && !output_.empty()) {
    data[0] = output_.front();
    output_.pop_front();
  }
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty()) return;
  bool reset = false;
  {
    std::lock_guard lock(mu_);
    if (offset == kCommandPort) reset = command(data[0]);
    if (offset == kDataPort) reset = this->data(data[0]);
  }
  // Outside the lock: the callback may stop vCPUs, including this one.
  if (reset && on_reset_) on_reset_();
}

bool I8042::command(uint8_t cmd) {
  last_was_command_ = true;
  pending_command_ = 0;
  auto reply = [this](uint8_t b) {
    if (output_.size() < kMaxOutput) output_.push_back(b);
  };
  switch (cmd) {
    case kCmdReadCommandByte:
      reply(command_byte_);
      break;
    case kCmdWriteCommandByte:
    case kCmdWriteOutputPort:
      pending_command_ = cmd;
      break;
    case kCmdSelfTest:
      reply(kSelfTestPassed);
      break;
    case kCmdKbdTest:
    case kCmdAuxTest:
      reply(0x00);
      break;  // interface OK
    case kCmdReadOutputPort:
      reply(kOutputPortResetHigh);
      break;
    case kCmdPulseReset:
      return true;
    default:
      break;  // enable/disable ports and the rest: nothing to do
  }
  return false;
}

bool I8042::data(uint8_t value) {
  last_was_command_ = false;
  const uint8_t cmd = pending_command_;
  pending_command_ = 0;
  if (cmd == kCmdWriteCommandByte) command_byte_ = value;
  // Clearing output-port bit 0 asserts the reset line, another reboot path.
  if (cmd == kCmdWriteOutputPort) return (value & kOutputPortResetHigh) == 0;
  return false;  // bytes for a keyboard that is not there
}

void I8042::save_state(StateWriter& out) {
  std::lock_guard lock(mu_);
  const std::vector<uint8_t> output(output_.begin(), output_.end());
  out.bytes(output);
  out.u8(command_byte_);
  out.u8(pending_command_);
  out.boolean(last_was_command_);
}

Status I8042::load_state(StateReader& in) {
  std::lock_guard lock(mu_);
  const auto output = FORKVM_TRY(in.bytes(kMaxOutput));
  output_.assign(output.begin(), output.end());
  command_byte_ = FORKVM_TRY(in.u8());
  pending_command_ = FORKVM_TRY(in.u8());
  last_was_command_ = FORKVM_TRY(in.boolean());
  return {};
}

}  // namespace forkvm
