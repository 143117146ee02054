// Live fork of a Machine (fork-and-snapshot.md 5.2, without the zygote):
// the parent pauses for state, a disk freeze and one fork(); each child
// builds a new KVM VM over its copy-on-write view of guest RAM.
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "devices/storage/chain_ops.hpp"
#include "vmm/log.hpp"
#include "vmm/machine_impl.hpp"

namespace forkvm {
namespace {

using machine_detail::ms_since;

constexpr uint32_t kMaxForks = 64;

// In a live-fork child: the machine SIGTERM and SIGINT stop, so that it
// tears down what it owns (its network namespace) instead of dying.
Machine* g_forked_machine = nullptr;
extern "C" void stop_forked_machine(int /*sig*/) {
  if (g_forked_machine != nullptr) g_forked_machine->request_stop();
}

}  // namespace

Result<ForkStats> Machine::Impl::control_fork(const ForkRequest& request) {
  reap_children();
  const uint32_t count = request.children.empty() ? request.count : static_cast<uint32_t>(request.children.size());
  if (count == 0 || count > kMaxForks) return make_error("fork: count must be 1..{}", kMaxForks);
  size_t writable_chains = 0;
  for (size_t d = 0; d < config.disks.size(); ++d) {
    if (config.disks[d].read_only) continue;
    // Parent and children would write one raw image.
    if (!layered[d]) return make_error("fork: disk {} is a writable raw image; only layered disks fork", config.disks[d].path);
    ++writable_chains;
  }
  std::vector<ForkChildSpec> specs;
  std::vector<MachineConfig> configs;
  ForkStats stats;
  for (uint32_t i = 1; i <= count; ++i) {
    ForkChildSpec spec;
    if (!request.children.empty()) {
      spec = request.children[i - 1];
    } else {
      spec.control = fmt::format("{}-{}.ctl", request.prefix, i);
      spec.console = fmt::format("{}-{}.console", request.prefix, i);
      spec.vsock = fmt::format("{}-{}.vsock", request.prefix, i);
      for (size_t d = 0; d < writable_chains; ++d) spec.disk_dirs.push_back(fmt::format("{}-{}.disk{}", request.prefix, i, d));
    }
    if (spec.disk_dirs.size() != writable_chains) {
      return make_error("fork: child {} names {} disk directories, the VM has {} writable layered disks", i,
                        spec.disk_dirs.size(), writable_chains);
    }
    MachineConfig c = config;
    c.console = spec.console;
    if (c.vsock) {
      if (spec.vsock.empty()) return make_error("fork: child {} needs a vsock socket path", i);
      c.vsock = VsockConfig{spec.vsock, spec.vsock_cid != 0 ? spec.vsock_cid : config.vsock->guest_cid + i};
    }
    if (c.net) c.net = NetConfig{spec.net_slot.value_or(config.net->slot + i)};
    configs.push_back(c);
    stats.children.push_back({0, spec.control, c.console});
    specs.push_back(std::move(spec));
  }
  const auto msrs = FORKVM_TRY(kvm.msr_index_list());

  const auto t0 = std::chrono::steady_clock::now();
  const bool was_paused = user_paused.load();
  if (!was_paused) FORKVM_CHECK(pause_vcpus().context("fork"));
  snapshot::StateFileWriter file;
  auto saved = save_sections(file, msrs);
  stats.save_ms = ms_since(t0);
  auto frozen = saved.ok() ? freeze_disks() : Result<std::vector<std::pair<size_t, storage::ChainDescriptor>>>(saved.error());
  const std::vector<uint8_t> state = frozen.ok() ? file.encode() : std::vector<uint8_t>{};
  stats.freeze_ms = ms_since(t0) - stats.save_ms;
  const auto fork_t0 = std::chrono::steady_clock::now();
  Result<Spawner> spawner = make_error("not forked");
  if (frozen.ok()) spawner = fork_spawner(state, configs, *frozen, specs);
  stats.fork_ms = ms_since(fork_t0);
  if (!was_paused) resume_vcpus();
  stats.pause_ms = ms_since(t0);
  if (!frozen.ok()) return frozen.error().context("fork");
  if (!spawner.ok()) return spawner.error();
  FORKVM_CHECK(collect_children(std::move(*spawner), stats));
  log(LogLevel::info, "fork: {} children, parent paused {:.2f} ms", count, stats.pause_ms);
  return stats;
}

// The one fork() inside the parent's pause, whatever the count: a copy of this process
// as of the pause, which forks the children while the parent's guest runs again and
// writes each child's pid (or -errno) to a pipe, then exits. This process is a child
// subreaper until it has reaped the spawner, so the spawner's orphans (the children)
// become its own, as if it had forked them; after that, the orphans of a child that
// exits go to init again, not here. (Children orphaned within those few milliseconds
// come here too, and stay zombies once they exit until this VMM exits.)
Result<Machine::Impl::Spawner> Machine::Impl::fork_spawner(
    const std::vector<uint8_t>& state, const std::vector<MachineConfig>& configs,
    const std::vector<std::pair<size_t, storage::ChainDescriptor>>& frozen,
    const std::vector<ForkChildSpec>& specs) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("fork: pipe for the children's pids");
  UniqueFd pids_read(fds[0]);
  UniqueFd pids_write(fds[1]);
  if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) return errno_error("fork: become a child subreaper");
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    (void)::prctl(PR_SET_CHILD_SUBREAPER, 0);
    return errno_error("fork", err);
  }
  if (pid > 0) return Spawner{pid, std::move(pids_read)};
  // The spawner: only this thread exists; it runs none of the parent's destructors.
  // Each child closes the pipe with every other inherited fd (run_forked_child).
  for (size_t i = 0; i < configs.size(); ++i) {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(run_forked_child(state, configs[i], frozen, specs[i]));
    const int32_t report = child > 0 ? child : -errno;
    if (::write(pids_write.get(), &report, sizeof report) != static_cast<ssize_t>(sizeof report)) ::_exit(1);
    if (child < 0) ::_exit(1);
  }
  ::_exit(0);
}

