// A guest for the snapshot benchmarks: the image booted by this forkvm on
// a layered disk, driven through its control socket and agent, with every
// file it uses named NAME.* in one directory (so that a live fork's
// children, named PREFIX-i.*, are BenchVms too).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "api/agent/agent_client.hpp"
#include "api/engine/image.hpp"
#include "api/engine/vmm_process.hpp"
#include "vmm/result.hpp"

namespace forkvm::cli {

class BenchVm {
 public:
  // Boots `image` on a new chain NAME.disk over its root disk.
  static Result<BenchVm> boot(const engine::GuestImage& image, const std::string& dir, const std::string& name,
                              uint64_t mem_mib, uint32_t cpus);
  // `forkvm restore` of snapshot `snapshot_dir` on disk chain `disk_dir`.
  static Result<BenchVm> restore(const std::string& snapshot_dir, const std::string& disk_dir,
                                 const std::string& dir, const std::string& name);
  // A standby VMM (`forkvm restore --standby NAME.standby`, as forkvm serve
  // keeps them), once it waits for its claim; then claim() restores it.
  static Result<BenchVm> standby(const std::string& dir, const std::string& name);
  // Hands this standby the restore restore() would run; returns the VMM's
  // own restore time (vmm/standby.hpp).
  Result<double> claim(const std::string& snapshot_dir, const std::string& disk_dir);
  // A VMM that exists already (a fork child named NAME by its parent).
  static Result<BenchVm> adopt(pid_t pid, const std::string& dir, const std::string& name);

  // Until the agent answers `true`, at most `limit`.
  Status wait_ready(std::chrono::milliseconds limit);
  // wait_ready(), then until systemd's boot has ended (a degraded system has
  // ended it too), at most `limit` each: units still starting (and udev's
  // workers) would otherwise run on during a measurement, in every copy.
  Status wait_booted(std::chrono::milliseconds limit);
  Result<agent::ExecResult> exec(const std::string& command, int64_t timeout_ms = 600000);
  Result<std::string> control(const std::string& request_json);
  // {"op":"stop"}, then waits for the VMM to exit (SIGKILL after 20 s).
  void stop();
  // The VMM's private memory, KiB, split: in the guest's RAM (the mapping of `guest_mib`)
  // and the VMM's own (Private_Clean + Private_Dirty of its other mappings). Guest RAM
  // counts the anonymous pages only this VMM maps: the copies the guest's writes made
  // (read from /proc/PID/pagemap).
  struct PrivateSplit {
    uint64_t guest_kib = 0;
    uint64_t own_kib = 0;
  };
  [[nodiscard]] Result<PrivateSplit> private_split(uint64_t guest_mib) const;
  [[nodiscard]] Result<uint64_t> rss_kib() const;

  [[nodiscard]] std::string path(const std::string& suffix) const { return dir_ + "/" + name_ + suffix; }
  [[nodiscard]] pid_t pid() const { return vmm_->pid(); }
  [[nodiscard]] bool running() const { return vmm_->running(); }
  [[nodiscard]] engine::VmmProcess& vmm() { return *vmm_; }

 private:
  BenchVm(std::string dir, std::string name, std::shared_ptr<engine::VmmProcess> vmm)
      : dir_(std::move(dir)), name_(std::move(name)), vmm_(std::move(vmm)) {}
  [[nodiscard]] agent::AgentClient agent(int64_t timeout_ms) const;

  std::string dir_;
  std::string name_;
  std::shared_ptr<engine::VmmProcess> vmm_;
};

// A temporary directory with a short path (Unix socket paths are short),
// removed with everything in it.
class BenchDir {
 public:
  static Result<BenchDir> create();
  BenchDir(BenchDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  BenchDir(const BenchDir&) = delete;
  BenchDir& operator=(const BenchDir&) = delete;
  BenchDir& operator=(BenchDir&&) = delete;
  ~BenchDir();
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  explicit BenchDir(std::string p) : path_(std::move(p)) {}
  std::string path_;
};

}  // namespace forkvm::cli
