// One thread per vCPU, driven by an explicit state machine:
//
//   start() --> Running <--pause()/resume()--> Paused
//                  |                              |
//                  +--- stop() / terminal exit ---+--> Stopped (thread ends)
//
// The thread runs KVM_RUN and dispatches every exit through one switch:
// port and MMIO accesses to the buses, everything that ends the vCPU to the
// owner's on_exit callback. pause() kicks the thread out of the guest with
// immediate_exit plus a signal and waits, bounded, for it to park.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "vmm/bus.hpp"
#include "vmm/result.hpp"
#include "vmm/vcpu.hpp"

namespace forkvm {

// Why a vCPU stopped running the guest for good.
enum class VcpuExitKind {
  poweroff,        // KVM_SYSTEM_EVENT_SHUTDOWN (e.g. PSCI / ACPI handled in kernel)
  reboot,          // KVM_SYSTEM_EVENT_RESET
  crash,           // KVM_SYSTEM_EVENT_CRASH (guest panic notifier)
  triple_fault,    // KVM_EXIT_SHUTDOWN
  halted,          // KVM_EXIT_HLT: only without an in-kernel irqchip
  internal_error,  // KVM_EXIT_INTERNAL_ERROR (emulation failure, ...)
  fail_entry,      // KVM_EXIT_FAIL_ENTRY: hardware refused the vCPU state
  unhandled,       // an exit reason this VMM does not implement
  run_error,       // KVM_RUN itself failed
};

[[nodiscard]] const char* to_string(VcpuExitKind kind);

struct VcpuExit {
  VcpuExitKind kind;
  uint32_t vcpu_index;
  std::string detail;  // a sentence for logs: "internal error suberror 1, ..."
};

class VcpuThread {
 public:
  enum class State { created, running, paused, stopped };
  // Runs on the vCPU thread, without any VcpuThread lock held. It may call
  // pause()/stop() on other vCPUs; calling stop() on this one only requests
  // it (the thread cannot join itself).
  using ExitCallback = std::function<void(const VcpuExit&)>;

  // The buses must outlive the thread; they are read-only after machine
  // build (see bus.hpp), so no lock is taken to use them.
  VcpuThread(Vcpu& vcpu, const Bus& pio, const Bus& mmio, ExitCallback on_exit);
  VcpuThread(const VcpuThread&) = delete;
  VcpuThread& operator=(const VcpuThread&) = delete;
  ~VcpuThread();  // stop()

  // Starts the thread, running the guest or parked in Paused (for a
  // restore that resumes later).
  Status start(bool paused = false);
  // Returns once the thread is parked outside KVM_RUN with any pending
  // MMIO/PIO completed, so vCPU state can be read; an error if it did not
  // park within `bound` (the pause is then withdrawn: it runs on) or has stopped.
  Status pause(std::chrono::milliseconds bound);
  Status resume();
  // Idempotent. Kicks, waits for the thread to end and joins it.
  void stop();

  [[nodiscard]] State state() const;

 private:
  void loop();
  // True when the thread should keep running the guest.
  bool wait_until_runnable();
  void kick_locked();
  // Handles one KVM exit; returns the terminal exit when the vCPU must stop.
  std::optional<VcpuExit> dispatch();
  void handle_io(kvm_run& run);
  void handle_mmio(kvm_run& run);
  void finish(const VcpuExit& exit);

  Vcpu& vcpu_;
  const Bus& pio_;
  const Bus& mmio_;
  ExitCallback on_exit_;

  // Lock order: mu_ is a leaf. Nothing else is locked while it is held, and
  // it is never held across KVM_RUN, bus dispatch or on_exit_, so devices
  // and the owner can call into this class from any thread.
  mutable std::mutex mu_;
  std::condition_variable cv_;      // signalled on every state_ or desired_ change
  State state_ = State::created;    // what the thread is doing (guarded by mu_)
  State desired_ = State::running;  // what the owner asked for (guarded by mu_)
  bool io_pending_ = false;         // last exit was PIO/MMIO; only the vCPU thread touches it

  std::thread thread_;
  pthread_t native_{};  // for pthread_kill; valid while thread_ is joinable
};

}  // namespace forkvm
