// LocalEngine across server restarts, and VMMs that end on their own.
//
// Every VMM runs in its own session, so it outlives the server. Each launch
// writes <vm dir>/runtime (pid, network slot, instance id); a new server
// reads those files before it launches anything, checks that the pid is
// still that VM's VMM (its command line names the VM's control socket, so a
// recycled pid is not mistaken for it) and tracks it again through a pidfd
// (VmmProcess::adopt). The store's rows then say which VMs are meant to run:
// adopt_vm() keeps those whose agent answers and explains the others, which
// become `lost`.
//
// While serving, a watcher thread per VMM notices a VMM that ends while the
// engine still counts it as running; stops, snapshots and deletes take the
// VM's op lock and forget it first, so what the watcher sees is unexpected.
#include <dirent.h>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/engine/guest_faults.hpp"
#include "api/engine/leftover_network.hpp"
#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"
#include "devices/net/command.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {
namespace {

// How long a found VMM's agent may take to answer (nested emulation is slow).
constexpr int64_t kAdoptAgentTimeoutMs = 30000;

struct RuntimeFile {
  pid_t pid = 0;
  uint32_t net_slot = 0;
  std::string instance_id;
  uint64_t start_time = 0;  // the process's, in clock ticks after boot; 0: not recorded
};

// Field 22 of /proc/PID/stat: with the pid, it names one process for the
// host's uptime, whatever the process's command line (a standby VMM's and a
// fork child's do not name their VM).
std::optional<uint64_t> process_start_time(pid_t pid) {
  const std::string stat = read_text_file(fmt::format("/proc/{}/stat", pid));
  const size_t name_end = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream in(stat.substr(name_end + 1));
  std::string field;
  for (int n = 3; n <= 22 && in >> field; ++n) {
    if (n == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return std::nullopt;
}

std::optional<RuntimeFile> read_runtime(const std::string& path) {
  std::istringstream in(read_text_file(path));
  RuntimeFile r;
  std::string key, value;
  while (in >> key >> value) {
    if (key == "pid") r.pid = static_cast<pid_t>(std::strtol(value.c_str(), nullptr, 10));
    if (key == "net_slot") r.net_slot = static_cast<uint32_t>(std::strtoul(value.c_str(), nullptr, 10));
    if (key == "instance") r.instance_id = value;
    if (key == "start_time") r.start_time = std::strtoull(value.c_str(), nullptr, 10);
  }
  if (r.pid <= 0 || r.net_slot == 0) return std::nullopt;
  return r;
}

// True when the recorded VMM still runs: the same pid and start time, or (a
// runtime file without a start time) a command line with `--control <socket>`.
bool is_vmm_of(const RuntimeFile& rt, const std::string& control_socket) {
  if (rt.start_time != 0) return process_start_time(rt.pid) == rt.start_time;
  std::string cmdline = read_text_file(fmt::format("/proc/{}/cmdline", rt.pid));
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < cmdline.size(); i++) {
    if (cmdline[i] == '\0') {
      args.push_back(cmdline.substr(start, i - start));
      start = i + 1;
    }
  }
  for (size_t i = 0; i + 1 < args.size(); i++)
    if (args[i] == "--control" && args[i + 1] == control_socket) return true;
  return false;
}

}  // namespace

void remove_leftover_network(uint32_t slot, std::string_view what) {
  const std::string netns = fmt::format("fkvm-{}", slot);
  if (::access(("/run/netns/" + netns).c_str(), F_OK) != 0) return;
  auto ip = net::find_tool("ip", "iproute2");
  auto nft = net::find_tool("nft", "nftables");
  if (ip.ok()) {
    if (auto s = net::run_command({*ip, "netns", "del", netns}); !s.ok())
      log(LogLevel::warn, "engine: removing the leftover {}: {}", netns, s.error().message);
  }
  if (nft.ok()) (void)net::run_command({*nft, "delete", "table", "ip", fmt::format("fkvm_{}", slot)});
  log(LogLevel::info, "engine: removed the network {} on slot {}", what, slot);
}

void LocalEngine::write_runtime(const LiveVm& vm) const {
  std::string path = vm.dir + "/runtime";
  std::ofstream out(path + ".tmp", std::ios::trunc);
  out << "pid " << vm.vmm->pid() << "\nnet_slot " << vm.net_slot << "\ninstance " << vm.instance_id << "\n";
  if (auto started = process_start_time(vm.vmm->pid())) out << "start_time " << *started << "\n";
  out.close();
  if (!out || ::rename((path + ".tmp").c_str(), path.c_str()) != 0)
    log(LogLevel::warn, "engine: VM {}: could not record its VMM in {}; a restarted server will not find it",
        vm.id, path);
}

void LocalEngine::find_running_vmms() {
  std::error_code ec;
  std::vector<uint32_t> dead_slots;
  for (const auto& entry : std::filesystem::directory_iterator(o_.data_dir + "/vms", ec)) {
    const std::string id = entry.path().filename().string();
    auto rt = read_runtime(vm_dir(id) + "/runtime");
    if (!rt) continue;
    auto vm = std::make_shared<LiveVm>();
    vm->place(id, vm_dir(id), o_.run_dir);
    vm->instance_id = rt->instance_id;
    vm->net_slot = rt->net_slot;
    // Gone (or the pid is someone else's now): its network may be left over.
    auto proc = is_vmm_of(*rt, vm->control_socket) ? VmmProcess::adopt(rt->pid)
                                                   : Result<std::shared_ptr<VmmProcess>>(make_error("gone"));
    if (!proc.ok()) {
      dead_slots.push_back(rt->net_slot);
      continue;
    }
    vm->vmm = *proc;
    {
      std::lock_guard lock(mu_);
      if (used_slots_.contains(vm->net_slot)) {
        log(LogLevel::warn, "engine: VMM pid {} (VM {}) claims net slot {}, already taken; not adopted",
            rt->pid, id, vm->net_slot);
        continue;
      }
      used_slots_.insert(vm->net_slot);
      live_[id] = vm;
    }
    watch_exit(vm);
    log(LogLevel::info, "engine: found VM {} still running (VMM pid {}, net slot {})", id, rt->pid,
        vm->net_slot);
  }
  // Nothing launches before this returns, so a slot no found VM holds is free.
  for (uint32_t slot : dead_slots) {
    bool held = false;
    {
      std::lock_guard lock(mu_);
      held = used_slots_.contains(slot);
    }
    if (!held) remove_leftover_network(slot);
  }
}

ApiResult<AdoptedVm> LocalEngine::adopt_vm(const VmRecord& row) {
  auto lock = op_lock(row.id);
  std::lock_guard guard(*lock);
  auto vm = find(row.id);
  if (!vm) {
    auto rt = read_runtime(vm_dir(row.id) + "/runtime");
    if (!rt)
      return api_error(ErrorCode::VmNotRunning,
                       "no running VMM was recorded for it when the server restarted");
    return api_error(ErrorCode::VmNotRunning,
                     fmt::format("its VMM (pid {}) was gone when the server restarted; its last output: {}",
                                 rt->pid, vmm_log_tail(vm_dir(row.id) + "/vmm.log")));
  }
  if (!vm->vmm->running()) {
    forget(row.id);
    return api_error(
        ErrorCode::VmNotRunning,
        fmt::format("its VMM (pid {}) ended just after the server restarted; its last output: {}",
                    vm->vmm->pid(), vmm_log_tail(vm->dir + "/vmm.log")));
  }
  if (auto ready = vm->agent(kAdoptAgentTimeoutMs).ready(); !ready.ok()) {
    // A VMM without a working guest is no use; stop it so that a start boots afresh.
    halt(*vm, false);
    forget(row.id);
    return api_error(
        ErrorCode::VmNotRunning,
        fmt::format("its VMM (pid {}) ran when the server restarted but the guest's agent did not "
                    "answer ({}); the VMM was stopped",
                    vm->vmm->pid(), ready.error().message));
  }
  AdoptedVm out;
  out.instance_id = vm->instance_id;
  out.runtime.vmm_pid = vm->vmm->pid();
  out.runtime.agent_socket = vm->agent_socket;
  out.runtime.control_socket = vm->control_socket;
  return out;
}

void LocalEngine::set_exit_listener(VmExitListener listener) {
  std::lock_guard lock(listener_mu_);
  listener_ = std::move(listener);
}

void LocalEngine::watch_exit(const std::shared_ptr<LiveVm>& vm) {
  std::thread([vm, token = watch_token_] {
    vm->vmm->wait();
    std::lock_guard lock(token->mu);
    if (token->engine != nullptr) token->engine->on_vmm_exit(vm);
  }).detach();
}

void LocalEngine::on_vmm_exit(const std::shared_ptr<LiveVm>& vm) {
  // Whoever stopped it on purpose holds the op lock until it has forgotten it.
  auto lock = op_lock(vm->id);
  std::lock_guard guard(*lock);
  {
    std::lock_guard l(mu_);
    auto it = live_.find(vm->id);
    if (it == live_.end() || it->second != vm) return;
  }
  std::string status = vm->vmm->exit_status().value_or("?");
  // While the slot is still held, so that no launch takes it meanwhile.
  if (status != "0") remove_leftover_network(vm->net_slot);
  forget(vm->id);
  std::string state = status == "0" ? "stopped" : "lost";
  // An adopted VMM's status is a sentence ("exited (status unknown: ...)").
  std::string how = status.rfind("exited", 0) == 0 ? status : "status " + status;
  std::string reason = status == "0"
                           ? "the guest powered off"
                           : fmt::format("its VMM (pid {}) ended unexpectedly ({}); its last output: {}",
                                         vm->vmm->pid(), how, vmm_log_tail(vm->dir + "/vmm.log"));
  log(LogLevel::warn, "engine: VM {} is {}: {}", vm->id, state, reason);
  if (auto fault = guest_fault_in_console(vm->dir + "/console.log"))
    log(LogLevel::warn, "engine: VM {} had a guest kernel fault: {}", vm->id, *fault);
  VmExitListener listener;
  {
    std::lock_guard l(listener_mu_);
    listener = listener_;
  }
  if (listener) listener(vm->id, state, reason);
}

}  // namespace forkvm::engine
