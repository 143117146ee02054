// Snapshots, restore and live fork of a Machine (fork-and-snapshot.md).
//
// The pause is kept to what must happen with the vCPUs stopped: saving
// registers and device state (KiBs), freezing the layered disks (a flush
// and a new empty top layer) and one fork() of this process, whose
// copy-on-write view of guest RAM is then written to the memory file while
// the guest runs on. So the pause is about the cost of fork() (page tables,
// not pages) whatever the memory size; only a snapshot that stops the VM
// (suspend) writes memory while paused, since nothing runs afterwards.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <future>
#include <optional>

#include "devices/storage/chain_ops.hpp"
#include "snapshot/cpu_state.hpp"
#include "snapshot/machine_config.hpp"
#include "snapshot/memory_file.hpp"
#include "vmm/log.hpp"
#include "vmm/machine_impl.hpp"
#include "vmm/state_codec.hpp"
#include "vmm/x86/vmgenid.hpp"

namespace forkvm {
namespace {

using machine_detail::kStateFile;
using machine_detail::ms_since;

constexpr auto kVcpuPauseBound = std::chrono::milliseconds(2000);
// The hard link, in a snapshot directory, to the memory file a delta is over.
constexpr const char* kMemoryBaseName = "memory.base";

// The frozen chain of writable layered disk `index` inside a snapshot directory.
std::string disk_chain_path(const std::string& dir, size_t index) {
  return index == 0 ? dir + "/chain" : fmt::format("{}/chain.{}", dir, index);
}

// "memory" in a new directory; over an earlier snapshot a name it does not
// use, so that until the new state file replaces the old one the old
// snapshot stays whole.
std::string fresh_memory_name(const std::string& dir) {
  if (::access((dir + "/" + kStateFile).c_str(), F_OK) != 0) return "memory";
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return fmt::format("memory-{:x}-{}", std::chrono::duration_cast<std::chrono::nanoseconds>(now).count(),
                     ::getpid());
}

// What a snapshot writes after the pause (in the writer process or, with
// stop, in place).
struct MemoryPlan {
  std::string dir;
  std::string name;  // the memory (or delta) file
  std::string base;  // with a delta: the link to the file it is over
  bool delta = false;
  std::vector<uint8_t> state;  // the encoded state file
};

// Removes memory files in `dir` that the new state file does not name.
void remove_stale_memory(const MemoryPlan& plan) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(plan.dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.starts_with("memory") && name != plan.name && !(plan.delta && name == plan.base))
      std::filesystem::remove(e.path(), ec);
  }
}

// Links the file a delta is over into `dir`, as "memory.base" unless an
// earlier snapshot there has a different file by that name (it stays until
// the new state file replaces the old one; one no state file names is
// replaced); returns the name, or nothing
// when no link can be made (another file system: a full write then).
std::optional<std::string> link_memory_base(const std::string& dir, int base_fd) {
  struct stat want {};
  struct stat have {};
  std::string name = kMemoryBaseName;
  if (::fstat(base_fd, &want) != 0) return std::nullopt;
  if (::stat((dir + "/" + name).c_str(), &have) == 0) {
    if (have.st_dev == want.st_dev && have.st_ino == want.st_ino) return name;
    // Without a state file no snapshot here uses it (a failed one left it).
    if (::access((dir + "/" + kStateFile).c_str(), F_OK) != 0) {
      ::unlink((dir + "/" + name).c_str());
    } else {
      name = fresh_memory_name(dir) + ".base";
    }
  }
  const std::string proc = fmt::format("/proc/self/fd/{}", base_fd);
  if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, (dir + "/" + name).c_str(), AT_SYMLINK_FOLLOW) != 0) {
    log(LogLevel::info, "snapshot {}: full memory write (no link to the base: {})", dir,
        std::strerror(errno));
    return std::nullopt;
  }
  return name;
}

Result<snapshot::MemoryFileStats> write_memory_and_state(const GuestMemory& memory, const MemoryPlan& plan) {
  const std::string path = plan.dir + "/" + plan.name;
  auto stats =
      plan.delta ? snapshot::write_memory_delta(memory, path) : snapshot::write_memory_file(memory, path);
  Status done = stats.ok() ? snapshot::sync_file(path) : Status{stats.error()};
  // Last: the snapshot exists once `state` names the new memory file.
  if (done.ok()) done = snapshot::write_file_atomic(plan.dir + "/" + kStateFile, plan.state);
  if (!done.ok()) {
    // A full disk: the partial file goes (its name is fresh, so an earlier
    // snapshot in `dir` never used it), the earlier state file stays.
    ::unlink(path.c_str());
    return done.error();
  }
  return stats;
}

}  // namespace

