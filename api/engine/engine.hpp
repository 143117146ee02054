// VmEngine: everything the API does that touches a VM. The routes validate
// input, resolve ids within the caller's account (so an engine never sees a
// VM the caller does not own), call one method, record the outcome in the
// Store and write the response. The engine owns VMM processes, the guest
// agent connection, disk layers and snapshot files.
//
// Every method returns ApiResult, whose error carries the wire code, so an
// engine failure reaches the client unchanged: VM_NOT_RUNNING, FILE_NOT_FOUND,
// EXEC_TIMED_OUT (408), SERVICE_NOT_FOUND, ... Methods may block (boot, exec,
// await); the HTTP server runs them on worker threads. Implementations must
// be safe to call from several threads at once.
//
// `forkvm serve` uses LocalEngine (api/engine/local_engine.hpp); where it
// cannot run (no guest image), UnavailableEngine (api/serve/) answers every
// call with 501 NOT_IMPLEMENTED and the reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/models/api_error.hpp"
#include "api/models/requests.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

// Who asks, and as whom inside the guest.
struct CallContext {
  std::string account_id;
  std::string request_id;
  // X-Freestyle-Vm-Linux-User-Id (a user *name*); exec/files/systemd/
  // terminals run as this user. Unknown user: USER_NOT_FOUND.
  std::optional<std::string> linux_user;
};

// Where a running VM's VMM can be reached; stored on the VM's row.
struct VmRuntime {
  std::optional<int64_t> vmm_pid;
  std::optional<std::string> control_socket;
  std::optional<std::string> agent_socket;
};

struct CreateVmInput {
  std::string vm_id;  // allocated by the routes
  CreateVmRequest request;
  // Resolved and ownership-checked by the routes when the request names one.
  std::optional<SnapshotRecord> base_snapshot;
};

struct CreatedVm {
  std::string vm_id;
  std::string instance_id;
  std::string state;  // VMState: "running", or "starting" without waitForReadySignal
  std::vector<std::string> domains;
  std::optional<std::string> console_url;
  std::optional<std::string> snapshot_id;  // the snapshot a spec/template produced
  std::optional<std::string> build_id;
  VmRuntime runtime;
};

struct StartedVm {
  std::string instance_id;
  std::vector<std::string> domains;
  std::optional<std::string> console_url;
  VmRuntime runtime;
};

struct StoppedVm {
  std::string instance_id;
};

struct SuspendedVm {
  std::string instance_id;
  std::string snapshot_layer_id;  // "sl-" + 16
};

struct VmExit {
  std::string exit_status;  // e.g. "0", "signal 9", "reset"
};

struct OptimizedVm {
  std::string message;
};

struct ResizedVm {
  bool resumed = false;  // a suspended VM was resumed to grow its disk online
};

struct SnapshotInput {
  std::string snapshot_id;  // allocated by the routes
  SnapshotVmRequest request;
};

// The engine fills the record's engine-owned fields (storage_json, sizes,
// source instance); the routes store it.
struct CreatedSnapshot {
  SnapshotRecord record;
};

struct ForkInput {
  std::vector<std::string> child_ids;  // count = child_ids.size(), 1..kMaxForkCount
};

struct ForkedVms {
  std::vector<CreatedVm> children;
};

struct ExecResult {
  std::optional<std::string> stdout_text;
  std::optional<std::string> stderr_text;
  std::optional<int32_t> status_code;
};

struct DirEntry {
  std::string name;
  bool is_directory = false;
};

// A file's bytes, or a directory's entries.
struct FileRead {
  bool is_directory = false;
  std::string bytes;
  std::vector<DirEntry> entries;
};

struct FileEvent {
  std::string event_type;  // create | modify | delete | rename
  std::string filename;
};

// Sampled inside the guest: untrusted, not for billing.
struct StatsSample {
  int64_t timestamp_ms = 0;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_available_bytes = 0;
  double cpu_percent = 0;  // of all vCPUs, 0..100*vcpus
};

struct ServiceInfo {
  std::string name;
};

struct ServiceCreated {
  std::string service_name;
  std::string message;
};

struct ServiceStatus {
  std::string name, active_state, sub_state, load_state, description;
};

struct JournalEntry {
  std::string message;
  std::string timestamp;
  std::optional<std::string> priority;
  std::optional<std::string> unit;
};

enum class ServiceAction { start, stop, restart };

struct ServiceActionResult {
  std::string service_id;
  bool success = false;
  std::string message;
};

struct TerminalInfo {
  std::string name;
  std::string status;
  std::optional<std::string> created;
};

struct TerminalLine {
  std::string line;
  std::optional<std::string> timestamp;
};

// A live feed (watch-files, stats). The route polls next() and checks for
// client disconnect between polls; cancel() stops the source (the in-guest
// watcher) and makes a blocked next() return promptly.
template <typename T>
class EventStream {
 public:
  virtual ~EventStream() = default;
  // The next item within `max_wait`; nullopt if none arrived yet. An error
  // ends the stream (the VM stopped, the agent went away).
  virtual ApiResult<std::optional<T>> next(std::chrono::milliseconds max_wait) = 0;
  virtual void cancel() = 0;
};

// A VM found running again when the server restarted.
struct AdoptedVm {
  std::string instance_id;
  VmRuntime runtime;
};

// What the idle monitor (api/serve/idle_monitor.hpp) sees of a running VM.
struct VmActivity {
  std::optional<uint64_t> net_bytes;  // rx + tx bytes of its host-side network interface
  int64_t last_api_ms = 0;            // the last API call into the VM (epoch ms)
  bool busy = false;                  // a call into the VM is running now
};

