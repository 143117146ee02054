#include "devices/serial.hpp"

#include <unistd.h>

#include <cerrno>

namespace forkvm {
namespace {

// Register offsets from the base port, and their bits (as named in Linux's serial_reg.h).
constexpr uint64_t kData = 0;  // RBR/THR, or DLL with DLAB
constexpr uint64_t kIer = 1;   // or DLM with DLAB
constexpr uint64_t kIir = 2;   // read: IIR, write: FCR
constexpr uint64_t kLcr = 3;
constexpr uint64_t kMcr = 4;
constexpr uint64_t kLsr = 5;
constexpr uint64_t kMsr = 6;
constexpr uint64_t kScr = 7;

constexpr uint8_t kIerRdi = 0x01;   // received data available
constexpr uint8_t kIerThri = 0x02;  // transmitter holding register empty
constexpr uint8_t kIirNoInt = 0x01;
constexpr uint8_t kIirThri = 0x02;
constexpr uint8_t kIirRdi = 0x04;
constexpr uint8_t kIirFifoEnabled = 0xc0;  // what makes Linux call us a 16550A
constexpr uint8_t kFcrEnableFifo = 0x01;
constexpr uint8_t kFcrClearRcvr = 0x02;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;

}  // namespace

Serial::Serial(InterruptLine& irq, Sink out, LineCallback on_line)
    : irq_(irq), out_(std::move(out)), on_line_(std::move(on_line)) {
  line_.reserve(kMaxLine);
}

Serial::Sink Serial::fd_sink(int fd) {
  return [fd](std::span<const uint8_t> bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd, bytes.data(), bytes.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      bytes = bytes.subspan(static_cast<size_t>(n));
    }
  };
}

bool Serial::is_kernel_panic(std::string_view line) {
  return line.find("Kernel panic - not syncing") != std::string_view::npos;
}

void Serial::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  // The UART's registers are bytes; a wider access reads the first one.
  for (auto& b : data) b = 0;
  if (!data.empty()) data[0] = read_register(offset);
}

void Serial::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  if (!data.empty()) write_register(offset, data[0]);
}

void Serial::enqueue_input(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  const bool was = interrupt_pending();
  for (uint8_t b : bytes) {
    if (input_.size() >= kMaxInput) break;
    input_.push_back(b);
  }
  update_interrupt(was);
}

bool Serial::interrupt_pending() const {
  return ((ier_ & kIerRdi) != 0 && !input_.empty()) || ((ier_ & kIerThri) != 0 && thr_empty_pending_);
}

uint8_t Serial::interrupt_id() const {
  const uint8_t fifo = fifo_enabled_ ? kIirFifoEnabled : 0;
  // Received data outranks THR empty (16550 priority order).
  if ((ier_ & kIerRdi) != 0 && !input_.empty()) return fifo | kIirRdi;
  if ((ier_ & kIerThri) != 0 && thr_empty_pending_) return fifo | kIirThri;
  return fifo | kIirNoInt;
}

// The line is edge-triggered (an irqfd pulse), so it is raised when a
// condition becomes pending, and again for a new event of the same kind
// (the driver clears THRE by reading IIR, then writes more).
void Serial::update_interrupt(bool was_pending) {
  if (interrupt_pending() && !was_pending) irq_.trigger();
}

uint8_t Serial::read_register(uint64_t offset) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  switch (offset) {
    case kData: {
      if (dlab) return dll_;
      if (input_.empty()) return 0;
      const uint8_t b = input_.front();
      input_.pop_front();
      return b;
    }
    case kIer:
      return dlab ? dlm_ : ier_;
    case kIir: {
      const uint8_t id = interrupt_id();
      // Reading IIR while it reports THRE acknowledges that interrupt.
      if ((id & 0x0f) == kIirThri) thr_empty_pending_ = false;
      return id;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return static_cast<uint8_t>(kLsrThre | kLsrTemt | (input_.empty() ? 0 : kLsrDr));
    case kMsr:
      if ((mcr_ & kMcrLoop) != 0) {
        // Loopback wires the modem outputs to the inputs; Linux's autoconfig
        // checks this (MCR 0x0a must read back as CTS|DCD).
        uint8_t msr = 0;
        if ((mcr_ & kMcrRts) != 0) msr |= kMsrCts;
        if ((mcr_ & kMcrDtr) != 0) msr |= kMsrDsr;
        if ((mcr_ & kMcrOut1) != 0) msr |= kMsrRi;
        if ((mcr_ & kMcrOut2) != 0) msr |= kMsrDcd;
        return msr;
      }
      return kMsrDcd | kMsrDsr | kMsrCts;  // a peer is always there
    case kScr:
      return scr_;
    default:
      return 0;
  }
}

void Serial::write_register(uint64_t offset, uint8_t value) {
  const bool dlab = (lcr_ & kLcrDlab) != 0;
  const bool was = interrupt_pending();
  switch (offset) {
    case kData:
      if (dlab) {
        dll_ = value;
        return;
      }
      if ((mcr_ & kMcrLoop) != 0) {
        if (input_.size() < kMaxInput) input_.push_back(value);
      } else {
        transmit(value);
      }
      // Transmission is instant, so the holding register is empty again:
      // a fresh THRE event even if the last one was not yet acknowledged.
      thr_empty_pending_ = true;
      if ((ier_ & kIerThri) != 0) {
        irq_.trigger();
        return;
      }
      break;
    case kIer:
      if (dlab) {
        dlm_ = value;
        return;
      }
      // Enabling THRI while the transmitter is empty raises it at once; Linux's
      // start_tx relies on that to begin sending.
      if ((value & kIerThri) != 0 && (ier_ & kIerThri) == 0) thr_empty_pending_ = true;
      ier_ = value & 0x0f;
      break;
    case kIir:  // FCR
      fifo_enabled_ = (value & kFcrEnableFifo) != 0;
      if ((value & kFcrClearRcvr) != 0) input_.clear();
      break;
    case kLcr:
      lcr_ = value;
      return;
    case kMcr:
      mcr_ = value & 0x1f;
      return;
    case kScr:
      scr_ = value;
      return;
    default:
      return;  // LSR and MSR are read-only
  }
  update_interrupt(was);
}

void Serial::save_state(StateWriter& out) {
  std::lock_guard lock(mu_);
  for (uint8_t r : {ier_, lcr_, mcr_, scr_, dll_, dlm_}) out.u8(r);
  out.boolean(fifo_enabled_);
  out.boolean(thr_empty_pending_);
  const std::vector<uint8_t> input(input_.begin(), input_.end());
  out.bytes(input);
}

Status Serial::load_state(StateReader& in) {
  std::lock_guard lock(mu_);
  for (uint8_t* r : {&ier_, &lcr_, &mcr_, &scr_, &dll_, &dlm_}) *r = FORKVM_TRY(in.u8());
  ier_ &= 0x0f;
  mcr_ &= 0x1f;
  fifo_enabled_ = FORKVM_TRY(in.boolean());
  thr_empty_pending_ = FORKVM_TRY(in.boolean());
  const auto input = FORKVM_TRY(in.bytes(kMaxInput));
  input_.assign(input.begin(), input.end());
  update_interrupt(false);
  return {};
}

void Serial::transmit(uint8_t byte) {
  if (out_) out_({&byte, 1});
  if (!on_line_) return;
  if (byte == '\n') {
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    on_line_(line_);
    line_.clear();
  } else if (line_.size() < kMaxLine) {
    line_.push_back(static_cast<char>(byte));
  }
}

}  // namespace forkvm