Status Machine::Impl::collect_children(Spawner spawner, ForkStats& stats) {
  Status status;
  for (size_t i = 0; i < stats.children.size(); ++i) {
    int32_t report = 0;
    ssize_t n;
    do n = ::read(spawner.pids.get(), &report, sizeof report);
    while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof report)) {
      status = make_error("fork: the spawner ended after {} of {} children", i, stats.children.size());
      break;
    }
    if (report < 0) {
      status = errno_error(fmt::format("fork child {}", i + 1), -report);
      break;
    }
    stats.children[i].pid = report;
    fork_children.push_back(report);
  }
  while (::waitpid(spawner.pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  (void)::prctl(PR_SET_CHILD_SUBREAPER, 0);
  return status;
}

// In the child, on the only thread left (the parent's event loop thread,
// inside a control request). Nothing of the parent's machine may run here:
// its vCPU threads do not exist, its KVM fds answer EIO and its destructors
// would join threads that are gone, so it is left alone and its fds closed.
// The child gives each writable disk a chain of its own over the layers the
// parent just froze, builds a new KVM VM over the same guest RAM (now this
// process's copy-on-write view of it), loads the state the parent saved
// just before fork(), and runs until stopped.
int Machine::Impl::run_forked_child(const std::vector<uint8_t>& state, const MachineConfig& child_config,
                                    const std::vector<std::pair<size_t, storage::ChainDescriptor>>& frozen,
                                    const ForkChildSpec& spec) {
  // The parent's handlers would act on its machine; the child's own are
  // set once its machine exists.
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::close_range(3, ~0U, 0);
  if (!spec.log.empty()) {
    const int fd = ::open(spec.log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      ::close(fd);
    }
  }
  auto run = [&]() -> Result<int> {
    MachineConfig c = child_config;
    for (size_t k = 0; k < frozen.size(); ++k) {
      const auto& [index, chain] = frozen[k];
      c.disks[index].path = FORKVM_TRY(storage::fork_chain_from(chain, spec.disk_dirs[k]));
    }
    const auto file = FORKVM_TRY(snapshot::StateFile::parse(state, "fork state"));
    auto child_kvm = FORKVM_TRY(Kvm::open());
    auto child_vm = FORKVM_TRY(Vm::create(child_kvm));
    auto impl = std::make_unique<Impl>(c, std::move(child_kvm), std::move(child_vm), memory.adopt_after_fork());
    impl->restored = true;
    if (memory_base) {
      // Still the file under this (inherited) mapping: deltas work here too.
      impl->memory_base = memory_base;
      impl->memory_base_fd.reset(::open(memory_base->c_str(), O_RDONLY | O_CLOEXEC));
    }
    FORKVM_CHECK(impl->build());
    FORKVM_CHECK(impl->load_snapshot(file));
    std::unique_ptr<Machine> child(new Machine(std::move(impl)));
    g_forked_machine = child.get();
    struct sigaction sa {};
    sa.sa_handler = stop_forked_machine;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    FORKVM_CHECK(child->listen_control(spec.control));
    const MachineExit child_exit = FORKVM_TRY(child->run());
    return exit_status(child_exit.kind);
  };
  auto r = run();
  if (!r.ok()) {
    log(LogLevel::error, "fork child: {}", r.error().message);
    return 1;
  }
  return *r;
}

Result<ForkStats> Machine::fork(const ForkRequest& request) { return impl_->control_fork(request); }

}  // namespace forkvm
