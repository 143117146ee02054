#include "api/cli/bench_vm.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "api/cli/bench_common.hpp"
#include "api/engine/vmm_pool.hpp"
#include "devices/storage/chain_ops.hpp"
#include "vmm/control.hpp"
#include "vmm/standby.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::cli {
namespace {

std::vector<std::string> host_args(const std::string& dir, const std::string& name, const std::string& disk_dir) {
  const std::string p = dir + "/" + name;
  return {"--disk", "chain:" + disk_dir, "--control", p + ".ctl", "--vsock", p + ".vsock", "--console",
          p + ".console"};
}

Result<uint64_t> proc_kib(pid_t pid, const char* file, std::initializer_list<const char*> keys) {
  std::ifstream in(fmt::format("/proc/{}/{}", pid, file));
  if (!in) return make_error("read /proc/{}/{}", pid, file);
  uint64_t total = 0;
  std::string line;
  while (std::getline(in, line)) {
    for (const char* k : keys) {
      if (line.rfind(k, 0) == 0) total += std::strtoull(line.c_str() + std::strlen(k), nullptr, 10);
    }
  }
  return total;
}

// The pages of [start, end) that only `pid` maps and that are anonymous: the copies its
// writes made. Page cache of a memory file is shared by every restore of that file even
// while one VMM alone maps it, and smaps calls it Private_Dirty while it is not yet
// written back (a snapshot written seconds before).
Result<uint64_t> private_anon_kib(pid_t pid, uint64_t start, uint64_t end) {
  constexpr uint64_t kPresent = 1ULL << 63, kFileOrSharedAnon = 1ULL << 61, kExclusive = 1ULL << 56;
  const std::string path = fmt::format("/proc/{}/pagemap", pid);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("open " + path);
  std::vector<uint64_t> entries(1 << 14);
  uint64_t pages = 0;
  for (uint64_t va = start; va < end;) {
    const size_t want = std::min<uint64_t>(entries.size(), (end - va) >> 12);
    const ssize_t got =
        ::pread(fd.get(), entries.data(), want * sizeof(uint64_t), static_cast<off_t>((va >> 12) * 8));
    if (got < 0) return errno_error("read " + path);
    const size_t n = static_cast<size_t>(got) / sizeof(uint64_t);
    if (n == 0) return make_error("read {}: no entry at {:#x}", path, va);
    for (size_t i = 0; i < n; ++i) {
      const uint64_t e = entries[i];
      if ((e & kPresent) && (e & kExclusive) && !(e & kFileOrSharedAnon)) ++pages;
    }
    va += n << 12;
  }
  return pages * 4;
}

}  // namespace

Result<BenchVm> BenchVm::boot(const engine::GuestImage& image, const std::string& dir, const std::string& name,
                              uint64_t mem_mib, uint32_t cpus) {
  storage::CreateOptions o;
  o.base = image.rootfs;
  o.layers_root = dir + "/layers";
  const std::string disk = dir + "/" + name + ".disk";
  FORKVM_CHECK(storage::create_chain(disk, o));
  std::vector<std::string> argv = {self_exe(), "run", "--kernel", image.kernel, "--mem", std::to_string(mem_mib),
                                   "--cpus", std::to_string(cpus), "--cmdline", image.cmdline};
  for (auto& a : host_args(dir, name, disk)) argv.push_back(std::move(a));
  auto vmm = FORKVM_TRY(engine::VmmProcess::spawn(argv, dir + "/" + name + ".log"));
  return BenchVm(dir, name, std::move(vmm));
}

Result<BenchVm> BenchVm::restore(const std::string& snapshot_dir, const std::string& disk_dir,
                                 const std::string& dir, const std::string& name) {
  std::vector<std::string> argv = {self_exe(), "restore", "--snapshot", snapshot_dir};
  for (auto& a : host_args(dir, name, disk_dir)) argv.push_back(std::move(a));
  ::unlink((dir + "/" + name + ".vsock").c_str());
  auto vmm = FORKVM_TRY(engine::VmmProcess::spawn(argv, dir + "/" + name + ".log"));
  return BenchVm(dir, name, std::move(vmm));
}

Result<BenchVm> BenchVm::standby(const std::string& dir, const std::string& name) {
  const std::string base = dir + "/" + name;
  auto vmm = FORKVM_TRY(
      engine::start_standby(self_exe(), base + ".standby", base + ".log", std::chrono::minutes(1)));
  return BenchVm(dir, name, std::move(vmm));
}

