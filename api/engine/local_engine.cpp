#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/engine/guest_faults.hpp"
#include "api/engine/leftover_network.hpp"
#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"
#include "api/models/ids.hpp"
#include "devices/storage/chain_ops.hpp"
#include "devices/storage/layer_store.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {
namespace {

constexpr uint64_t kGiB = 1ULL << 30;

// One word for the guest's /bin/sh, whatever the client sent.
std::string shell_quote(std::string_view word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

LocalEngine::~LocalEngine() {
  stopping_ = true;
  if (warm_.joinable()) warm_.join();
  pool_.reset();
  release_prepared_slots();
  // VMMs outlive the server (a restarted one finds them again); their
  // watchers must not call into an engine that is gone.
  std::lock_guard lock(watch_token_->mu);
  watch_token_->engine = nullptr;
}

void LocalEngine::start_warm_up() {
  warm_ = std::thread([this] {
    auto made = golden(Resources{o_.default_mem_mib, o_.default_vcpus, 0});
    if (!made.ok()) log(LogLevel::warn, "engine: golden snapshot not made at start: {}", made.error().message);
  });
}

void LocalEngine::start_vmm_pool() {
  // <run>/standby-<server pid>: a server that died left its standbys' sockets behind (the
  // standbys died with it); another server on this host keeps its own.
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(o_.run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!name.starts_with("standby-")) continue;
    const auto pid = static_cast<pid_t>(std::strtol(name.c_str() + 8, nullptr, 10));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
  }
  if (o_.standby_vmms == 0) return;
  pool_ = std::make_unique<VmmPool>(VmmPoolOptions{
      o_.forkvm_binary, fmt::format("{}/standby-{}", o_.run_dir, ::getpid()), o_.standby_vmms});
}

std::shared_ptr<std::mutex> LocalEngine::op_lock(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& m = op_locks_[id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

std::unique_lock<std::mutex> LocalEngine::lock_ending_start(const std::string& id) {
  auto op = op_lock(id);
  {
    std::lock_guard lock(mu_);
    starts_to_abort_.insert(id);
  }
  std::unique_lock guard(*op);  // op_locks_ keeps the mutex alive
  std::lock_guard lock(mu_);
  starts_to_abort_.erase(id);
  return guard;
}

bool LocalEngine::start_aborted(const std::string& id) {
  std::lock_guard lock(mu_);
  return starts_to_abort_.contains(id);
}

std::shared_ptr<LiveVm> LocalEngine::find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : it->second;
}

void LocalEngine::forget(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return;
  used_slots_.erase(it->second->net_slot);
  live_.erase(it);
}

ApiResult<LocalEngine::Resources> LocalEngine::load_resources(const std::string& id) const {
  Resources r{o_.default_mem_mib, o_.default_vcpus, 0};
  std::istringstream in(read_text_file(vm_dir(id) + "/resources"));
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "mem_mib") r.mem_mib = value;
    if (key == "vcpus") r.vcpus = static_cast<uint32_t>(value);
    if (key == "rootfs_bytes") r.rootfs_bytes = value;
  }
  return r;
}

