// One VMM process per VM: `forkvm run` started as a child of the API server
// in its own session (a Ctrl-C at the server's terminal must not stop VMs),
// output to a log file. A reaper thread waits for it, so its exit status is
// known and no zombie is left. A VMM that is not our child (a live-fork
// child of another VMM, or one found again after the server restarted) is
// adopted by pid: a pidfd tells when it exits (not with which status) and
// carries signals to exactly that process, never to a recycled pid.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::engine {

// The last lines of a VMM's log: why it stopped, for error messages.
[[nodiscard]] std::string vmm_log_tail(const std::string& path);

class VmmProcess {
 public:
  // argv[0] is the program; stdout and stderr go to log_path (appended).
  static Result<std::shared_ptr<VmmProcess>> spawn(const std::vector<std::string>& argv,
                                                   const std::string& log_path);
  // Tracks a running process that is not our child. Fails when it is gone.
  static Result<std::shared_ptr<VmmProcess>> adopt(pid_t pid);
  ~VmmProcess();
  VmmProcess(const VmmProcess&) = delete;
  VmmProcess& operator=(const VmmProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running() const;
  // "0", "3", "signal 9", ... once it exited.
  [[nodiscard]] std::optional<std::string> exit_status() const;
  void signal(int sig) const;
  // True once exited within `limit`.
  bool wait_for(std::chrono::milliseconds limit) const;
  void wait() const;

 private:
  explicit VmmProcess(pid_t pid, int pidfd = -1) : pid_(pid), pidfd_(pidfd) {}
  void reap();
  void watch_adopted();
  void set_exit(std::string text);

  pid_t pid_;
  int pidfd_;  // adopted processes only; closed by the destructor
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<std::string> exit_;
};

}  // namespace forkvm::engine