Result<double> BenchVm::claim(const std::string& snapshot_dir, const std::string& disk_dir) {
  std::vector<std::string> args = {"--snapshot", snapshot_dir};
  for (auto& a : host_args(dir_, name_, disk_dir)) args.push_back(std::move(a));
  ::unlink(path(".vsock").c_str());
  return standby::claim(path(".standby"), path(".log"), args, std::chrono::minutes(5));
}

Result<BenchVm> BenchVm::adopt(pid_t pid, const std::string& dir, const std::string& name) {
  auto vmm = FORKVM_TRY(engine::VmmProcess::adopt(pid));
  return BenchVm(dir, name, std::move(vmm));
}

agent::AgentClient BenchVm::agent(int64_t timeout_ms) const {
  agent::ClientOptions o;
  o.socket_path = path(".vsock");
  o.vsock_mux = true;
  o.call_timeout_ms = timeout_ms;
  return agent::AgentClient(o);
}

Status BenchVm::wait_ready(std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  const std::string sock = path(".vsock");
  for (;;) {
    if (!vmm_->running())
      return make_error("{}: the VMM exited ({}): {}", name_, vmm_->exit_status().value_or("?"),
                        engine::vmm_log_tail(path(".log")));
    if (::access(sock.c_str(), F_OK) == 0) {
      auto r = agent(5000).exec({.command = "true"});
      if (r.ok() && r->exit_code == 0) return {};
    }
    if (std::chrono::steady_clock::now() > deadline)
      return make_error("{}: the agent did not answer within {} s", name_, limit.count() / 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

Status BenchVm::wait_booted(std::chrono::milliseconds limit) {
  FORKVM_CHECK(wait_ready(limit));
  auto r = exec("systemctl is-system-running --wait", limit.count());
  if (!r.ok()) return r.error().context("waiting for the guest's boot to end");
  if (r->timed_out)
    return make_error("{}: the guest's boot did not end within {} s", name_, limit.count() / 1000);
  return {};
}

Result<agent::ExecResult> BenchVm::exec(const std::string& command, int64_t timeout_ms) {
  return agent(timeout_ms).exec({.command = command, .timeout_ms = timeout_ms});
}

Result<std::string> BenchVm::control(const std::string& request_json) {
  auto r = FORKVM_TRY(control_request(path(".ctl"), request_json, 600000));
  if (r.find("\"ok\":true") == std::string::npos) return make_error("{}: {}", name_, r);
  return r;
}

void BenchVm::stop() {
  if (!vmm_->running()) return;
  (void)control_request(path(".ctl"), R"({"op":"stop"})", 10000);
  if (!vmm_->wait_for(std::chrono::seconds(20))) {
    vmm_->signal(SIGKILL);
    vmm_->wait_for(std::chrono::seconds(10));
  }
}

Result<BenchVm::PrivateSplit> BenchVm::private_split(uint64_t guest_mib) const {
  const std::string path = fmt::format("/proc/{}/smaps", vmm_->pid());
  std::ifstream in(path);
  if (!in) return make_error("read {}", path);
  PrivateSplit out;
  bool in_guest = false;
  std::optional<std::pair<uint64_t, uint64_t>> guest;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long start = 0, end = 0;
    // A mapping's header ("start-end perms ..."); its fields follow it.
    if (std::sscanf(line.c_str(), "%llx-%llx ", &start, &end) == 2 && line.find(':') > line.find(' ')) {
      in_guest = end - start == guest_mib << 20;
      if (in_guest) guest = {start, end};
      continue;
    }
    if (in_guest) continue;
    for (const char* k : {"Private_Clean:", "Private_Dirty:"})
      if (line.rfind(k, 0) == 0) out.own_kib += std::strtoull(line.c_str() + std::strlen(k), nullptr, 10);
  }
  if (!guest) return make_error("{}: no mapping of {} MiB (the guest's RAM)", path, guest_mib);
  out.guest_kib = FORKVM_TRY(private_anon_kib(vmm_->pid(), guest->first, guest->second));
  return out;
}

Result<uint64_t> BenchVm::rss_kib() const { return proc_kib(vmm_->pid(), "status", {"VmRSS:"}); }

Result<BenchDir> BenchDir::create() {
  char tmpl[] = "/tmp/fkb.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return errno_error("mkdtemp /tmp/fkb.XXXXXX");
  return BenchDir(tmpl);
}

BenchDir::~BenchDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace forkvm::cli
