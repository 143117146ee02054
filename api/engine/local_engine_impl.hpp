// LocalEngine's class, shared by its two source files: lifecycle
// (local_engine.cpp) and calls into the guest (guest_calls.cpp).
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "api/engine/image.hpp"
#include "api/engine/live_vm.hpp"
#include "api/engine/local_engine.hpp"
#include "api/engine/vmm_pool.hpp"
#include "devices/storage/chain_descriptor.hpp"

namespace forkvm::engine {

using namespace forkvm::api;  // NOLINT(google-build-using-namespace): the engine speaks the API's types

class LocalEngine final : public VmEngine {
 public:
  LocalEngine(LocalEngineOptions o, GuestImage image) : o_(std::move(o)), image_(std::move(image)) {}
  ~LocalEngine() override;

  ApiResult<CreatedVm> create_vm(const CallContext& ctx, const CreateVmInput& input) override;
  ApiResult<StartedVm> start_vm(const CallContext& ctx, const VmRecord& vm, const StartVmRequest& req) override;
  ApiResult<StoppedVm> stop_vm(const CallContext& ctx, const VmRecord& vm) override;
  ApiStatus kill_vm(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<SuspendedVm> suspend_vm(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<VmExit> await_exit(const CallContext& ctx, const VmRecord& vm) override;
  ApiStatus delete_vm(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<ResizedVm> resize_vm(const CallContext& ctx, const VmRecord& vm,
                                 const ResizeVmRequest& req) override;
  ApiResult<OptimizedVm> optimize_vm(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<CreatedSnapshot> snapshot_vm(const CallContext& ctx, const VmRecord& vm,
                                         const SnapshotInput& input) override;
  ApiResult<ForkedVms> fork_vm(const CallContext& ctx, const VmRecord& vm, const ForkInput& input) override;

  ApiResult<ExecResult> exec(const CallContext& ctx, const VmRecord& vm, const ExecRequest& req) override;
  ApiResult<FileRead> read_file(const CallContext& ctx, const VmRecord& vm, const std::string& path) override;
  ApiStatus write_file(const CallContext& ctx, const VmRecord& vm, const std::string& path,
                       const std::string& bytes) override;
  ApiResult<std::unique_ptr<EventStream<FileEvent>>> watch_files(const CallContext& ctx,
                                                                 const VmRecord& vm) override;
  ApiResult<std::unique_ptr<EventStream<StatsSample>>> stream_stats(const CallContext& ctx, const VmRecord& vm,
                                                                    std::chrono::milliseconds interval) override;
  ApiResult<std::vector<ServiceInfo>> list_services(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<ServiceCreated> create_service(const CallContext& ctx, const VmRecord& vm,
                                           const SystemdUnit& unit) override;
  ApiResult<std::string> delete_service(const CallContext& ctx, const VmRecord& vm,
                                        const std::string& service_id) override;
  ApiResult<ServiceStatus> service_status(const CallContext& ctx, const VmRecord& vm,
                                          const std::string& service_id) override;
  ApiResult<std::vector<JournalEntry>> service_logs(const CallContext& ctx, const VmRecord& vm,
                                                    const std::string& service_id, std::optional<int64_t> lines,
                                                    const std::optional<std::string>& since) override;
  ApiResult<std::vector<ServiceActionResult>> service_action(const CallContext& ctx, const VmRecord& vm,
                                                             ServiceAction action,
                                                             const std::vector<std::string>& service_ids) override;
  ApiResult<std::vector<TerminalInfo>> list_terminals(const CallContext& ctx, const VmRecord& vm) override;
  ApiResult<std::vector<TerminalLine>> terminal_logs(const CallContext& ctx, const VmRecord& vm,
                                                     const std::string& terminal_id) override;
  ApiResult<std::string> terminal_output(const CallContext& ctx, const VmRecord& vm,
                                         const std::string& terminal_id) override;

  // snapshot_delete.cpp
  ApiStatus delete_snapshot(const CallContext& ctx, const SnapshotRecord& snapshot) override;

  // vm_activity.cpp
  std::optional<VmActivity> activity(const VmRecord& vm) override;

  // vm_recovery.cpp
  ApiResult<AdoptedVm> adopt_vm(const VmRecord& vm) override;
  void set_exit_listener(VmExitListener listener) override;
  // At start, before anything launches: the VMMs a previous server left
  // running (their runtime files name them), tracked again with their
  // network slots reserved. The rows decide later which ones are kept.
  void find_running_vmms();

 private:
  // Resources a VM boots with: the create request's, changed by resize.
  struct Resources {
    uint64_t mem_mib = 0;
    uint32_t vcpus = 0;
    uint64_t rootfs_bytes = 0;  // 0: the image's size
  };

  [[nodiscard]] std::string vm_dir(const std::string& id) const { return o_.data_dir + "/vms/" + id; }
  // Disk layers of every VM, shared so that forks and snapshots can share them.
  [[nodiscard]] std::string layers_root() const { return o_.data_dir + "/layers"; }
  // Removes the disk layers nobody holds any more (a failure is logged: they stay for the next one).
  void collect_unused_layers();
  // The VM's directory and sockets, and its disk layers' holds.
  void remove_vm_files(const std::string& id);
  ApiResult<Resources> load_resources(const std::string& id) const;
  ApiStatus save_resources(const std::string& id, const Resources& r) const;
  // Boots the VM's disk and waits until its agent answers.
  ApiResult<std::shared_ptr<LiveVm>> boot(const std::string& id, const Resources& r);
  // Starts `forkvm <mode...>` for the VM with its disk, sockets and network
  // slot, and waits until its agent answers. A restore whose VMM dies before
  // that is tried once more (see launch()).
  ApiResult<std::shared_ptr<LiveVm>> launch(const std::string& id, const std::vector<std::string>& mode,
                                            bool grow_fs = false);
  // The VMM process of one launch attempt, started (a claimed standby or a new process).
  ApiResult<std::shared_ptr<LiveVm>> start_vmm(const std::string& id, const std::vector<std::string>& mode);
  // A VM's sockets and a network slot of its own, before its VMM starts.
  ApiResult<std::shared_ptr<LiveVm>> prepare(const std::string& id);
  void release_slot(uint32_t slot);
  // Waits until the agent of the VM's (started) VMM answers, then counts it
  // as running; on failure stops the VMM and frees the slot.
  ApiResult<std::shared_ptr<LiveVm>> await_ready(const std::shared_ptr<LiveVm>& vm, bool grow_fs = false);
  [[nodiscard]] static uint64_t vsock_cid(const LiveVm& vm) { return 3 + vm.net_slot; }
  [[nodiscard]] static std::string vmm_log(const LiveVm& vm) { return vm.dir + "/vmm.log"; }

  // snapshots.cpp
  struct SavedVm {
    std::string dir;
    storage::ChainDescriptor disk;  // frozen at the instant the memory was saved
  };
  // Saves memory and state to `dir` through the VMM, which freezes the
  // disk there (dir/chain) in the same pause; with `stop` the VMM then
  // exits, otherwise the VM runs on.
  ApiResult<SavedVm> save(LiveVm& vm, const std::string& dir, bool stop);
  // Tells a forked or restored guest to reseed its RNG, step its clock and
  // take a new machine-id (agent "identity").
  void renew_identity(LiveVm& vm, bool new_machine_id);
  ApiResult<std::shared_ptr<LiveVm>> restore(const std::string& id, const std::string& snapshot_dir);
  // A new VM `id` from a snapshot directory (state, memory, chain).
  ApiResult<std::shared_ptr<LiveVm>> create_from_snapshot(const std::string& id, const std::string& snapshot_dir,
                                                          const Resources& r);
  ApiResult<std::shared_ptr<LiveVm>> resume(const VmRecord& vm);
  // disk_resize.cpp: the root disk to `bytes` (online when the VM runs; a
  // suspended one is resumed for it, and then says so).
  ApiResult<ResizedVm> grow_root_disk(const VmRecord& vm, uint64_t bytes);
  // The default image booted once, to the end of its boot, and saved: what a
  // plain create restores. Made by the first create that needs it.
  ApiResult<std::string> golden(const Resources& r);
  void wait_for_boot_end(LiveVm& vm);
  std::mutex golden_mu_;

 public:
  // Makes the golden snapshot in the background, so that the first create
  // does not pay for a boot. The destructor stops and joins it.
  void start_warm_up();
  // Keeps LocalEngineOptions::prepared_net_slots network slots set up in the
  // background (after removing what an earlier server left prepared). The
  // destructor stops it and takes the unused ones down.
  void start_net_preparer();
  // Keeps LocalEngineOptions::standby_vmms standby VMMs for restores.
  void start_vmm_pool();

 private:
  std::unique_ptr<VmmPool> pool_;
  std::thread warm_;
  std::atomic<bool> stopping_{false};
  // The running VM, or VM_NOT_RUNNING saying why not.
  ApiResult<std::shared_ptr<LiveVm>> running(const VmRecord& vm);
  std::shared_ptr<LiveVm> find(const std::string& id);
  void forget(const std::string& id);
  // Stops the VMM: a sync in the guest when `graceful`, SIGTERM, then SIGKILL.
  void halt(LiveVm& vm, bool graceful);
  ApiStatus apply_create_fields(LiveVm& vm, const CreateVmRequest& req);
  static ApiResult<ServiceCreated> create_service_on(LiveVm& vm, const SystemdUnit& unit);
  // Where watch-files looks: the VM's workdir, else the caller's home.
  [[nodiscard]] std::string watch_root(const CallContext& ctx, const VmRecord& vm) const;

  // vm_recovery.cpp: <vm dir>/runtime names the VMM of a running VM (pid,
  // network slot, instance id), so a restarted server finds it again.
  void write_runtime(const LiveVm& vm) const;
  // One thread per VMM: a VMM that ends while the engine still counts it as
  // running (no stop, snapshot or delete took it down) is reported.
  void watch_exit(const std::shared_ptr<LiveVm>& vm);
  void on_vmm_exit(const std::shared_ptr<LiveVm>& vm);
  struct WatchToken {
    std::mutex mu;
    LocalEngine* engine = nullptr;  // null once the engine is gone
  };
  static std::shared_ptr<WatchToken> make_token(LocalEngine* engine) {
    auto t = std::make_shared<WatchToken>();
    t->engine = engine;
    return t;
  }
  std::shared_ptr<WatchToken> watch_token_ = make_token(this);
  std::mutex listener_mu_;
  VmExitListener listener_;

  LocalEngineOptions o_;
  GuestImage image_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<LiveVm>> live_;
  std::set<uint32_t> used_slots_;
  // net_slots.cpp: slots set up ahead of time (their network ready, see
  // devices/net/host_network.hpp), held in used_slots_ until a VM takes one.
  std::set<uint32_t> prepared_slots_;
  std::condition_variable slots_changed_;
  std::thread net_preparer_;
  // A free slot number (not yet marked used); VM_LIMIT_EXCEEDED when none.
  ApiResult<uint32_t> free_slot_locked() const;
  void keep_slots_prepared();
  void release_prepared_slots();
  // Serialises lifecycle changes (start, stop, delete) per VM.
  std::map<std::string, std::shared_ptr<std::mutex>> op_locks_;
  std::shared_ptr<std::mutex> op_lock(const std::string& id);
  // A kill or delete waits for the VM's op lock, which a start holds until the
  // guest answers (up to the boot timeout): it asks that start to give up.
  std::set<std::string> starts_to_abort_;
  // The VM's op lock, taken after asking a start that holds it to give up.
  std::unique_lock<std::mutex> lock_ending_start(const std::string& id);
  bool start_aborted(const std::string& id);
};

}  // namespace forkvm::engine