bool Machine::Impl::threads_started() const {
  return !threads.empty() && threads.front()->state() != VcpuThread::State::created;
}

Status Machine::Impl::pause_vcpus() {
  if (!threads_started()) return {};
  for (size_t i = 0; i < threads.size(); ++i) {
    if (auto s = threads[i]->pause(kVcpuPauseBound); !s.ok()) {
      for (size_t j = 0; j < i; ++j) (void)threads[j]->resume();
      return s.error().context("pause");
    }
  }
  return {};
}

void Machine::Impl::resume_vcpus() {
  if (!threads_started()) return;
  // While they are parked (the ioctl waits for a running vCPU): tell the
  // guest it was stopped, so its watchdogs do not call the gap a lockup.
  for (auto& v : vcpus) (void)v.kvmclock_ctrl();
  for (auto& t : threads) (void)t->resume();
}

ControlStatus Machine::Impl::control_status() {
  ControlStatus s;
  s.paused = user_paused.load();
  s.cpus = config.cpus;
  s.mem_mib = config.mem_mib;
  s.restored = restored;
  if (config.vsock) s.vsock_cid = config.vsock->guest_cid;
  return s;
}

Status Machine::Impl::control_pause() {
  if (user_paused.exchange(true)) return {};
  if (auto s = pause_vcpus(); !s.ok()) {
    user_paused = false;
    return s;
  }
  return {};
}

Status Machine::Impl::control_resume() {
  if (!user_paused.exchange(false)) return {};
  resume_vcpus();
  return {};
}

void Machine::Impl::control_stop() {
  uint64_t one = 1;
  (void)!::write(stop_fd.get(), &one, sizeof(one));
}

void Machine::Impl::reap_children() {
  std::erase_if(fork_children, [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) == p; });
}

Result<std::vector<std::pair<size_t, storage::ChainDescriptor>>> Machine::Impl::freeze_disks() {
  std::vector<std::pair<size_t, storage::ChainDescriptor>> frozen;
  for (size_t i = 0; i < layered.size(); ++i) {
    if (!layered[i] || layered[i]->read_only()) continue;
    frozen.emplace_back(i, FORKVM_TRY(layered[i]->freeze().context(fmt::format("freeze disk {}", i))));
  }
  return frozen;
}

