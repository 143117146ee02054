// A 16550A UART (8250 family) on the PIO bus, enough for Linux's 8250
// driver and earlyprintk: transmit goes straight to a sink (no baud timing,
// the transmitter is always empty), receive comes from enqueue_input().
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "vmm/bus.hpp"
#include "vmm/interrupt.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm {

inline constexpr uint64_t kCom1Port = 0x3f8;
inline constexpr uint64_t kSerialPortCount = 8;
inline constexpr uint32_t kCom1Irq = 4;

class Serial final : public BusDevice {
 public:
  using Sink = std::function<void(std::span<const uint8_t>)>;
  using LineCallback = std::function<void(std::string_view)>;

  // `out` receives every transmitted byte as it is written; `on_line` (may be
  // empty) sees each complete output line without its newline, truncated to
  // kMaxLine: the machine's panic detector. Both run on a vCPU thread with
  // the serial lock held and must not call back into this Serial.
  Serial(InterruptLine& irq, Sink out, LineCallback on_line = {});

  // Writes everything to `fd` (stdout, a log file); errors are dropped, as a
  // full console must not stop the guest.
  static Sink fd_sink(int fd);
  // True for the line Linux prints when it panics.
  static bool is_kernel_panic(std::string_view line);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

  // Host → guest bytes (a console). Safe from any thread.
  void enqueue_input(std::span<const uint8_t> bytes);

  // Snapshot: the UART registers and unread input. load_state() raises the
  // interrupt again if one was pending (the edge may not have been delivered).
  void save_state(StateWriter& out);
  [[nodiscard]] Status load_state(StateReader& in);

  static constexpr size_t kMaxLine = 256;
  static constexpr size_t kMaxInput = 64 * 1024;  // beyond this, input is dropped

 private:
  [[nodiscard]] uint8_t read_register(uint64_t offset);
  void write_register(uint64_t offset, uint8_t value);
  void transmit(uint8_t byte);
  [[nodiscard]] uint8_t interrupt_id() const;
  void update_interrupt(bool was_pending);
  [[nodiscard]] bool interrupt_pending() const;

  std::mutex mu_;  // guards everything below; vCPU threads and the input thread
  InterruptLine& irq_;
  Sink out_;
  LineCallback on_line_;
  std::string line_;
  std::deque<uint8_t> input_;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0x03;  // 8N1, Linux's default
  uint8_t mcr_ = 0x08;  // OUT2: the PC routes the UART's IRQ only with it set
  uint8_t scr_ = 0;
  uint8_t dll_ = 0x0c;  // 9600 baud
  uint8_t dlm_ = 0;
  bool fifo_enabled_ = false;
  bool thr_empty_pending_ = false;  // the THRE interrupt condition (cleared by reading IIR)
};

}  // namespace forkvm
