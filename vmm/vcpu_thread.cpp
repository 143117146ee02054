#include "vmm/vcpu_thread.hpp"

#include <algorithm>
#include <csignal>
#include <string>

#include "vmm/log.hpp"

namespace forkvm {
namespace {

// The kick signal. Its handler does nothing: its only job is to make a
// blocked KVM_RUN return EINTR.
constexpr int kKickSignal = SIGUSR1;

void kick_handler(int /*signo*/) {}

Status install_kick_handler() {
  static std::once_flag once;
  static int error = 0;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    // KVM_RUN returns a plain EINTR that is never restarted; SA_RESTART only
    // spares device code running on the vCPU thread from spurious EINTRs.
    sa.sa_flags = SA_RESTART;
    if (::sigaction(kKickSignal, &sa, nullptr) != 0) error = errno;
  });
  if (error != 0) return errno_error("sigaction SIGUSR1 (vCPU kick)", error);
  return {};
}

}  // namespace

const char* to_string(VcpuExitKind kind) {
  switch (kind) {
    case VcpuExitKind::poweroff:
      return "poweroff";
    case VcpuExitKind::reboot:
      return "reboot";
    case VcpuExitKind::crash:
      return "crash";
    case VcpuExitKind::triple_fault:
      return "triple fault";
    case VcpuExitKind::halted:
      return "halted";
    case VcpuExitKind::internal_error:
      return "internal error";
    case VcpuExitKind::fail_entry:
      return "failed entry";
    case VcpuExitKind::unhandled:
      return "unhandled exit";
    case VcpuExitKind::run_error:
      return "KVM_RUN error";
  }
  return "unknown";
}

VcpuThread::VcpuThread(Vcpu& vcpu, const Bus& pio, const Bus& mmio, ExitCallback on_exit)
    : vcpu_(vcpu), pio_(pio), mmio_(mmio), on_exit_(std::move(on_exit)) {}

VcpuThread::~VcpuThread() { stop(); }

VcpuThread::State VcpuThread::state() const {
  std::lock_guard lk(mu_);
  return state_;
}

Status VcpuThread::start(bool paused) {
  FORKVM_CHECK(install_kick_handler());
  std::lock_guard lk(mu_);
  if (state_ != State::created) return make_error("vCPU {} thread already started", vcpu_.index());
  desired_ = paused ? State::paused : State::running;
  thread_ = std::thread([this] { loop(); });
  native_ = thread_.native_handle();
  return {};
}

void VcpuThread::kick_locked() {
  // immediate_exit covers a thread about to enter KVM_RUN (the signal would
  // land before the ioctl); the signal covers one already inside it.
  vcpu_.set_immediate_exit(true);
  if (thread_.joinable()) ::pthread_kill(native_, kKickSignal);
}

Status VcpuThread::pause(std::chrono::milliseconds bound) {
  std::unique_lock lk(mu_);
  if (state_ == State::created) return make_error("vCPU {} is not started", vcpu_.index());
  if (state_ == State::stopped) return make_error("vCPU {} has stopped", vcpu_.index());
  desired_ = State::paused;
  kick_locked();
  cv_.notify_all();
  if (!cv_.wait_for(lk, bound, [this] { return state_ == State::paused || state_ == State::stopped; })) {
    // Withdrawn, or the thread would park for good the next time it left the
    // guest, with nobody left to resume it.
    if (desired_ == State::paused) desired_ = State::running;
    cv_.notify_all();
    return make_error("vCPU {} did not pause within {} ms", vcpu_.index(), bound.count());
  }
  if (state_ == State::stopped) return make_error("vCPU {} stopped while pausing", vcpu_.index());
  return {};
}

Status VcpuThread::resume() {
  std::lock_guard lk(mu_);
  if (state_ == State::created) return make_error("vCPU {} is not started", vcpu_.index());
  if (state_ == State::stopped || desired_ == State::stopped) {
    return make_error("vCPU {} has stopped", vcpu_.index());
  }
  desired_ = State::running;
  cv_.notify_all();
  return {};
}

void VcpuThread::stop() {
  {
    std::lock_guard lk(mu_);
    desired_ = State::stopped;
    if (!thread_.joinable()) {
      state_ = State::stopped;
      return;
    }
    if (state_ != State::stopped) kick_locked();
    cv_.notify_all();
  }
  if (std::this_thread::get_id() == thread_.get_id()) return;  // from on_exit_: cannot join itself
  thread_.join();
}

bool VcpuThread::wait_until_runnable() {
  std::unique_lock lk(mu_);
  for (;;) {
    if (desired_ == State::stopped) return false;
    if (desired_ == State::running) {
      // Cleared under mu_, which pause() holds while setting it: a kick
      // cannot be lost between this point and KVM_RUN.
      vcpu_.set_immediate_exit(false);
      state_ = State::running;
      cv_.notify_all();
      return true;
    }
    if (io_pending_) {
      // KVM finishes an in-flight PIO/MMIO instruction (e.g. loads the IN
      // result into RAX) only on the next KVM_RUN. With immediate_exit set
      // it completes it and returns EINTR without running the guest, so the
      // registers a snapshot reads are consistent.
      vcpu_.set_immediate_exit(true);
      lk.unlock();
      auto r = vcpu_.run();
      lk.lock();
      io_pending_ = false;
      if (!r.ok())
        log(LogLevel::warn, "vCPU {}: completing I/O before pause: {}", vcpu_.index(), r.error().message);
      continue;
    }
    state_ = State::paused;
    cv_.notify_all();
    cv_.wait(lk, [this] { return desired_ != State::paused; });
  }
}

