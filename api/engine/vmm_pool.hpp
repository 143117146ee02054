// Standby VMMs: `forkvm restore --standby` processes started ahead of time,
// each with its KVM VM already made (vmm/prepared_vm.hpp), waiting
// on a socket of their own to be told which snapshot to restore
// (vmm/standby.hpp). A restore that claims one skips the VMM's exec, dynamic
// linking and KVM setup on its critical path. A keeper thread starts a new
// standby whenever one is claimed; unclaimed standbys die with the server
// (their parent-death signal is tied to that thread).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/engine/vmm_process.hpp"
#include "vmm/result.hpp"

namespace forkvm::engine {

struct VmmPoolOptions {
  std::string forkvm_binary;
  std::string dir;    // standby sockets and logs (short: Unix socket paths)
  uint32_t size = 0;  // standbys kept ready; 0: no pool
};

// Starts `forkvm restore --standby socket` (no vCPUs made ahead: forkvm restore
// --help says why) and returns once it accepts claims, within `limit`.
Result<std::shared_ptr<VmmProcess>> start_standby(const std::string& forkvm_binary, const std::string& socket,
                                                  const std::string& log, std::chrono::milliseconds limit);

class VmmPool {
 public:
  explicit VmmPool(VmmPoolOptions options);
  ~VmmPool();  // stops the keeper; unclaimed standbys are killed
  VmmPool(const VmmPool&) = delete;
  VmmPool& operator=(const VmmPool&) = delete;

  // A ready standby restores with `restore_args` (the `forkvm restore`
  // options), its output going to `log_path`; returns its process once the
  // machine is restored. An error when none is ready or the restore failed
  // (the standby is then gone): the caller starts a VMM of its own.
  Result<std::shared_ptr<VmmProcess>> claim(const std::vector<std::string>& restore_args,
                                            const std::string& log_path, std::chrono::milliseconds limit);

 private:
  struct Standby {
    std::shared_ptr<VmmProcess> process;
    std::string socket;
    std::string log;
  };
  void keep();
  Result<Standby> start_one(uint64_t serial);

  VmmPoolOptions o_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Standby> ready_;
  bool stopping_ = false;
  std::thread keeper_;
};

}  // namespace forkvm::engine
