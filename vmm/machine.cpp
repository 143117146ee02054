#include "vmm/machine.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <mutex>

#include "devices/acpi_pm.hpp"
#include "devices/i8042.hpp"
#include "devices/serial.hpp"
#include "devices/net/host_network.hpp"
#include "devices/storage/layered_blk_backend.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/mmio.hpp"
#include "devices/virtio/rng.hpp"
#include "devices/virtio/net.hpp"
#include "devices/virtio/vsock.hpp"
#include "vmm/bus.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/interrupt.hpp"
#include "vmm/kvm.hpp"
#include "vmm/log.hpp"
#include "vmm/vcpu.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/vm.hpp"
#include "vmm/x86/boot.hpp"
// Snapshots: the state file format, vCPU/VM state and the memory file.
#include <sys/wait.h>

#include <csignal>
#include <future>
#include <thread>

#include "snapshot/cpu_state.hpp"
#include "snapshot/format.hpp"
#include "snapshot/machine_config.hpp"
#include "snapshot/memory_file.hpp"
#include "vmm/control.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm {
namespace {

// The command line every guest gets before the user's: the serial console,
// reboot through the i8042 (the reset line our VMM turns into an exit), and
// reboot at once on panic so the panic is reported instead of hanging.
constexpr const char* kBaseCmdline = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.dumbkbd";
// virtio-mmio devices use GSIs from here up; below are the legacy ISA lines.
constexpr uint32_t kFirstVirtioGsi = 5;
// GSI 9 is the ACPI SCI the FADT announces; the IOAPIC has 24 pins.
constexpr uint32_t kAcpiSciGsi = 9;
constexpr uint32_t kIoapicPins = 24;

uint32_t virtio_gsi(uint32_t index) {
  const uint32_t gsi = kFirstVirtioGsi + index;
  return gsi >= kAcpiSciGsi ? gsi + 1 : gsi;
}
constexpr uint32_t kMaxVcpus = 64;
// Room the kernel needs beyond its image and initrd to boot at all.
constexpr uint64_t kMinHeadroom = 32ULL << 20;
constexpr auto kVcpuPauseBound = std::chrono::milliseconds(2000);
constexpr const char* kStateFile = "state";
constexpr uint32_t kMaxForks = 64;
constexpr const char* kMemoryFile = "memory";

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

Result<uint64_t> file_size(const std::string& path, const char* what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_error(fmt::format("{} {}", what, path));
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return make_error("{} {} is not a file", what, path);
  if (::access(path.c_str(), R_OK) != 0) return errno_error(fmt::format("{} {}", what, path));
  return static_cast<uint64_t>(st.st_size);
}

UniqueFd open_console(const std::string& console) {
  if (console == "-") return UniqueFd(::dup(STDOUT_FILENO));
  if (console.empty()) return UniqueFd(::open("/dev/null", O_WRONLY | O_CLOEXEC));
  return UniqueFd(::open(console.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
}

}  // namespace

const char* exit_kind_name(ExitKind kind) {
  switch (kind) {
    case ExitKind::poweroff: return "poweroff";
    case ExitKind::reboot: return "reboot";
    case ExitKind::panic: return "panic";
    case ExitKind::triple_fault: return "triple fault";
    case ExitKind::internal_error: return "internal error";
    case ExitKind::stopped: return "stopped";
  }
  return "unknown";
}

int exit_status(ExitKind kind) {
  switch (kind) {
    case ExitKind::poweroff: return 0;
    case ExitKind::reboot: return 3;
    case ExitKind::panic: return 4;
    case ExitKind::triple_fault: return 5;
    case ExitKind::internal_error: return 6;
    case ExitKind::stopped: return 130;
  }
  return 1;
}

Status validate(const MachineConfig& c) {
  if (c.cpus == 0 || c.cpus > kMaxVcpus) return make_error("--cpus must be between 1 and {}", kMaxVcpus);
  const uint64_t kernel = FORKVM_TRY(file_size(c.kernel, "kernel"));
  const uint64_t initrd = c.initrd ? FORKVM_TRY(file_size(*c.initrd, "initrd")) : 0;
  const uint64_t mem = c.mem_mib << 20;
  // The kernel unpacks to a few times its file size; the initrd sits in low RAM.
  if (kernel + initrd + kMinHeadroom > mem) {
    return make_error("{} MiB of memory is too small for a {} MiB kernel and {} MiB initrd", c.mem_mib,
                      kernel >> 20, initrd >> 20);
  }
  for (const auto& d : c.disks) {
    if (d.chain) {
      // The chain's files are checked when it opens (LayeredDisk::open).
      if (::access(d.path.c_str(), R_OK) != 0) return errno_error(fmt::format("disk chain {}", d.path));
      continue;
    }
    FORKVM_CHECK(file_size(d.path, "disk"));
    if (!d.read_only && ::access(d.path.c_str(), W_OK) != 0) {
      return errno_error(fmt::format("disk {} is not writable (add ,ro for a read-only disk)", d.path));
    }
  }
  if (c.disks.size() + (c.rng ? 1 : 0) + (c.vsock ? 1 : 0) + (c.net ? 1 : 0) > 16) {
    return make_error("at most 16 virtio devices");
  }
  return {};
}

struct Machine::Impl final : ControlTarget {
  MachineConfig config;
  Kvm kvm;
  Vm vm;
  GuestMemory memory;
  std::unique_ptr<EventLoop> loop;
  Bus pio;
  Bus mmio;
  // Owned here so that they outlive the devices that raise them.
  std::deque<EventFdInterrupt> irqs;
  // Before the transports: torn down (netns deleted) after the device that holds its TAP.
  std::unique_ptr<net::HostNetwork> host_net;
  std::vector<std::shared_ptr<virtio::MmioTransport>> transports;
  std::vector<UniqueFd> notify_fds;
  std::vector<Vcpu> vcpus;
  std::vector<std::unique_ptr<VcpuThread>> threads;
  UniqueFd console;
  UniqueFd stop_fd;  // eventfd: request_stop() must be async-signal-safe

  // Kept for snapshots; also on the PIO bus.
  std::shared_ptr<Serial> serial;
  std::shared_ptr<I8042> i8042;
  std::shared_ptr<AcpiPm> acpi_pm;
  bool restored = false;                 // built from a snapshot: no boot setup
  std::atomic<bool> user_paused{false};  // by pause() / {"op":"pause"}
  std::atomic<bool> loop_running{false};
  std::thread::id loop_thread;             // set before loop_running
  std::unique_ptr<ControlServer> control;  // after loop: destroyed before it

  std::mutex exit_mu;  // guards exit and panic_seen; a leaf lock
  std::optional<MachineExit> exit;
  bool panic_seen = false;

  Impl(const MachineConfig& c, Kvm k, Vm v, GuestMemory m)
      : config(c), kvm(std::move(k)), vm(std::move(v)), memory(std::move(m)) {}

  // The first terminal event wins; later ones (the other vCPUs stopping) are noise.
  void finish(MachineExit e) {
    {
      std::lock_guard lock(exit_mu);
      if (exit) return;
      // A reset right after "Kernel panic" is the panic=-1 reboot, not a user reboot.
      if (panic_seen && (e.kind == ExitKind::reboot || e.kind == ExitKind::triple_fault)) {
        e = {ExitKind::panic, "the guest kernel panicked (see the console)"};
      }
      exit = std::move(e);
    }
    uint64_t one = 1;
    (void)!::write(stop_fd.get(), &one, sizeof(one));
  }

  Result<EventFdInterrupt*> new_irq(uint32_t gsi) {
    irqs.push_back(FORKVM_TRY(EventFdInterrupt::create(gsi)));
    FORKVM_CHECK(vm.register_irqfd(irqs.back().fd(), gsi));
    return &irqs.back();
  }

  Status add_legacy_devices() {
    console = open_console(config.console);
    if (!console.valid()) return errno_error(fmt::format("open console {}", config.console));
    EventFdInterrupt* com1 = FORKVM_TRY(new_irq(kCom1Irq));
    serial = std::make_shared<Serial>(*com1, Serial::fd_sink(console.get()), [this](std::string_view line) {
      if (Serial::is_kernel_panic(line)) {
        std::lock_guard lock(exit_mu);
        panic_seen = true;
      }
    });
    FORKVM_CHECK(pio.add(kCom1Port, kSerialPortCount, serial));
    i8042 = std::make_shared<I8042>([this] { finish({ExitKind::reboot, "the guest asked for a reset"}); });
    FORKVM_CHECK(pio.add(kI8042Base, kI8042Size, i8042));
    acpi_pm = std::make_shared<AcpiPm>([this] { finish({ExitKind::poweroff, ""}); });
    FORKVM_CHECK(pio.add(kPm1EventPort, kAcpiPmPortCount, acpi_pm));
    return {};
  }

  // Puts a virtio device in the next MMIO window and tells the guest about it
  // on the command line (virtio_mmio.device=<size>@<base>:<irq>).
  Status add_virtio(std::shared_ptr<virtio::Device> device, std::string& cmdline) {
    const auto index = static_cast<uint32_t>(transports.size());
    const uint64_t base = layout::kVirtioMmioBase + index * layout::kVirtioMmioStride;
    const uint32_t gsi = virtio_gsi(index);
    if (gsi >= kIoapicPins) return make_error("no interrupt line left for virtio device {}", index);
    EventFdInterrupt* irq = FORKVM_TRY(new_irq(gsi));
    auto transport = std::make_shared<virtio::MmioTransport>(device, memory, *irq, base);
    FORKVM_CHECK(mmio.add(base, virtio::mmio::kWindowSize, transport));
    // One ioeventfd per queue: the doorbell never leaves the kernel.
    for (uint16_t q = 0; q < device->queue_count(); ++q) {
      int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (efd < 0) return errno_error("eventfd for a virtio queue");
      notify_fds.emplace_back(efd);
      FORKVM_CHECK(vm.register_ioeventfd(efd, transport->notify_address(), 4, q));
      FORKVM_CHECK(loop->watch_readable(efd, [efd, q, t = transport.get()] {
        uint64_t v;
        (void)!::read(efd, &v, sizeof(v));
        t->process_queue(q);
      }));
    }
    if (int efd = device->event_fd(); efd >= 0) {
      FORKVM_CHECK(loop->watch_readable(efd, [t = transport.get()] { t->process_event(); }));
    }
    transports.push_back(std::move(transport));
    cmdline += fmt::format(" virtio_mmio.device=4K@{:#x}:{}", base, gsi);
    return {};
  }

  Status build() {
    FORKVM_CHECK(vm.set_memory(memory));
    FORKVM_CHECK(vm.setup_x86());
    loop = FORKVM_TRY(EventLoop::create());
    int sfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (sfd < 0) return errno_error("eventfd for stop requests");
    stop_fd.reset(sfd);
    FORKVM_CHECK(loop->watch_readable(sfd, [this] {
      uint64_t v;
      (void)!::read(stop_fd.get(), &v, sizeof(v));
      finish({ExitKind::stopped, "stopped by the host"});
      loop->stop();
    }));

    FORKVM_CHECK(add_legacy_devices());
    std::string cmdline = kBaseCmdline;
    for (size_t i = 0; i < config.disks.size(); ++i) {
      const auto& d = config.disks[i];
      const std::string id = fmt::format("forkvm-disk{}", i);
      std::shared_ptr<virtio::Blk> blk;
      if (d.chain) {
        std::shared_ptr<storage::LayeredDisk> disk = FORKVM_TRY(storage::LayeredDisk::open(d.path, d.read_only));
        blk = FORKVM_TRY(virtio::Blk::create(std::make_unique<storage::LayeredBlkBackend>(std::move(disk)), id));
      } else {
        blk = FORKVM_TRY(virtio::Blk::create({d.path, d.read_only, id}));
      }
      FORKVM_CHECK(add_virtio(blk, cmdline));
    }
    if (config.rng) FORKVM_CHECK(add_virtio(std::make_shared<virtio::Rng>(), cmdline));
    if (config.vsock) {
      auto vsock = FORKVM_TRY(virtio::Vsock::create({config.vsock->guest_cid, config.vsock->uds_path}));
      FORKVM_CHECK(add_virtio(vsock, cmdline));
    }
    if (config.net) {
      host_net = FORKVM_TRY(net::HostNetwork::create(config.net->slot));
      auto nic = FORKVM_TRY(virtio::Net::create(host_net->take_tap(), net::kGuestMac));
      FORKVM_CHECK(add_virtio(nic, cmdline));
      cmdline += " " + net::HostNetwork::guest_cmdline();
    }
    if (!config.cmdline.empty()) cmdline += " " + config.cmdline;

    for (uint32_t i = 0; i < config.cpus; ++i) vcpus.push_back(FORKVM_TRY(Vcpu::create(vm, kvm, i)));
    x86::BootConfig boot{config.kernel, config.initrd, cmdline, config.cpus};
    // A restored machine gets its registers from the snapshot instead.
    if (!restored) FORKVM_CHECK(x86::configure_for_boot(kvm, vcpus, memory, boot));
    for (auto& v : vcpus) {
      threads.push_back(std::make_unique<VcpuThread>(v, pio, mmio, [this](const VcpuExit& e) { on_vcpu_exit(e); }));
    }
    return {};
  }

  // ---- snapshots ----

  [[nodiscard]] bool threads_started() const {
    return !threads.empty() && threads.front()->state() != VcpuThread::State::created;
  }

  Status pause_vcpus() {
    if (!threads_started()) return {};
    for (size_t i = 0; i < threads.size(); ++i) {
      if (auto s = threads[i]->pause(kVcpuPauseBound); !s.ok()) {
        for (size_t j = 0; j < i; ++j) (void)threads[j]->resume();
        return s.error().context("pause");
      }
    }
    return {};
  }

  void resume_vcpus() {
    if (!threads_started()) return;
    // While they are parked (the ioctl waits for a running vCPU): tell the
    // guest it was stopped, so its watchdogs do not call the gap a lockup.
    for (auto& v : vcpus) (void)v.kvmclock_ctrl();
    for (auto& t : threads) (void)t->resume();
  }

  ControlStatus control_status() override {
    ControlStatus s;
    s.paused = user_paused.load();
    s.cpus = config.cpus;
    s.mem_mib = config.mem_mib;
    s.restored = restored;
    if (config.vsock) s.vsock_cid = config.vsock->guest_cid;
    return s;
  }

  Status control_pause() override {
    if (user_paused.exchange(true)) return {};
    if (auto s = pause_vcpus(); !s.ok()) {
      user_paused = false;
      return s;
    }
    return {};
  }

  Status control_resume() override {
    if (!user_paused.exchange(false)) return {};
    resume_vcpus();
    return {};
  }

  void control_stop() override {
    uint64_t one = 1;
    (void)!::write(stop_fd.get(), &one, sizeof(one));
  }

  Result<SnapshotStats> control_snapshot(const std::string& dir, bool stop) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      return errno_error(fmt::format("snapshot: create {}", dir));
    const auto msrs = FORKVM_TRY(kvm.msr_index_list());
    const auto t0 = std::chrono::steady_clock::now();
    const bool was_paused = user_paused.load();
    if (!was_paused) FORKVM_CHECK(pause_vcpus().context("snapshot"));
    auto stats = write_snapshot(dir, msrs);
    const bool stays_paused = was_paused || (stop && stats.ok());
    if (!stays_paused) resume_vcpus();
    if (!stats.ok()) return stats.error().context(fmt::format("snapshot {}", dir));
    stats->pause_ms = ms_since(t0);
    stats->stopped = stop;
    // Flushed with the guest running again: the pages are already copied.
    FORKVM_CHECK(snapshot::sync_file(dir + "/" + kMemoryFile));
    log(LogLevel::info, "snapshot {}: paused {:.1f} ms, {} of {} MiB of memory written", dir, stats->pause_ms,
        stats->memory_data_bytes >> 20, stats->memory_file_bytes >> 20);
    return stats;
  }

  // The vCPUs are parked. Order: devices first, because blk's drain may
  // raise an interrupt that the irqchip and LAPIC state must then include;
  // then the VM's irqchips, PIT and clock; then each vCPU; memory last.
  Result<SnapshotStats> write_snapshot(const std::string& dir, std::span<const uint32_t> msrs) {
    snapshot::StateFileWriter file;
    FORKVM_CHECK(save_sections(file, msrs));
    // Written beside and renamed over: a VM restored from an earlier
    // snapshot here maps the old file, which must not be truncated under it.
    const std::string memory_path = dir + "/" + kMemoryFile;
    const auto mem = FORKVM_TRY(snapshot::write_memory_file(memory, memory_path + ".tmp"));
    if (::rename((memory_path + ".tmp").c_str(), memory_path.c_str()) != 0) {
      return errno_error(fmt::format("rename {}.tmp", memory_path));
    }
    {
      StateWriter w;
      w.str(kMemoryFile);
      w.u64(memory.size());
      file.add(snapshot::kMemory, 0, w.take());
    }
    {
      StateWriter w;
      snapshot::encode_machine_config(config, w);
      file.add(snapshot::kMachine, 0, w.take());
    }
    const std::string state_path = dir + "/" + kStateFile;
    FORKVM_CHECK(file.write(state_path));
    SnapshotStats stats;
    stats.dir = dir;
    struct stat st {};
    if (::stat(state_path.c_str(), &st) == 0) stats.state_bytes = static_cast<uint64_t>(st.st_size);
    stats.memory_file_bytes = mem.size;
    stats.memory_data_bytes = mem.data_bytes;
    return stats;
  }

  // Device, VM and vCPU sections (everything but memory and configuration).
  Status save_sections(snapshot::StateFileWriter& file, std::span<const uint32_t> msrs) {
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

  // ---- live fork (fork-and-snapshot.md 5.2, without the zygote) ----

  std::vector<pid_t> fork_children;  // for reaping; loop thread only

  void reap_children() {
    std::erase_if(fork_children, [](pid_t p) { return ::waitpid(p, nullptr, WNOHANG) == p; });
  }

  Result<ForkStats> control_fork(uint32_t count, const std::string& prefix) override {
    reap_children();
    if (count == 0 || count > kMaxForks) return make_error("fork: count must be 1..{}", kMaxForks);
    for (const auto& d : config.disks) {
      // Parent and children would write one image: needs per-child
      // copy-on-write layers (devices/storage/) first.
      if (!d.read_only)
        return make_error("fork: disk {} is writable; only read-only disks can be shared", d.path);
    }
    const auto msrs = FORKVM_TRY(kvm.msr_index_list());
    std::vector<MachineConfig> configs;
    ForkStats stats;
    for (uint32_t i = 1; i <= count; ++i) {
      MachineConfig c = config;
      c.console = fmt::format("{}-{}.console", prefix, i);
      if (c.vsock) c.vsock = VsockConfig{fmt::format("{}-{}.vsock", prefix, i), config.vsock->guest_cid + i};
      if (c.net) c.net = NetConfig{config.net->slot + i};
      configs.push_back(c);
      stats.children.push_back({0, fmt::format("{}-{}.ctl", prefix, i), c.console});
    }
    const auto t0 = std::chrono::steady_clock::now();
    const bool was_paused = user_paused.load();
    if (!was_paused) FORKVM_CHECK(pause_vcpus().context("fork"));
    snapshot::StateFileWriter file;
    auto saved = save_sections(file, msrs);
    const std::vector<uint8_t> state = saved.ok() ? file.encode() : std::vector<uint8_t>{};
    Status forked;
    if (saved.ok()) {
      for (uint32_t i = 0; i < count; ++i) {
        const pid_t pid = ::fork();
        if (pid < 0) {
          forked = errno_error(fmt::format("fork child {}", i + 1));
          break;
        }
        if (pid == 0) ::_exit(run_forked_child(state, configs[i], stats.children[i].control));
        stats.children[i].pid = pid;
        fork_children.push_back(pid);
      }
    }
    if (!was_paused) resume_vcpus();
    stats.pause_ms = ms_since(t0);
    if (!saved.ok()) return saved.error().context("fork");
    if (!forked.ok()) return forked.error();
    log(LogLevel::info, "fork: {} children, parent paused {:.2f} ms", count, stats.pause_ms);
    return stats;
  }

  // In the child, on the only thread left (the parent's event loop thread,
  // inside a control request). Nothing of the parent's machine may run
  // here: its vCPU threads do not exist, its KVM fds answer EIO and its
  // destructors would join threads that are gone, so it is left alone and
  // its fds closed. The child builds a new KVM VM over the same guest RAM
  // (now this process's copy-on-write view of it), loads the state the
  // parent saved just before fork(), and runs until stopped.
  int run_forked_child(const std::vector<uint8_t>& state, const MachineConfig& child_config,
                       const std::string& control_path) {
    // The parent's handlers would act on its machine.
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::close_range(3, ~0U, 0);
    auto run = [&]() -> Result<int> {
      const auto file = FORKVM_TRY(snapshot::StateFile::parse(state, "fork state"));
      auto child_kvm = FORKVM_TRY(Kvm::open());
      auto child_vm = FORKVM_TRY(Vm::create(child_kvm));
      auto impl = std::make_unique<Impl>(child_config, std::move(child_kvm), std::move(child_vm),
                                         memory.adopt_after_fork());
      impl->restored = true;
      FORKVM_CHECK(impl->build());
      FORKVM_CHECK(impl->load_snapshot(file));
      std::unique_ptr<Machine> child(new Machine(std::move(impl)));
      FORKVM_CHECK(child->listen_control(control_path));
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

  // Into a freshly built machine whose vCPUs have not run. Order: the VM's
  // irqchips and clock, then the vCPUs (LAPICs), then the devices; only
  // then may anything raise an interrupt (after_restore), or SET_LAPIC
  // would overwrite it.
  Status load_snapshot(const snapshot::StateFile& file) {
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
        return make_error("snapshot has virtio device {}, the restored machine only {}", s.instance,
                          transports.size());
      }
    }
    for (size_t i = 0; i < transports.size(); ++i) {
      const auto* s = FORKVM_TRY(file.require(snapshot::kVirtio, static_cast<uint32_t>(i), "virtio device"));
      StateReader r(s->payload, fmt::format("virtio device {}", i));
      FORKVM_CHECK(transports[i]->load_state(r));
    }
    for (auto& t : transports) t->after_restore();
    return {};
  }

  void on_vcpu_exit(const VcpuExit& e) {
    switch (e.kind) {
      case VcpuExitKind::poweroff: finish({ExitKind::poweroff, e.detail}); break;
      case VcpuExitKind::reboot: finish({ExitKind::reboot, e.detail}); break;
      case VcpuExitKind::crash: finish({ExitKind::panic, e.detail}); break;
      case VcpuExitKind::triple_fault: finish({ExitKind::triple_fault, e.detail}); break;
      default: finish({ExitKind::internal_error, fmt::format("vCPU {}: {}", e.vcpu_index, e.detail)}); break;
    }
  }
};

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& config) {
  FORKVM_CHECK(validate(config));
  auto kvm = FORKVM_TRY(Kvm::open());
  auto vm = FORKVM_TRY(Vm::create(kvm));
  auto memory = FORKVM_TRY(GuestMemory::create_anonymous(config.mem_mib << 20));
  auto impl = std::make_unique<Impl>(config, std::move(kvm), std::move(vm), std::move(memory));
  FORKVM_CHECK(impl->build());
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Result<std::unique_ptr<Machine>> Machine::restore(const MachineConfig& given, const std::string& dir) {
  const auto file = FORKVM_TRY(snapshot::StateFile::read(dir + "/" + kStateFile));
  const auto* msec = FORKVM_TRY(file.require(snapshot::kMachine, 0, "machine"));
  StateReader mr(msec->payload, "the machine");
  const MachineConfig recorded = FORKVM_TRY(snapshot::decode_machine_config(mr));
  const MachineConfig config = FORKVM_TRY(snapshot::merge_restore_config(recorded, given));

  const auto* memsec = FORKVM_TRY(file.require(snapshot::kMemory, 0, "memory"));
  StateReader memr(memsec->payload, "the memory section");
  const std::string name = FORKVM_TRY(memr.str(255));
  const uint64_t size = FORKVM_TRY(memr.u64());
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return make_error("snapshot {}: memory file name '{}' is not a plain file name", dir, name);
  }
  if (size != config.mem_mib << 20) {
    return make_error("snapshot {}: memory of {} bytes does not match the recorded {} MiB", dir, size,
                      config.mem_mib);
  }
  const std::string memory_path = dir + "/" + name;
  UniqueFd mfd(::open(memory_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!mfd.valid()) return errno_error(fmt::format("open memory file {}", memory_path));
  struct stat st {};
  if (::fstat(mfd.get(), &st) != 0) return errno_error(fmt::format("stat {}", memory_path));
  if (static_cast<uint64_t>(st.st_size) != size) {
    // Shorter would SIGBUS the VMM when the guest touches the missing tail.
    return make_error("memory file {} is {} bytes, the snapshot needs {}", memory_path, st.st_size, size);
  }

  auto kvm = FORKVM_TRY(Kvm::open());
  auto vm = FORKVM_TRY(Vm::create(kvm));
  auto memory = FORKVM_TRY(GuestMemory::map_file_private(mfd.get(), size));
  auto impl = std::make_unique<Impl>(config, std::move(kvm), std::move(vm), std::move(memory));
  impl->restored = true;
  FORKVM_CHECK(impl->build());
  FORKVM_CHECK(impl->load_snapshot(file).context(fmt::format("restore {}", dir)));
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
}

Result<SnapshotStats> Machine::save_snapshot(const std::string& dir, bool stop) {
  Impl& m = *impl_;
  Result<SnapshotStats> r = make_error("snapshot: not run");
  if (!m.loop_running.load() || std::this_thread::get_id() == m.loop_thread) {
    r = m.control_snapshot(dir, stop);
  } else {
    // Devices belong to the event loop thread: save them there.
    auto done = std::make_shared<std::promise<Result<SnapshotStats>>>();
    auto result = done->get_future();
    m.loop->post([&m, dir, stop, done] { done->set_value(m.control_snapshot(dir, stop)); });
    if (result.wait_for(std::chrono::seconds(300)) != std::future_status::ready) {
      return make_error("snapshot {}: the event loop did not get to it within 300 s", dir);
    }
    try {
      r = result.get();
    } catch (const std::future_error&) {  // the loop ended before running it
      return make_error("snapshot {}: the machine stopped first", dir);
    }
  }
  if (r.ok() && stop) request_stop();
  return r;
}

Result<ForkStats> Machine::fork(uint32_t count, const std::string& prefix) {
  return impl_->control_fork(count, prefix);
}

Status Machine::pause() { return impl_->control_pause(); }
Status Machine::resume() { return impl_->control_resume(); }

Status Machine::listen_control(const std::string& path) {
  impl_->control = FORKVM_TRY(ControlServer::create(*impl_->loop, path, *impl_));
  return {};
}

Machine::Machine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Machine::~Machine() {
  for (auto& t : impl_->threads) t->stop();
}

void Machine::request_stop() {
  uint64_t one = 1;
  (void)!::write(impl_->stop_fd.get(), &one, sizeof(one));
}

Result<MachineExit> Machine::run() {
  for (auto& t : impl_->threads) FORKVM_CHECK(t->start());
  log(LogLevel::debug, "machine: {} vCPU(s) running", impl_->threads.size());
  impl_->loop_thread = std::this_thread::get_id();
  impl_->loop_running = true;
  Status loop_status = impl_->loop->run();
  impl_->loop_running = false;
  for (auto& t : impl_->threads) t->stop();
  if (!loop_status) return loop_status.error().context("event loop");
  std::lock_guard lock(impl_->exit_mu);
  return impl_->exit.value_or(MachineExit{ExitKind::stopped, ""});
}

}  // namespace forkvm
