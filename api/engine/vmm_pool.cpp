#include "api/engine/vmm_pool.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>

#include "vmm/elapsed.hpp"
#include "vmm/log.hpp"
#include "vmm/standby.hpp"

namespace forkvm::engine {
namespace {

// Making the KVM VM takes milliseconds on hardware and seconds at worst in
// the nested rig; a standby not listening by then is stuck.
constexpr std::chrono::seconds kStartLimit{60};
// A standby that could not start (no /dev/kvm, no binary) will not start a
// moment later either.
constexpr std::chrono::seconds kRetryAfterFailure{30};

}  // namespace

VmmPool::VmmPool(VmmPoolOptions options) : o_(std::move(options)) {
  if (o_.size == 0) return;
  std::error_code ec;
  std::filesystem::remove_all(o_.dir, ec);  // sockets of an earlier server's standbys, dead with it
  std::filesystem::create_directories(o_.dir, ec);
  if (ec) {
    log(LogLevel::warn, "engine: no standby VMMs: creating {}: {}", o_.dir, ec.message());
    return;
  }
  keeper_ = std::thread([this] { keep(); });
}

VmmPool::~VmmPool() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    changed_.notify_all();
  }
  if (keeper_.joinable()) keeper_.join();
  for (auto& s : ready_) {
    s.process->signal(SIGKILL);
    s.process->wait_for(std::chrono::seconds(5));
  }
  std::error_code ec;
  if (o_.size > 0) std::filesystem::remove_all(o_.dir, ec);
}

Result<std::shared_ptr<VmmProcess>> start_standby(const std::string& forkvm_binary, const std::string& socket,
                                                  const std::string& log, std::chrono::milliseconds limit) {
  auto process = FORKVM_TRY(VmmProcess::spawn({forkvm_binary, "restore", "--standby", socket}, log));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  // The socket appears (renamed into place) once the standby accepts on it.
  auto pause = std::chrono::milliseconds(1);
  while (::access(socket.c_str(), F_OK) != 0) {
    if (!process->running() || std::chrono::steady_clock::now() > deadline) {
      process->signal(SIGKILL);
      process->wait_for(std::chrono::seconds(5));
      return make_error("standby VMM {} did not start (status {}): {}", process->pid(),
                        process->exit_status().value_or("?"), vmm_log_tail(log));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return process;
}

Result<VmmPool::Standby> VmmPool::start_one(uint64_t serial) {
  Standby s;
  s.socket = fmt::format("{}/{}.sock", o_.dir, serial);
  s.log = fmt::format("{}/{}.log", o_.dir, serial);
  s.process = FORKVM_TRY(start_standby(o_.forkvm_binary, s.socket, s.log, kStartLimit));
  return s;
}

void VmmPool::keep() {
  uint64_t serial = 0;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // A standby whose process died (killed by hand, OOM) is no use.
    std::erase_if(ready_, [](const Standby& s) { return !s.process->running(); });
    if (ready_.size() >= o_.size) {
      changed_.wait_for(lock, std::chrono::seconds(10));
      continue;
    }
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    auto made = start_one(++serial);
    const double ms = ms_since(t0);
    lock.lock();
    if (made.ok()) {
      log(LogLevel::debug, "engine: standby VMM {} ready in {:.1f} ms", made->process->pid(), ms);
      ready_.push_back(std::move(*made));
    } else {
      log(LogLevel::warn, "engine: {}; restores start VMMs of their own", made.error().message);
      changed_.wait_for(lock, kRetryAfterFailure);
    }
  }
}

Result<std::shared_ptr<VmmProcess>> VmmPool::claim(const std::vector<std::string>& restore_args,
                                                   const std::string& log_path,
                                                   std::chrono::milliseconds limit) {
  Standby s;
  {
    std::lock_guard lock(mu_);
    while (!ready_.empty() && !ready_.front().process->running()) ready_.pop_front();
    if (ready_.empty()) return make_error("no standby VMM ready");
    s = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
  }
  auto restored = standby::claim(s.socket, log_path, restore_args, limit);
  if (!restored.ok()) {
    s.process->signal(SIGKILL);
    s.process->wait_for(std::chrono::seconds(5));
    return make_error("standby VMM {}: {}", s.process->pid(), restored.error().message);
  }
  ::unlink(s.log.c_str());  // its first lines went there; the VM's log has the rest
  log(LogLevel::debug, "engine: standby VMM {} restored in {:.2f} ms", s.process->pid(), *restored);
  return s.process;
}

}  // namespace forkvm::engine
