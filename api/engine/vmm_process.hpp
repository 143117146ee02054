// One VMM process per VM: `forkvm run` started as a child of the API server
// in its own session (a Ctrl-C at the server's terminal must not stop VMs),
// output to a log file. A reaper thread waits for it, so its exit status is
// known and no zombie is left.
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

class VmmProcess {
 public:
  // argv[0] is the program; stdout and stderr go to log_path (appended).
  static Result<std::shared_ptr<VmmProcess>> spawn(const std::vector<std::string>& argv,
                                                   const std::string& log_path);
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
  explicit VmmProcess(pid_t pid) : pid_(pid) {}
  void reap();

  pid_t pid_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::optional<std::string> exit_;
};

}  // namespace forkvm::engine