// A VM whose VMM ended without being asked to: `state` is "stopped" (the
// guest powered off) or "lost", and `reason` says why, for the VM's row.
using VmExitListener =
    std::function<void(const std::string& vm_id, const std::string& state, const std::string& reason)>;

class VmEngine {
 public:
  virtual ~VmEngine() = default;

  // Lifecycle. `vm` is the caller's own row, already loaded from the Store.
  virtual ApiResult<CreatedVm> create_vm(const CallContext& ctx, const CreateVmInput& input) = 0;
  virtual ApiResult<StartedVm> start_vm(const CallContext& ctx, const VmRecord& vm,
                                        const StartVmRequest& req) = 0;
  virtual ApiResult<StoppedVm> stop_vm(const CallContext& ctx, const VmRecord& vm) = 0;
  virtual ApiStatus kill_vm(const CallContext& ctx, const VmRecord& vm) = 0;
  virtual ApiResult<SuspendedVm> suspend_vm(const CallContext& ctx, const VmRecord& vm) = 0;
  // Blocks until the VM stops.
  virtual ApiResult<VmExit> await_exit(const CallContext& ctx, const VmRecord& vm) = 0;
  // Stops the VM if it runs and removes its files; the routes mark the row deleted.
  virtual ApiStatus delete_vm(const CallContext& ctx, const VmRecord& vm) = 0;
  virtual ApiResult<ResizedVm> resize_vm(const CallContext& ctx, const VmRecord& vm,
                                         const ResizeVmRequest& req) = 0;
  virtual ApiResult<OptimizedVm> optimize_vm(const CallContext& ctx, const VmRecord& vm) = 0;

  // After a server restart: takes back the VM whose row says it runs, if its
  // VMM still runs. The error's message says why not; the row becomes lost.
  virtual ApiResult<AdoptedVm> adopt_vm(const VmRecord& vm) {
    return api_error(ErrorCode::NotImplemented, "VM " + vm.id + ": this engine cannot find running VMs again");
  }
  // A running VM's activity; nullopt when it does not run here.
  virtual std::optional<VmActivity> activity(const VmRecord& /*vm*/) { return std::nullopt; }
  // Called from the engine's own threads; set once, before serving.
  virtual void set_exit_listener(VmExitListener /*listener*/) {}

  // Snapshots and forks.
  virtual ApiResult<CreatedSnapshot> snapshot_vm(const CallContext& ctx, const VmRecord& vm,
                                                 const SnapshotInput& input) = 0;
  virtual ApiResult<ForkedVms> fork_vm(const CallContext& ctx, const VmRecord& vm,
                                       const ForkInput& input) = 0;

  // Releases a snapshot's disk layers and removes its files; VMs made from
  // it keep running on their own holds. The routes mark the row deleted.
  virtual ApiStatus delete_snapshot(const CallContext& /*ctx*/, const SnapshotRecord& snapshot) {
    return api_error(ErrorCode::NotImplemented, "snapshot " + snapshot.id + ": this engine keeps no snapshot files");
  }

  // Guest operations (through the in-guest agent).
  // Enforces req.timeout_ms: past it, EXEC_TIMED_OUT (408) and the command is killed.
  virtual ApiResult<ExecResult> exec(const CallContext& ctx, const VmRecord& vm, const ExecRequest& req) = 0;
  virtual ApiResult<FileRead> read_file(const CallContext& ctx, const VmRecord& vm,
                                        const std::string& path) = 0;
  virtual ApiStatus write_file(const CallContext& ctx, const VmRecord& vm, const std::string& path,
                               const std::string& bytes) = 0;
  virtual ApiResult<std::unique_ptr<EventStream<FileEvent>>> watch_files(const CallContext& ctx,
                                                                         const VmRecord& vm) = 0;
  virtual ApiResult<std::unique_ptr<EventStream<StatsSample>>> stream_stats(
      const CallContext& ctx, const VmRecord& vm, std::chrono::milliseconds interval) = 0;

  // systemd inside the guest.
  virtual ApiResult<std::vector<ServiceInfo>> list_services(const CallContext& ctx, const VmRecord& vm) = 0;
  virtual ApiResult<ServiceCreated> create_service(const CallContext& ctx, const VmRecord& vm,
                                                   const SystemdUnit& unit) = 0;
  virtual ApiResult<std::string> delete_service(const CallContext& ctx, const VmRecord& vm,
                                                const std::string& service_id) = 0;
  virtual ApiResult<ServiceStatus> service_status(const CallContext& ctx, const VmRecord& vm,
                                                  const std::string& service_id) = 0;
  virtual ApiResult<std::vector<JournalEntry>> service_logs(const CallContext& ctx, const VmRecord& vm,
                                                            const std::string& service_id,
                                                            std::optional<int64_t> lines,
                                                            const std::optional<std::string>& since) = 0;
  virtual ApiResult<std::vector<ServiceActionResult>> service_action(
      const CallContext& ctx, const VmRecord& vm, ServiceAction action,
      const std::vector<std::string>& service_ids) = 0;

  // Terminal sessions inside the guest.
  virtual ApiResult<std::vector<TerminalInfo>> list_terminals(const CallContext& ctx, const VmRecord& vm) = 0;
  virtual ApiResult<std::vector<TerminalLine>> terminal_logs(const CallContext& ctx, const VmRecord& vm,
                                                             const std::string& terminal_id) = 0;
  virtual ApiResult<std::string> terminal_output(const CallContext& ctx, const VmRecord& vm,
                                                 const std::string& terminal_id) = 0;
};

}  // namespace forkvm::api
