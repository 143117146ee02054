#include "vmm/machine.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/storage/layered_blk_backend.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/net.hpp"
#include "devices/virtio/rng.hpp"
#include "devices/virtio/vsock.hpp"
#include "vmm/log.hpp"
#include "vmm/machine_impl.hpp"
#include "vmm/x86/acpi.hpp"
#include "vmm/x86/boot.hpp"

namespace forkvm {
namespace {

// The command line every guest gets before the user's: the serial console,
// reboot through the i8042 (the reset line our VMM turns into an exit), and
// reboot at once on panic so the panic is reported instead of hanging.
constexpr const char* kBaseCmdline = "console=ttyS0 reboot=k panic=-1 i8042.noaux i8042.nomux i8042.dumbkbd";
// virtio-mmio devices use GSIs from here up; below are the legacy ISA lines.
constexpr uint32_t kFirstVirtioGsi = 5;
// GSI 9 is the ACPI SCI the FADT announces; the last pin (x86::acpi::kGedGsi) is the GED's.
constexpr uint32_t kAcpiSciGsi = 9;

uint32_t virtio_gsi(uint32_t index) {
  const uint32_t gsi = kFirstVirtioGsi + index;
  return gsi >= kAcpiSciGsi ? gsi + 1 : gsi;
}
constexpr uint32_t kMaxVcpus = 64;
// Room the kernel needs beyond its image and initrd to boot at all.
constexpr uint64_t kMinHeadroom = 32ULL << 20;

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

void Machine::Impl::finish(MachineExit e) {
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

Result<EventFdInterrupt*> Machine::Impl::new_irq(uint32_t gsi) {
  irqs.push_back(FORKVM_TRY(EventFdInterrupt::create(gsi)));
  FORKVM_CHECK(vm.register_irqfd(irqs.back().fd(), gsi));
  return &irqs.back();
}

Status Machine::Impl::add_legacy_devices() {
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
  ged_irq = FORKVM_TRY(new_irq(x86::acpi::kGedGsi));
  return {};
}

// Puts a virtio device in the next MMIO window and tells the guest about it
// on the command line (virtio_mmio.device=<size>@<base>:<irq>).
Status Machine::Impl::add_virtio(std::shared_ptr<virtio::Device> device, std::string& cmdline) {
  const auto index = static_cast<uint32_t>(transports.size());
  const uint64_t base = layout::kVirtioMmioBase + index * layout::kVirtioMmioStride;
  const uint32_t gsi = virtio_gsi(index);
  if (gsi >= x86::acpi::kGedGsi) return make_error("no interrupt line left for virtio device {}", index);
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

Status Machine::Impl::build() {
  FORKVM_CHECK(vm.set_memory(memory));
  if (!x86_ready) FORKVM_CHECK(vm.setup_x86());
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
    layered.emplace_back();
    if (d.chain) {
      std::shared_ptr<storage::LayeredDisk> disk = FORKVM_TRY(storage::LayeredDisk::open(d.path, d.read_only));
      layered.back() = disk;
      blk = FORKVM_TRY(virtio::Blk::create(std::make_unique<storage::LayeredBlkBackend>(std::move(disk)), id));
    } else {
      blk = FORKVM_TRY(virtio::Blk::create({d.path, d.read_only, id}));
    }
    blks.push_back(blk);
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

  // A prepared VM (vmm/prepared_vm.hpp) brings some or all of them.
  for (auto i = static_cast<uint32_t>(vcpus.size()); i < config.cpus; ++i)
    vcpus.push_back(FORKVM_TRY(Vcpu::create(vm, kvm, i)));
  x86::BootConfig boot{config.kernel, config.initrd, cmdline, config.cpus};
  // A restored machine gets its registers from the snapshot instead.
  if (!restored) FORKVM_CHECK(x86::configure_for_boot(kvm, vcpus, memory, boot));
  for (auto& v : vcpus) {
    threads.push_back(std::make_unique<VcpuThread>(v, pio, mmio, [this](const VcpuExit& e) { on_vcpu_exit(e); }));
  }
  return {};
}

void Machine::Impl::on_vcpu_exit(const VcpuExit& e) {
  switch (e.kind) {
    case VcpuExitKind::poweroff: finish({ExitKind::poweroff, e.detail}); break;
    case VcpuExitKind::reboot: finish({ExitKind::reboot, e.detail}); break;
    case VcpuExitKind::crash: finish({ExitKind::panic, e.detail}); break;
    case VcpuExitKind::triple_fault: finish({ExitKind::triple_fault, e.detail}); break;
    default: finish({ExitKind::internal_error, fmt::format("vCPU {}: {}", e.vcpu_index, e.detail)}); break;
  }
}

Result<std::unique_ptr<Machine>> Machine::create(const MachineConfig& config) {
  FORKVM_CHECK(validate(config));
  auto kvm = FORKVM_TRY(Kvm::open());
  auto vm = FORKVM_TRY(Vm::create(kvm));
  auto memory = FORKVM_TRY(GuestMemory::create_anonymous(config.mem_mib << 20));
  auto impl = std::make_unique<Impl>(config, std::move(kvm), std::move(vm), std::move(memory));
  FORKVM_CHECK(impl->build());
  return std::unique_ptr<Machine>(new Machine(std::move(impl)));
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
