// Machine::Impl, private to vmm/: machine.cpp puts a machine together and
// runs it; machine_snapshot.cpp saves, restores and live-forks it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "devices/acpi_pm.hpp"
#include "devices/i8042.hpp"
#include "devices/net/host_network.hpp"
#include "devices/serial.hpp"
#include "devices/storage/layered_disk.hpp"
#include "devices/virtio/blk.hpp"
#include "devices/virtio/mmio.hpp"
#include "snapshot/format.hpp"
#include "vmm/bus.hpp"
#include "vmm/control.hpp"
#include "vmm/elapsed.hpp"
#include "vmm/event_loop.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/interrupt.hpp"
#include "vmm/kvm.hpp"
#include "vmm/machine.hpp"
#include "vmm/unique_fd.hpp"
#include "vmm/vcpu.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/vm.hpp"

namespace forkvm {

namespace machine_detail {
inline constexpr const char* kStateFile = "state";
using forkvm::ms_since;
}  // namespace machine_detail

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
  // Per config.disks entry: the layered disk behind it, or null (a raw
  // image). Frozen by snapshots and forks, on the event loop thread.
  std::vector<std::shared_ptr<storage::LayeredDisk>> layered;
  std::vector<std::shared_ptr<virtio::Blk>> blks;  // per config.disks entry

  // Kept for snapshots; also on the PIO bus.
  std::shared_ptr<Serial> serial;
  std::shared_ptr<I8042> i8042;
  std::shared_ptr<AcpiPm> acpi_pm;
  EventFdInterrupt* ged_irq = nullptr;  // the ACPI GED's line: "re-read the VM generation ID"
  bool restored = false;  // built from a snapshot: no boot setup
  bool x86_ready = false;  // vm.setup_x86() done already (a PreparedVm)
  // The memory file this machine's RAM maps (restored machines only): a
  // later snapshot writes just the pages that differ from it.
  std::optional<std::string> memory_base;
  UniqueFd memory_base_fd;
  std::atomic<bool> user_paused{false};  // by pause() / {"op":"pause"}
  std::atomic<bool> loop_running{false};
  std::thread::id loop_thread;             // set before loop_running
  std::unique_ptr<ControlServer> control;  // after loop: destroyed before it

  std::mutex exit_mu;  // guards exit and panic_seen; a leaf lock
  std::optional<MachineExit> exit;
  bool panic_seen = false;

  // Processes fork()ed by this VMM (fork children, memory writers); loop thread only.
  std::vector<pid_t> fork_children;
  bool writing_snapshot = false;  // a background memory writer runs

  Impl(const MachineConfig& c, Kvm k, Vm v, GuestMemory m)
      : config(c), kvm(std::move(k)), vm(std::move(v)), memory(std::move(m)) {}

  // ---- machine.cpp: assembly and running ----
  void finish(MachineExit e);
  Result<EventFdInterrupt*> new_irq(uint32_t gsi);
  Status add_legacy_devices();
  Status add_virtio(std::shared_ptr<virtio::Device> device, std::string& cmdline);
  Status build();
  void on_vcpu_exit(const VcpuExit& e);

  // ---- machine_snapshot.cpp: snapshots, restore, live fork ----
  [[nodiscard]] bool threads_started() const;
  Status pause_vcpus();
  void resume_vcpus();
  ControlStatus control_status() override;
  Status control_pause() override;
  Status control_resume() override;
  void control_stop() override;
  void control_snapshot(const SnapshotRequest& request, SnapshotDone done) override;
  Result<ForkStats> control_fork(const ForkRequest& request) override;
  // ---- machine_disk.cpp ----
  Status control_grow_disk(const GrowDiskRequest& request) override;
  // Device, VM and vCPU sections (everything but memory and configuration).
  Status save_sections(snapshot::StateFileWriter& file, std::span<const uint32_t> msrs);
  // Freezes every writable layered disk; the frozen chains, by disk index.
  Result<std::vector<std::pair<size_t, storage::ChainDescriptor>>> freeze_disks();
  Status load_snapshot(const snapshot::StateFile& file);
  void reap_children();
  // Live fork: the process that forks the children, and the pipe it reports their pids on.
  struct Spawner {
    pid_t pid;
    UniqueFd pids;
  };
  Result<Spawner> fork_spawner(const std::vector<uint8_t>& state, const std::vector<MachineConfig>& configs,
                               const std::vector<std::pair<size_t, storage::ChainDescriptor>>& frozen,
                               const std::vector<ForkChildSpec>& specs);
  Status collect_children(Spawner spawner, ForkStats& stats);
  int run_forked_child(const std::vector<uint8_t>& state, const MachineConfig& child_config,
                       const std::vector<std::pair<size_t, storage::ChainDescriptor>>& frozen,
                       const ForkChildSpec& spec);
};

}  // namespace forkvm