ApiStatus LocalEngine::save_resources(const std::string& id, const Resources& r) const {
  std::string path = vm_dir(id) + "/resources";
  std::ofstream out(path + ".tmp", std::ios::trunc);
  out << "mem_mib " << r.mem_mib << "\nvcpus " << r.vcpus << "\nrootfs_bytes " << r.rootfs_bytes << "\n";
  out.close();
  if (!out || ::rename((path + ".tmp").c_str(), path.c_str()) != 0)
    return api_error(ErrorCode::InternalError, "could not save the VM's resources in " + path);
  return {};
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::boot(const std::string& id, const Resources& r) {
  return launch(id,
                {"run", "--kernel", image_.kernel, "--mem", std::to_string(r.mem_mib), "--cpus",
                 std::to_string(r.vcpus), "--cmdline", image_.cmdline},
                r.rootfs_bytes > 0);
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::prepare(const std::string& id) {
  auto vm = std::make_shared<LiveVm>();
  vm->place(id, vm_dir(id), o_.run_dir);
  vm->instance_id = new_instance_id();
  {
    std::lock_guard lock(mu_);
    if (!prepared_slots_.empty()) {
      // Already in used_slots_; the VMM claims its prepared network.
      vm->net_slot = *prepared_slots_.begin();
      prepared_slots_.erase(prepared_slots_.begin());
      slots_changed_.notify_all();
    } else {
      vm->net_slot = FORKVM_TRY(free_slot_locked());
      used_slots_.insert(vm->net_slot);
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(vm->run_dir, ec);
  ::unlink(vm->agent_socket.c_str());
  return vm;
}

void LocalEngine::release_slot(uint32_t slot) {
  std::lock_guard lock(mu_);
  used_slots_.erase(slot);
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::launch(const std::string& id, const std::vector<std::string>& mode,
                                                       bool grow_fs) {
  auto vm = FORKVM_TRY(start_vmm(id, mode));
  auto ready = await_ready(vm, grow_fs);
  if (ready.ok() || mode.front() != "restore" || !vm->vmm_died_starting) return ready;
  // A restore that died before its guest answered (under nested emulation a
  // restored guest triple-faults now and then) is tried once more in another
  // VMM process: the memory file is read-only to it, so only the disk's top
  // layer, written by a guest that is gone, has to go back to empty. A
  // snapshot that cannot restore fails twice and says why.
  log(LogLevel::warn, "engine: VM {}: restoring it once more: {}", id, ready.error().message);
  if (auto s = storage::discard_top(vm->dir + "/disk"); !s.ok())
    return api_error(ErrorCode::InternalError,
                     "undoing the failed restore's disk writes: " + s.error().message);
  collect_unused_layers();  // the discarded top
  vm = FORKVM_TRY(start_vmm(id, mode));
  return await_ready(vm, grow_fs);
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::start_vmm(const std::string& id,
                                                          const std::vector<std::string>& mode) {
  auto vm = FORKVM_TRY(prepare(id));
  // The VM's root disk: its own copy-on-write layer over the image (devices/storage/).
  std::string disk = "chain:" + vm->dir + "/disk";
  std::vector<std::string> argv = {o_.forkvm_binary};
  argv.insert(argv.end(), mode.begin(), mode.end());
  argv.insert(argv.end(), {"--disk",
                                   disk,
                                   "--control",
                                   vm->control_socket,
                                   "--vsock",
                                   vm->agent_socket,
                                   "--vsock-cid",
                                   std::to_string(vsock_cid(*vm)),
                                   "--net-slot",
                                   std::to_string(vm->net_slot),
                                   "--console",
                                   vm->dir + "/console.log"});
  Result<std::shared_ptr<VmmProcess>> proc = make_error("no standby VMM pool");
  if (pool_ && mode.front() == "restore") {
    proc = pool_->claim({argv.begin() + 2, argv.end()}, vmm_log(*vm),
                        std::chrono::milliseconds(o_.boot_timeout_ms));
    if (proc.ok()) {
      log(LogLevel::info, "engine: VM {} restores in standby VMM {}", id, (*proc)->pid());
    } else {
      log(LogLevel::info, "engine: VM {} restores in a new VMM: {}", id, proc.error().message);
    }
  }
  if (!proc.ok()) proc = VmmProcess::spawn(argv, vmm_log(*vm));
  if (!proc.ok()) {
    release_slot(vm->net_slot);
    return api_error(ErrorCode::InternalError, "starting the VMM: " + proc.error().message);
  }
  vm->vmm = *proc;
  return vm;
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::await_ready(const std::shared_ptr<LiveVm>& vm, bool grow_fs) {
  const std::string log_path = vmm_log(*vm);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o_.boot_timeout_ms);
  // A restored guest's agent answers within milliseconds of the VMM's start,
  // a booting one after seconds: poll often first, then back off.
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    if (!vm->vmm->running()) {
      vm->vmm_died_starting = true;
      remove_leftover_network(vm->net_slot);  // it may have been killed, or crashed
      release_slot(vm->net_slot);
      return api_error(ErrorCode::InternalError,
                       fmt::format("the VMM exited (status {}) before the guest was ready: {}",
                                   vm->vmm->exit_status().value_or("?"), vmm_log_tail(log_path)));
    }
    if (::access(vm->agent_socket.c_str(), F_OK) == 0 && vm->agent(5000).ready().ok()) break;
    const bool aborted = start_aborted(vm->id);
    if (aborted || stopping_ || std::chrono::steady_clock::now() > deadline) {
      halt(*vm, false);
      release_slot(vm->net_slot);
      if (aborted) return api_error(ErrorCode::VmNotRunning, "the VM was killed or deleted while it started");
      return api_error(ErrorCode::VmStartTimeout,
                       fmt::format("the guest's agent did not answer within {} s", o_.boot_timeout_ms / 1000));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
  // A disk made larger than the image: let the filesystem use it (online grow).
  if (grow_fs) (void)vm->agent().exec({.command = "resize2fs /dev/vda >/dev/null 2>&1"});
  write_runtime(*vm);
  vm->last_api_ms = now_ms();
  {
    std::lock_guard lock(mu_);
    live_[vm->id] = vm;
  }
  watch_exit(vm);
  log(LogLevel::info, "engine: VM {} running (VMM pid {}, net slot {})", vm->id, vm->vmm->pid(), vm->net_slot);
  return vm;
}

void LocalEngine::halt(LiveVm& vm, bool graceful) {
  if (graceful && vm.vmm->running()) {
    // The guest's page cache holds writes its disk has not seen yet.
    (void)vm.agent(15000).exec({.command = "sync", .timeout_ms = 10000});
  }
  vm.vmm->signal(SIGTERM);
  if (!vm.vmm->wait_for(std::chrono::seconds(15))) {
    vm.vmm->signal(SIGKILL);
    vm.vmm->wait_for(std::chrono::seconds(10));
    remove_leftover_network(vm.net_slot);  // the callers forget the VM (free its slot) after this
  }
}

void LocalEngine::collect_unused_layers() {
  if (auto g = storage::gc(layers_root()); !g.ok())
    log(LogLevel::warn, "engine: collecting unused disk layers: {}", g.error().message);
}

void LocalEngine::remove_vm_files(const std::string& id) {
  std::string chain = vm_dir(id) + "/disk/chain";
  if (::access(chain.c_str(), F_OK) == 0) {
    if (auto s = storage::delete_chain(chain); !s.ok())
      log(LogLevel::warn, "engine: VM {}: releasing its disk layers: {}", id, s.error().message);
    collect_unused_layers();
  }
  std::error_code ec;
  std::filesystem::remove_all(vm_dir(id), ec);
  if (ec) log(LogLevel::warn, "engine: removing VM {}'s files: {}", id, ec.message());
  std::filesystem::remove_all(o_.run_dir + "/" + id, ec);
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::running(const VmRecord& vm) {
  auto live = find(vm.id);
  if (live && live->vmm->running()) {
    live->last_api_ms = now_ms();  // every call into a guest passes here: the idle timer's API activity
    return live;
  }
  if (!live && vm.state == "suspended") {
    // An exec, file or terminal call resumes a suspended VM.
    auto lock = op_lock(vm.id);
    std::lock_guard guard(*lock);
    if (auto again = find(vm.id)) return again;
    return resume(vm);
  }
  if (live) {
    std::string status = live->vmm->exit_status().value_or("?");
    forget(vm.id);
    return api_error(ErrorCode::VmNotRunning,
                     fmt::format("VM {} is not running: its VMM exited (status {})", vm.id, status));
  }
  if (vm.state == "lost")
    return api_error(ErrorCode::VmNotRunning,
                     fmt::format("VM {} is lost: {}; starting it boots it again from its disk", vm.id,
                                 vm.error_reason.value_or("its VMM is gone")));
  return api_error(ErrorCode::VmNotRunning,
                   fmt::format("VM {} is not running (state {}); start it first", vm.id, vm.state));
}

ApiStatus LocalEngine::apply_create_fields(LiveVm& vm, const CreateVmRequest& req) {
  auto agent = vm.agent(120000);
  for (const auto& g : req.groups) {
    if (auto s = agent.group_create(g.name); !s.ok()) return from_agent_error(s.error());
  }
  for (const auto& u : req.users) {
    if (auto s = agent.user_create(u.name, u.groups); !s.ok()) return from_agent_error(s.error());
  }
  for (const auto& [path, content] : req.additional_files) {
    agent::WriteFileRequest w{.path = path};
    if (content.executable) w.mode = 0755u;
    if (auto s = agent.write_file(w, content.bytes); !s.ok()) return from_agent_error(s.error());
  }
  if (req.workdir) {
    if (auto s = agent.mkdir(*req.workdir); !s.ok()) return from_agent_error(s.error());
  }
  auto run = [&](const std::string& what, const std::string& command) -> ApiStatus {
    auto r = agent.exec({.command = command, .timeout_ms = 600000});
    if (!r.ok()) return from_agent_error(r.error());
    if (r->exit_code != 0)
      return api_error(ErrorCode::CreateVmBadRequest,
                       fmt::format("{} failed (exit {}): {}", what, r->exit_code, r->stderr_data));
    return {};
  };
  if (!req.apt_deps.empty()) {
    std::string pkgs;
    for (const auto& p : req.apt_deps) pkgs += " " + shell_quote(p);
    FORKVM_CHECK(run("apt-get install", "DEBIAN_FRONTEND=noninteractive apt-get update -q && "
                                        "DEBIAN_FRONTEND=noninteractive apt-get install -qy" +
                                            pkgs));
  }
  if (req.git) {
    // git.config: the identity commits made in the VM carry.
    auto config = [&](const char* key, const std::optional<std::string>& value) -> ApiStatus {
      if (!value) return {};
      return run(fmt::format("git config {}", key),
                 fmt::format("git config --system {} {}", key, shell_quote(*value)));
    };
    FORKVM_CHECK(config("user.name", req.git->user_name));
    FORKVM_CHECK(config("user.email", req.git->user_email));
    FORKVM_CHECK(config("user.signingkey", req.git->user_signing_key));
  }
  std::vector<GitRepo> repos = req.git_repos;
  if (req.git) repos.insert(repos.end(), req.git->repos.begin(), req.git->repos.end());
  for (const auto& repo : repos) {
    std::string cmd = fmt::format("git clone -q {} {}", shell_quote(repo.repo), shell_quote(repo.path));
    if (repo.rev)
      cmd += fmt::format(" && git -C {} checkout -q {}", shell_quote(repo.path), shell_quote(*repo.rev));
    FORKVM_CHECK(run("git clone of " + repo.repo, cmd));
  }
  if (req.systemd) {
    for (const auto& unit : req.systemd->services) FORKVM_TRY(create_service_on(vm, unit));
  }
  return {};
}

ApiResult<CreatedVm> LocalEngine::create_vm(const CallContext& /*ctx*/, const CreateVmInput& input) {
  const CreateVmRequest& req = input.request;

  Resources r{o_.default_mem_mib, o_.default_vcpus, 0};
  if (req.mem_size_gb) r.mem_mib = static_cast<uint64_t>(*req.mem_size_gb) * 1024;
  if (req.vcpu_count) r.vcpus = static_cast<uint32_t>(*req.vcpu_count);
  if (req.rootfs_size_gb) r.rootfs_bytes = static_cast<uint64_t>(*req.rootfs_size_gb) * kGiB;
  // Held until the VM runs or is undone: a VMM halted because the create
  // failed exits on purpose, not as a lost VM; a delete meanwhile waits.
  auto lock = op_lock(input.vm_id);
  std::lock_guard op_guard(*lock);
  std::string dir = vm_dir(input.vm_id);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("create {}: {}", dir, ec.message()));
  auto undo = [&] { remove_vm_files(input.vm_id); };
  storage::CreateOptions disk;
  disk.base = image_.rootfs;
  disk.layers_root = layers_root();
  if (r.rootfs_bytes > 0) {
    struct stat st {};
    if (::stat(image_.rootfs.c_str(), &st) == 0 && r.rootfs_bytes < static_cast<uint64_t>(st.st_size)) {
      undo();
      return api_error(ErrorCode::CreateVmBadRequest,
                       fmt::format("rootfsSizeGb is smaller than the image's {} bytes", st.st_size));
    }
    disk.size = r.rootfs_bytes;
  }
  if (req.workdir) {
    std::ofstream(dir + "/workdir") << *req.workdir;
  }
  // Create is a restore: of the snapshot it names, else of the default image
  // saved once at agent-ready. Sizes other than the defaults boot fresh.
  bool default_sizes = !req.mem_size_gb && !req.vcpu_count && !req.rootfs_size_gb;
  std::optional<std::string> from;
  if (input.base_snapshot) {
    from = o_.data_dir + "/snapshots/" + input.base_snapshot->id;
    if (input.base_snapshot->mem_size_mib) r.mem_mib = static_cast<uint64_t>(*input.base_snapshot->mem_size_mib);
    if (input.base_snapshot->vcpu_count) r.vcpus = static_cast<uint32_t>(*input.base_snapshot->vcpu_count);
  } else if (default_sizes) {
    auto golden_dir = golden(r);
    if (golden_dir.ok()) {
      from = *golden_dir;
    } else {
      log(LogLevel::warn, "engine: no golden snapshot ({}); booting VM {} instead", golden_dir.error().message,
          input.vm_id);
    }
  }
  ApiResult<std::shared_ptr<LiveVm>> vm = api_error(ErrorCode::InternalError, "not started");
  if (from) {
    vm = create_from_snapshot(input.vm_id, *from, r);
  } else {
    if (auto made = storage::create_chain(dir + "/disk", disk); !made.ok()) {
      undo();
      return api_error(ErrorCode::InternalError, "creating the VM's disk: " + made.error().message);
    }
    if (auto s = save_resources(input.vm_id, r); !s.ok()) {
      undo();
      return s.error();
    }
    vm = boot(input.vm_id, r);
  }
  if (!vm.ok()) {
    undo();
    return vm.error();
  }
  if (auto s = apply_create_fields(**vm, req); !s.ok()) {
    halt(**vm, false);
    forget(input.vm_id);
    undo();
    return s.error();
  }
  CreatedVm out;
  out.vm_id = input.vm_id;
  out.instance_id = (*vm)->instance_id;
  out.state = "running";
  out.runtime.vmm_pid = (*vm)->vmm->pid();
  out.runtime.agent_socket = (*vm)->agent_socket;
  out.runtime.control_socket = (*vm)->control_socket;
  return out;
}

ApiResult<StartedVm> LocalEngine::start_vm(const CallContext& /*ctx*/, const VmRecord& vm,
                                           const StartVmRequest& /*req*/) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = find(vm.id);
  if (!live || !live->vmm->running()) {
    if (live) forget(vm.id);
    if (vm.state == "suspended") {
      live = FORKVM_TRY(resume(vm));
    } else {
      auto r = FORKVM_TRY(load_resources(vm.id));
      live = FORKVM_TRY(boot(vm.id, r));
    }
  }
  StartedVm out;
  out.instance_id = live->instance_id;
  out.runtime.vmm_pid = live->vmm->pid();
  out.runtime.agent_socket = live->agent_socket;
  return out;
}

ApiResult<StoppedVm> LocalEngine::stop_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  StoppedVm out{vm.instance_id.value_or("")};
  if (auto live = find(vm.id)) {
    out.instance_id = live->instance_id;
    halt(*live, true);
    forget(vm.id);
  }
  return out;
}

ApiStatus LocalEngine::kill_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto guard = lock_ending_start(vm.id);
  if (auto live = find(vm.id)) {
    live->vmm->signal(SIGKILL);
    live->vmm->wait_for(std::chrono::seconds(10));
    remove_leftover_network(live->net_slot);  // SIGKILL leaves no teardown; the slot is still this VM's
    forget(vm.id);
  }
  return {};
}


ApiResult<VmExit> LocalEngine::await_exit(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto live = find(vm.id);
  if (!live) return VmExit{"stopped"};
  live->vmm->wait();
  std::string status = live->vmm->exit_status().value_or("unknown");
  forget(vm.id);
  return VmExit{status};
}

ApiStatus LocalEngine::delete_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto guard = lock_ending_start(vm.id);
  // The console goes with the VM's files: keep its kernel's last word.
  if (auto fault = guest_fault_in_console(vm_dir(vm.id) + "/console.log"))
    log(LogLevel::warn, "engine: VM {} (being deleted) had a guest kernel fault: {}", vm.id, *fault);
  if (auto live = find(vm.id)) {
    halt(*live, false);
    forget(vm.id);
  }
  remove_vm_files(vm.id);
  return {};
}

ApiResult<ResizedVm> LocalEngine::resize_vm(const CallContext& /*ctx*/, const VmRecord& vm,
                                            const ResizeVmRequest& req) {
  auto r = FORKVM_TRY(load_resources(vm.id));
  if (req.mem_size_gb) r.mem_mib = static_cast<uint64_t>(*req.mem_size_gb) * 1024;
  if (req.vcpu_count) r.vcpus = static_cast<uint32_t>(*req.vcpu_count);
  ResizedVm out;
  if (req.rootfs_size_gb) {
    r.rootfs_bytes = static_cast<uint64_t>(*req.rootfs_size_gb) * kGiB;
    out = FORKVM_TRY(grow_root_disk(vm, r.rootfs_bytes));
  }
  // vCPUs and memory take effect at the VM's next start; the disk already has.
  FORKVM_CHECK(save_resources(vm.id, r));
  return out;
}

ApiResult<OptimizedVm> LocalEngine::optimize_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  // Forks and snapshots stack layers on a VM's disk (each read looks through
  // them); optimize merges them into one while no VMM has the disk open.
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  const std::string chain = vm_dir(vm.id) + "/disk/chain";
  auto info = storage::load_chain(chain);
  if (!info.ok()) return api_error(ErrorCode::InternalError, info.error().message);
  const size_t layers = info->layers.size();
  if (layers <= 1) return OptimizedVm{"the VM's disk is the image plus one layer of its own; nothing to flatten"};
  if (auto live = find(vm.id); live && live->vmm->running()) {
    return OptimizedVm{fmt::format(
        "the VM's disk has {} layers; it is running, so nothing was changed: optimize flattens them while the VM "
        "is stopped or suspended",
        layers)};
  }
  auto merged = storage::flatten_chain_in_place(chain);
  if (!merged.ok()) return api_error(ErrorCode::InternalError, "flattening the VM's disk: " + merged.error().message);
  collect_unused_layers();
  log(LogLevel::info, "engine: VM {}: {} disk layers flattened into one", vm.id, *merged);
  return OptimizedVm{fmt::format("flattened the VM's {} disk layers into one", *merged)};
}

Result<std::unique_ptr<VmEngine>> make_local_engine(const LocalEngineOptions& options) {
  LocalEngineOptions o = options;
  // The running binary itself, even after a rebuild replaced the file on disk:
  // a VMM is always the same version as the server that started it.
  if (o.forkvm_binary.empty()) o.forkvm_binary = "/proc/self/exe";
  auto image = FORKVM_TRY(find_image(o.image));
  std::error_code ec;
  for (const char* sub : {"/vms", "/layers", "/snapshots", "/golden"}) {
    std::filesystem::create_directories(o.data_dir + sub, ec);
    if (ec) return make_error("create {}{}: {}", o.data_dir, sub, ec.message());
  }
  std::filesystem::create_directories(o.run_dir, ec);
  if (ec) return make_error("create {}: {}", o.run_dir, ec.message());
  bool warm = o.warm_up;
  auto engine = std::make_unique<LocalEngine>(std::move(o), std::move(image));
  // Before the warm-up launches anything: their network slots are taken.
  engine->find_running_vmms();
  engine->start_net_preparer();
  engine->start_vmm_pool();
  if (warm) engine->start_warm_up();
  return std::unique_ptr<VmEngine>(std::move(engine));
}

}  // namespace forkvm::engine