void VcpuThread::loop() {
  // Threads inherit the creator's signal mask; the kick must get through.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kKickSignal);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  // Named so that ps, perf and a host kernel's oops say which vCPU it was.
  const std::string name = fmt::format("fvm-vcpu{}", vcpu_.index());
  ::pthread_setname_np(::pthread_self(), name.c_str());

  while (wait_until_runnable()) {
    auto r = vcpu_.run();
    if (!r.ok()) {
      finish({VcpuExitKind::run_error, vcpu_.index(), r.error().message});
      return;
    }
    if (*r != Vcpu::RunResult::exit) continue;  // kicked: re-check desired_
    if (auto exit = dispatch()) {
      finish(*exit);
      return;
    }
  }
  std::lock_guard lk(mu_);
  state_ = State::stopped;
  cv_.notify_all();
}

void VcpuThread::finish(const VcpuExit& exit) {
  {
    std::lock_guard lk(mu_);
    state_ = State::stopped;
    desired_ = State::stopped;
    cv_.notify_all();
  }
  log(LogLevel::info, "vCPU {} stopped: {}: {}", exit.vcpu_index, to_string(exit.kind), exit.detail);
  if (on_exit_) on_exit_(exit);
}

std::optional<VcpuExit> VcpuThread::dispatch() {
  kvm_run& run = *vcpu_.run_state();
  const uint32_t id = vcpu_.index();
  switch (run.exit_reason) {
    case KVM_EXIT_IO:
      handle_io(run);
      io_pending_ = true;
      return std::nullopt;
    case KVM_EXIT_MMIO:
      handle_mmio(run);
      io_pending_ = true;
      return std::nullopt;
    case KVM_EXIT_INTR:  // a kick that raced with a real exit
      return std::nullopt;
    case KVM_EXIT_HLT:
      return VcpuExit{VcpuExitKind::halted, id, "HLT with no in-kernel irqchip to wake it"};
    case KVM_EXIT_SHUTDOWN:
      return VcpuExit{VcpuExitKind::triple_fault, id, "triple fault (KVM_EXIT_SHUTDOWN)"};
    case KVM_EXIT_SYSTEM_EVENT:
      switch (run.system_event.type) {
        case KVM_SYSTEM_EVENT_SHUTDOWN:
          return VcpuExit{VcpuExitKind::poweroff, id, "system event: shutdown"};
        case KVM_SYSTEM_EVENT_RESET:
          return VcpuExit{VcpuExitKind::reboot, id, "system event: reset"};
        case KVM_SYSTEM_EVENT_CRASH:
          return VcpuExit{VcpuExitKind::crash, id, "system event: guest crash"};
        default:
          return VcpuExit{VcpuExitKind::unhandled, id,
                          fmt::format("system event type {}", run.system_event.type)};
      }
    case KVM_EXIT_INTERNAL_ERROR: {
      std::string detail = fmt::format("KVM internal error, suberror {}", run.internal.suberror);
      const uint32_t n =
          static_cast<uint32_t>(std::min<size_t>(run.internal.ndata, std::size(run.internal.data)));
      for (uint32_t i = 0; i < n; ++i) detail += fmt::format(" {:#x}", run.internal.data[i]);
      return VcpuExit{VcpuExitKind::internal_error, id, std::move(detail)};
    }
    case KVM_EXIT_FAIL_ENTRY:
      return VcpuExit{VcpuExitKind::fail_entry, id,
                      fmt::format("VM entry failed, hardware reason {:#x} on host CPU {}",
                                  run.fail_entry.hardware_entry_failure_reason, run.fail_entry.cpu)};
    default:
      return VcpuExit{VcpuExitKind::unhandled, id,
                      fmt::format("unhandled KVM exit reason {}", run.exit_reason)};
  }
}

void VcpuThread::handle_io(kvm_run& run) {
  // The data of a (possibly rep-string) port access sits in the kvm_run
  // page at data_offset: `count` items of `size` bytes.
  auto* data = reinterpret_cast<uint8_t*>(&run) + run.io.data_offset;
  const size_t size = run.io.size;
  for (uint32_t i = 0; i < run.io.count; ++i) {
    std::span<uint8_t> item(data + i * size, size);
    if (run.io.direction == KVM_EXIT_IO_IN) {
      // Nothing on a PC port bus drives the lines: reads float to all-ones.
      if (!pio_.read(run.io.port, item)) std::fill(item.begin(), item.end(), uint8_t{0xff});
    } else if (!pio_.write(run.io.port, item) && log_enabled(LogLevel::debug)) {
      // Linux writes to unclaimed ports routinely (port 0x80 delays), so this
      // is debug noise, not a warning.
      log(LogLevel::debug, "vCPU {}: unclaimed out {:#x}", vcpu_.index(), run.io.port);
    }
  }
}

void VcpuThread::handle_mmio(kvm_run& run) {
  const size_t len = std::min<size_t>(run.mmio.len, sizeof(run.mmio.data));
  std::span<uint8_t> data(run.mmio.data, len);
  if (run.mmio.is_write != 0) {
    if (!mmio_.write(run.mmio.phys_addr, data)) {
      log(LogLevel::debug, "vCPU {}: unclaimed MMIO write {:#x}/{}", vcpu_.index(), run.mmio.phys_addr, len);
    }
  } else if (!mmio_.read(run.mmio.phys_addr, data)) {
    std::fill(data.begin(), data.end(), uint8_t{0xff});
  }
}

}  // namespace forkvm