void Machine::Impl::control_snapshot(const SnapshotRequest& request, SnapshotDone done) {
  const std::string& dir = request.dir;
  reap_children();
  if (writing_snapshot) return done(make_error("snapshot {}: another snapshot's memory is still being written", dir));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
    return done(errno_error(fmt::format("snapshot: create {}", dir)));
  auto msrs = kvm.msr_index_list();
  if (!msrs.ok()) return done(msrs.error());

  const auto t0 = std::chrono::steady_clock::now();
  const bool was_paused = user_paused.load();
  if (!was_paused) {
    if (auto s = pause_vcpus(); !s.ok()) return done(s.error().context("snapshot"));
  }
  // ---- paused: state, disks, the plan for memory ----
  MemoryPlan plan{dir, fresh_memory_name(dir), {}, false, {}};
  snapshot::StateFileWriter file;
  if (auto s = save_sections(file, *msrs); !s.ok()) {
    if (!was_paused) resume_vcpus();
    return done(s.error().context(fmt::format("snapshot {}", dir)));
  }
  auto frozen = freeze_disks();
  if (!frozen.ok()) {
    if (!was_paused) resume_vcpus();
    return done(frozen.error().context(fmt::format("snapshot {}", dir)));
  }
  // Over the file this machine was restored from, only the pages the guest
  // changed need writing (the delta names its pages itself: no reliance on
  // the filesystem's holes); a hard link keeps that file for the snapshot.
  if (memory_base_fd.valid()) {
    if (auto base = link_memory_base(dir, memory_base_fd.get())) {
      plan.base = *base;
      plan.delta = true;
    }
  }
  {
    StateWriter w;
    if (plan.delta) {
      w.str(plan.base);
      w.str(plan.name);
      w.u64(memory.size());
      file.add(snapshot::kMemoryDelta, 0, w.take());
    } else {
      w.str(plan.name);
      w.u64(memory.size());
      file.add(snapshot::kMemory, 0, w.take());
    }
  }
  {
    StateWriter w;
    snapshot::encode_machine_config(config, w);
    file.add(snapshot::kMachine, 0, w.take());
  }
  plan.state = file.encode();

  SnapshotStats stats;
  stats.dir = dir;
  stats.state_bytes = plan.state.size();
  stats.memory_file_bytes = memory.size();
  stats.memory_delta = plan.delta;
  stats.stopped = request.stop;
  // Frozen chains are recorded and held by their file in the snapshot.
  auto record_disks = [&]() -> Status {
    for (const auto& [index, chain] : *frozen) {
      const std::string path = disk_chain_path(dir, index);
      FORKVM_CHECK(storage::retain_chain(chain, path));
      FORKVM_CHECK(storage::save_chain(path, chain));
      stats.disks.push_back(path);
    }
    return {};
  };

  if (request.stop || !loop_running.load()) {
    // Nothing runs after a stop: write in place, still paused.
    auto written = write_memory_and_state(memory, plan);
    Status recorded = written.ok() ? record_disks() : Status{};
    stats.pause_ms = ms_since(t0);
    stats.total_ms = stats.pause_ms;
    if (!written.ok() || !recorded.ok()) {
      if (!was_paused) resume_vcpus();  // the VM goes on; the snapshot is not made
      return done((written.ok() ? recorded.error() : written.error()).context(fmt::format("snapshot {}", dir)));
    }
    if (!request.stop && !was_paused) resume_vcpus();
    stats.memory_data_bytes = written->data_bytes;
    remove_stale_memory(plan);
    log(LogLevel::info, "snapshot {}: paused {:.1f} ms, {} MiB of memory written{}", dir, stats.pause_ms,
        written->data_bytes >> 20, plan.delta ? " (delta)" : "");
    return done(stats);
  }

  // ---- the writer: a fork()ed copy of this process holds RAM as of now ----
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    if (!was_paused) resume_vcpus();
    return done(errno_error("snapshot: pipe for the memory writer"));
  }
  UniqueFd result_read(pipe_fds[0]);
  UniqueFd result_write(pipe_fds[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Only this thread exists here; it writes and leaves without running
    // any of the parent's destructors.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    auto written = write_memory_and_state(memory, plan);
    const std::string out = written.ok() ? fmt::format("ok {}", written->data_bytes) : written.error().message;
    (void)!::write(result_write.get(), out.data(), out.size());
    ::_exit(written.ok() ? 0 : 1);
  }
  const int fork_errno = errno;
  if (!was_paused) resume_vcpus();
  stats.pause_ms = ms_since(t0);
  result_write.reset();
  if (pid < 0) return done(errno_error("snapshot: fork the memory writer", fork_errno));
  if (auto s = record_disks(); !s.ok()) log(LogLevel::error, "snapshot {}: {}", dir, s.error().message);
  writing_snapshot = true;

  // The answer comes when the writer is done; the guest and devices run meanwhile.
  const int rfd = result_read.get();
  auto reader = std::make_shared<UniqueFd>(std::move(result_read));
  auto message = std::make_shared<std::string>();
  auto watched = loop->watch_readable(rfd, [this, reader, message, pid, t0, stats, done,
                                            plan = std::move(plan)]() mutable {
    char buf[512];
    const ssize_t n = ::read(reader->get(), buf, sizeof buf);
    if (n > 0) {
      message->append(buf, static_cast<size_t>(n));
      return;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
    loop->unwatch(reader->get());
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    writing_snapshot = false;
    stats.total_ms = ms_since(t0);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && message->starts_with("ok ");
    if (!ok) {
      // The writer removes what it wrote when it fails. If it died instead, its
      // memory file stays until the next snapshot here (remove_stale_memory):
      // it cannot tell whether the state file came to name it.
      std::error_code ec;
      std::filesystem::remove(stats.dir + "/" + kStateFile + ".tmp", ec);
      return done(make_error("snapshot {}: writing memory failed: {}", stats.dir,
                             message->empty() ? "the writer died" : *message));
    }
    stats.memory_data_bytes = std::stoull(message->substr(3));
    remove_stale_memory(plan);
    log(LogLevel::info, "snapshot {}: paused {:.2f} ms, complete after {:.0f} ms, {} MiB of memory written{}",
        stats.dir, stats.pause_ms, stats.total_ms, stats.memory_data_bytes >> 20, stats.memory_delta ? " (delta)" : "");
    done(stats);
  });
  if (!watched.ok()) {
    ::waitpid(pid, nullptr, 0);
    writing_snapshot = false;
    return done(watched.error());
  }
}

Status Machine::Impl::save_sections(snapshot::StateFileWriter& file, std::span<const uint32_t> msrs) {
  // Devices first, because blk's drain may raise an interrupt that the
  // irqchip and LAPIC state must then include; then the VM's irqchips, PIT
  // and clock; then each vCPU.
  for (size_t i = 0; i < transports.size(); ++i) {
    StateWriter w;
    FORKVM_CHECK(transports[i]->save_state(w).context(fmt::format("virtio device {}", i)));
    file.add(snapshot::kVirtio, static_cast<uint32_t>(i), w.take());
  }
  {
    StateWriter w;
    serial->save_state(w);
    i8042->save_state(w);
    acpi_pm->save_state(w);
    file.add(snapshot::kLegacy, 0, w.take());
  }
  {
    StateWriter w;
    FORKVM_CHECK(snapshot::save_vm(vm, w));
    file.add(snapshot::kVm, 0, w.take());
  }
  for (const Vcpu& v : vcpus) {
    StateWriter w;
    FORKVM_CHECK(snapshot::save_vcpu(v, msrs, w));
    file.add(snapshot::kVcpu, v.index(), w.take());
  }
  return {};
}

// Into a freshly built machine whose vCPUs have not run. Order: the VM's
// irqchips and clock, then the vCPUs (LAPICs), then the devices; only then
// may anything raise an interrupt (after_restore), or SET_LAPIC would
// overwrite it.
Status Machine::Impl::load_snapshot(const snapshot::StateFile& file) {
  {
    const auto* s = FORKVM_TRY(file.require(snapshot::kVm, 0, "VM"));
    StateReader r(s->payload, "the VM");
    FORKVM_CHECK(snapshot::restore_vm(vm, r));
  }
  for (Vcpu& v : vcpus) {
    const auto* s = FORKVM_TRY(file.require(snapshot::kVcpu, v.index(), "vCPU"));
    StateReader r(s->payload, fmt::format("vCPU {}", v.index()));
    FORKVM_CHECK(snapshot::restore_vcpu(v, r));
  }
  {
    const auto* s = FORKVM_TRY(file.require(snapshot::kLegacy, 0, "legacy devices"));
    StateReader r(s->payload, "the legacy devices");
    FORKVM_CHECK(serial->load_state(r));
    FORKVM_CHECK(i8042->load_state(r));
    FORKVM_CHECK(acpi_pm->load_state(r));
  }
  for (const auto& s : file.sections()) {
    if (s.id == snapshot::kVirtio && s.instance >= transports.size()) {
      return make_error("snapshot has virtio device {}, the restored machine only {}", s.instance, transports.size());
    }
  }
  for (size_t i = 0; i < transports.size(); ++i) {
    const auto* s = FORKVM_TRY(file.require(snapshot::kVirtio, static_cast<uint32_t>(i), "virtio device"));
    StateReader r(s->payload, fmt::format("virtio device {}", i));
    FORKVM_CHECK(transports[i]->load_state(r));
  }
  for (auto& t : transports) t->after_restore();
  // This state may now run more than once: a new generation, and the
  // guest told so (it reseeds its RNG before it runs much further).
  FORKVM_CHECK(x86::write_new_vm_generation_id(memory));
  ged_irq->trigger();
  return {};
}

namespace {

Result<std::string> plain_file_name(StateReader& r, const std::string& dir) {
  std::string name = FORKVM_TRY(r.str(255));
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return make_error("snapshot {}: memory file name '{}' is not a plain file name", dir, name);
  }
  return name;
}

// Opens a memory file of exactly `size` bytes: shorter would SIGBUS the VMM
// when the guest touches the missing tail.
Result<UniqueFd> open_memory_file(const std::string& path, uint64_t size) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open memory file {}", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("stat {}", path));
  if (static_cast<uint64_t>(st.st_size) != size) {
    return make_error("memory file {} is {} bytes, the snapshot needs {}", path, st.st_size, size);
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<Machine>> Machine::restore(const MachineConfig& given, const std::string& dir,
                                                  std::optional<PreparedVm> prepared) {
  const auto file = FORKVM_TRY(snapshot::StateFile::read(dir + "/" + kStateFile));
  const auto* msec = FORKVM_TRY(file.require(snapshot::kMachine, 0, "machine"));
  StateReader mr(msec->payload, "the machine");
  const MachineConfig recorded = FORKVM_TRY(snapshot::decode_machine_config(mr));
  const MachineConfig config = FORKVM_TRY(snapshot::merge_restore_config(recorded, given));

  // Either one memory file, or a base file plus the pages that differ from it.
  std::string base_name;
  std::optional<std::string> delta_name;
  uint64_t size = 0;
  if (file.find(snapshot::kMemoryDelta, 0) != nullptr) {
    StateReader r(file.find(snapshot::kMemoryDelta, 0)->payload, "the memory delta section");
    base_name = FORKVM_TRY(plain_file_name(r, dir));
    delta_name = FORKVM_TRY(plain_file_name(r, dir));
    size = FORKVM_TRY(r.u64());
  } else {
    const auto* memsec = FORKVM_TRY(file.require(snapshot::kMemory, 0, "memory"));
    StateReader r(memsec->payload, "the memory section");
    base_name = FORKVM_TRY(plain_file_name(r, dir));
    size = FORKVM_TRY(r.u64());
  }
  if (size != config.mem_mib << 20) {
    return make_error("snapshot {}: memory of {} bytes does not match the recorded {} MiB", dir, size, config.mem_mib);
  }
  const std::string base_path = dir + "/" + base_name;
  UniqueFd mfd = FORKVM_TRY(open_memory_file(base_path, size));
  UniqueFd delta_fd;
  if (delta_name) {
    // Its own header says how long it must be (apply_memory_delta checks).
    const std::string delta_path = dir + "/" + *delta_name;
    delta_fd.reset(::open(delta_path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!delta_fd.valid()) return errno_error(fmt::format("open memory delta {}", delta_path));
  }

  if (prepared && prepared->vcpus.size() > config.cpus) {
    log(LogLevel::info, "restore {}: the prepared VM has {} vCPUs, the snapshot {}: making a new VM", dir,
        prepared->vcpus.size(), config.cpus);
    prepared.reset();
  }
  if (!prepared) prepared = FORKVM_TRY(PreparedVm::create(0));  // build() makes the vCPUs
  auto memory = FORKVM_TRY(GuestMemory::map_file_private(mfd.get(), size));
  if (delta_fd.valid()) FORKVM_CHECK(snapshot::apply_memory_delta(memory, delta_fd.get(), dir + "/" + *delta_name));
  auto impl =
      std::make_unique<Impl>(config, std::move(prepared->kvm), std::move(prepared->vm), std::move(memory));
  impl->vcpus = std::move(prepared->vcpus);
  impl->x86_ready = true;
  impl->restored = true;
  impl->memory_base = base_path;
  impl->memory_base_fd = std::move(mfd);
  FORKVM_CHECK(impl->build());
  FORKVM_CHECK(impl->load_snapshot(file).context(fmt::format("restore {}", dir)));
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Result<SnapshotStats> Machine::save_snapshot(const std::string& dir, bool stop) {
  Impl& m = *impl_;
  auto done = std::make_shared<std::promise<Result<SnapshotStats>>>();
  auto result = done->get_future();
  auto deliver = [done](Result<SnapshotStats> r) { done->set_value(std::move(r)); };
  if (!m.loop_running.load() || std::this_thread::get_id() == m.loop_thread) {
    // Not running (or on the loop already): written in place.
    m.control_snapshot({dir, stop}, deliver);
  } else {
    // Devices belong to the event loop thread: save them there.
    m.loop->post([&m, dir, stop, deliver] { m.control_snapshot({dir, stop}, deliver); });
  }
  if (result.wait_for(std::chrono::seconds(600)) != std::future_status::ready) {
    return make_error("snapshot {}: not complete within 600 s", dir);
  }
  Result<SnapshotStats> r = make_error("snapshot: not run");
  try {
    r = result.get();
  } catch (const std::future_error&) {  // the loop ended before running it
    return make_error("snapshot {}: the machine stopped first", dir);
  }
  if (r.ok() && stop) request_stop();
  return r;
}

}  // namespace forkvm
