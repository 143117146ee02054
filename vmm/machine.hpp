// A Machine is one VM: guest memory, the KVM VM and its vCPU threads, the
// device buses and the event loop, put together from a MachineConfig. It is
// the only place in vmm/ that knows about devices/.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/control.hpp"
#include "vmm/prepared_vm.hpp"
#include "vmm/result.hpp"

namespace forkvm {

struct DiskConfig {
  std::string path;
  bool read_only = false;
  // path is a layered copy-on-write chain (devices/storage/chain_descriptor.hpp),
  // not a raw image.
  bool chain = false;
};

// virtio-vsock: host programs connect to uds_path ("CONNECT <port>\n");
// guest connections to host port P go to the Unix socket uds_path_P.
struct VsockConfig {
  std::string uds_path;
  uint64_t guest_cid = 3;
};

// virtio-net on a TAP in netns fkvm-<slot> (devices/net/host_network.hpp).
struct NetConfig {
  uint32_t slot = 0;
};

struct MachineConfig {
  std::string kernel;                 // vmlinux (ELF) or bzImage
  std::optional<std::string> initrd;  // initramfs image
  std::string cmdline;                // appended to the VMM's own arguments
  uint64_t mem_mib = 256;
  uint32_t cpus = 1;
  std::vector<DiskConfig> disks;  // /dev/vda, /dev/vdb, ... in order
  std::string console = "-";      // "-" stdout, "" discard, otherwise a file path
  bool rng = true;
  std::optional<VsockConfig> vsock;
  std::optional<NetConfig> net;
};

// Why the guest stopped running.
enum class ExitKind {
  poweroff,        // the guest powered off (ACPI sleep state S5)
  reboot,          // the guest asked for a reset (i8042 or triple fault after reboot)
  panic,           // the guest kernel panicked
  triple_fault,    // KVM_EXIT_SHUTDOWN without a reboot request
  internal_error,  // KVM could not run the guest (emulation failure, failed entry)
  stopped,         // the host stopped the VM (request_stop, Ctrl-C)
};

struct MachineExit {
  ExitKind kind = ExitKind::stopped;
  std::string detail;  // one sentence for the user
};

[[nodiscard]] const char* exit_kind_name(ExitKind kind);
// The process exit status `forkvm run` uses for each ExitKind (see README).
[[nodiscard]] int exit_status(ExitKind kind);

// Checks what can be checked without creating a VM: files readable, memory
// large enough for the kernel and initrd, vCPU count within limits.
[[nodiscard]] Status validate(const MachineConfig& config);

class Machine {
 public:
  static Result<std::unique_ptr<Machine>> create(const MachineConfig& config);
  Machine(const Machine&) = delete;
  Machine& operator=(const Machine&) = delete;
  ~Machine();

  // Runs the guest on the calling thread (which becomes the event thread)
  // and returns when it stops.
  Result<MachineExit> run();

  // Ends run() with ExitKind::stopped. Async-signal-safe.
  void request_stop();

  // Snapshots (snapshot/format.hpp for the state file). A snapshot
  // directory holds `state` and `memory` (sparse guest RAM); disks are
  // recorded by path, not copied.
  //
  // Builds a paused-until-run() machine from the snapshot in `dir`.
  // Memory, vCPU, VM and device state come from the snapshot; the console,
  // vsock socket and CID, net slot and (when given) disk paths come from
  // `config` (snapshot/machine_config.hpp). The guest continues where it
  // was saved once run() is called; its vsock connections are reset.
  // With `prepared`, its VM and vCPUs are used instead of new ones (a
  // standby VMM made them before the snapshot was known); when it has more
  // vCPUs than the snapshot, it is dropped (KVM cannot remove a vCPU).
  static Result<std::unique_ptr<Machine>> restore(const MachineConfig& config, const std::string& dir,
                                                  std::optional<PreparedVm> prepared = std::nullopt);
  // Pauses the vCPUs, saves state and freezes writable layered disks into
  // `dir` (created if missing; an earlier snapshot there is replaced
  // atomically, without disturbing VMs restored from it), resumes them and
  // returns once memory is written by a fork()ed copy. With `stop` memory
  // is written while paused and run() then returns ExitKind::stopped.
  // Any thread; while run() runs the work is done on the event loop.
  Result<SnapshotStats> save_snapshot(const std::string& dir, bool stop = false);
  // Live fork: pauses the vCPUs, saves state to memory, freezes writable
  // layered disks and fork()s child VMMs that share guest RAM copy-on-write
  // and continue from that instant; the parent resumes. Children not
  // spelled out in the request use PREFIX-i.{console,ctl,vsock,disk<d>},
  // vsock CID parent+i, net slot parent+i (vmm/control.hpp). Writable raw
  // disks cannot fork. Call on the event loop thread (the control socket's
  // "fork" op).
  Result<ForkStats> fork(const ForkRequest& request);
  // Pauses / resumes every vCPU (devices keep running). Any thread.
  Status pause();
  Status resume();
  // Serves the control socket (vmm/control.hpp) at `path` while run()
  // runs. Call before run().
  Status listen_control(const std::string& path);

  struct Impl;

 private:
  explicit Machine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace forkvm
