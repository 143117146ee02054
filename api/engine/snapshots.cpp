// LocalEngine's snapshot-backed operations: snapshot a VM, create a VM from
// a snapshot, fork, suspend and resume. Every one is built from the VMM's
// control-socket snapshot (memory + device state, vmm/control.hpp), `forkvm
// restore` (memory mapped copy-on-write from the snapshot) and the layered
// disk (devices/storage/): the disk is frozen at the instant the memory was
// saved, and every VM made from the snapshot gets its own top layer on it.
//
// The VMM stops for the save ("stop":true) because a live chain cannot be
// frozen from outside the VMM yet; the source VM then restores itself from
// the same snapshot. So the source sees a pause of one save + one restore,
// not of one fork() (the live fork in Machine::fork is not used here yet).
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"
#include "api/models/ids.hpp"
#include "api/models/json_out.hpp"
#include "devices/storage/chain_ops.hpp"
#include "vmm/control.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {
namespace {

ApiError engine_error(std::string_view what, const Error& e) {
  return api_error(ErrorCode::InternalError, fmt::format("{}: {}", what, e.message));
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace

ApiResult<LocalEngine::SavedVm> LocalEngine::save_and_stop(LiveVm& vm, const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("create {}: {}", dir, ec.message()));
  // The guest's page cache is part of its memory, so disk + memory are
  // consistent without a sync; the sync only shortens a later flatten.
  std::string request = JsonOut().begin_object().field("op", "snapshot").field("dir", dir).key("stop").boolean(true).end_object().take();
  auto reply = control_request(vm.control_socket, request, 600000);
  if (!reply.ok()) return engine_error("snapshot through the VMM's control socket", reply.error());
  if (reply->find("\"ok\":true") == std::string::npos)
    return api_error(ErrorCode::InternalError, "the VMM refused the snapshot: " + *reply);
  if (!vm.vmm->wait_for(std::chrono::seconds(60))) {
    vm.vmm->signal(SIGKILL);
    vm.vmm->wait_for(std::chrono::seconds(10));
  }
  forget(vm.id);
  // The VM's disk: freeze what the memory saw; the VM's chain gets a new top.
  auto frozen = storage::freeze_chain(vm.dir + "/disk/chain");
  if (!frozen.ok()) return engine_error("freezing the VM's disk", frozen.error());
  return SavedVm{dir, *frozen};
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::restore(const std::string& id, const std::string& snapshot_dir) {
  return launch(id, {"restore", "--snapshot", snapshot_dir});
}

ApiResult<CreatedSnapshot> LocalEngine::snapshot_vm(const CallContext& /*ctx*/, const VmRecord& vm,
                                                    const SnapshotInput& input) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = FORKVM_TRY(running(vm));
  std::string dir = o_.data_dir + "/snapshots/" + input.snapshot_id;
  auto saved = FORKVM_TRY(save_and_stop(*live, dir));
  if (auto s = storage::retain_chain(saved.disk, "snapshot:" + input.snapshot_id); !s.ok())
    return engine_error("holding the snapshot's disk layers", s.error());
  if (auto s = storage::save_chain(dir + "/chain", saved.disk); !s.ok())
    return engine_error("recording the snapshot's disk", s.error());
  // The source VM runs on from the instant it was saved.
  auto back = restore(vm.id, dir);
  if (!back.ok()) log(LogLevel::error, "engine: VM {} did not come back after its snapshot: {}", vm.id, back.error().message);
  auto r = FORKVM_TRY(load_resources(vm.id));
  CreatedSnapshot out;
  out.record.state = "ready";
  out.record.source_instance_id = live->instance_id;
  out.record.vcpu_count = r.vcpus;
  out.record.mem_size_mib = static_cast<int64_t>(r.mem_mib);
  out.record.storage_json = JsonOut().begin_object().field("dir", dir).end_object().take();
  return out;
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::create_from_snapshot(const std::string& id,
                                                                    const std::string& snapshot_dir,
                                                                    const Resources& r) {
  auto frozen = storage::load_chain(snapshot_dir + "/chain");
  if (!frozen.ok()) return engine_error("the snapshot's disk", frozen.error());
  std::string dir = vm_dir(id);
  if (auto made = storage::fork_chain_from(*frozen, dir + "/disk"); !made.ok())
    return engine_error("the new VM's disk", made.error());
  FORKVM_CHECK(save_resources(id, r));
  return restore(id, snapshot_dir);
}

ApiResult<ForkedVms> LocalEngine::fork_vm(const CallContext& /*ctx*/, const VmRecord& vm, const ForkInput& input) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = FORKVM_TRY(running(vm));
  auto r = FORKVM_TRY(load_resources(vm.id));
  std::string dir = o_.data_dir + "/snapshots/fork-" + vm.id + "-" + new_instance_id();
  auto saved = FORKVM_TRY(save_and_stop(*live, dir));
  if (auto s = storage::save_chain(dir + "/chain", saved.disk); !s.ok())
    return engine_error("recording the fork's disk", s.error());
  auto back = restore(vm.id, dir);
  ForkedVms out;
  std::optional<ApiError> failure;
  if (!back.ok()) failure = back.error();
  for (const auto& child : input.child_ids) {
    if (failure) break;
    std::error_code ec;
    std::filesystem::create_directories(vm_dir(child), ec);
    auto made = create_from_snapshot(child, dir, r);
    if (!made.ok()) {
      remove_vm_files(child);
      failure = made.error();
      break;
    }
    CreatedVm c;
    c.vm_id = child;
    c.instance_id = (*made)->instance_id;
    c.state = "running";
    c.runtime.vmm_pid = (*made)->vmm->pid();
    c.runtime.agent_socket = (*made)->agent_socket;
    c.runtime.control_socket = (*made)->control_socket;
    out.children.push_back(std::move(c));
  }
  // Running VMs map the memory file; the mappings keep it alive unlinked.
  std::error_code ec;
  std::filesystem::remove(dir + "/memory", ec);
  if (failure) {
    for (const auto& c : out.children) {
      if (auto l = find(c.vm_id)) halt(*l, false);
      forget(c.vm_id);
      remove_vm_files(c.vm_id);
    }
    return *failure;
  }
  return out;
}

ApiResult<SuspendedVm> LocalEngine::suspend_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = FORKVM_TRY(running(vm));
  std::string dir = vm_dir(vm.id) + "/suspended";
  std::string tmp = dir + ".new";
  auto saved = FORKVM_TRY(save_and_stop(*live, tmp));
  if (auto s = storage::save_chain(tmp + "/chain", saved.disk); !s.ok())
    return engine_error("recording the suspended disk", s.error());
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(tmp, dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("keeping {}: {}", dir, ec.message()));
  return SuspendedVm{live->instance_id, std::string(kLayerIdPrefix) + saved.disk.layers.back().substr(0, 16)};
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::resume(const VmRecord& vm) {
  std::string dir = vm_dir(vm.id) + "/suspended";
  if (!exists(dir + "/state"))
    return api_error(ErrorCode::VmNotRunning, fmt::format("VM {} is suspended but its saved state is missing", vm.id));
  auto live = FORKVM_TRY(restore(vm.id, dir));
  std::error_code ec;
  // The restored VM maps the memory file privately; drop the directory entry.
  std::filesystem::remove_all(dir, ec);
  return live;
}

}  // namespace forkvm::engine

namespace forkvm::engine {

ApiResult<std::string> LocalEngine::golden(const Resources& r) {
  std::lock_guard guard(golden_mu_);
  // Keyed by what the snapshot depends on: the image's files (their cache
  // paths carry the recipe hashes) and the VM's size.
  std::error_code ec;
  std::string kernel = std::filesystem::canonical(image_.kernel, ec).string();
  std::string rootfs = std::filesystem::canonical(image_.rootfs, ec).string();
  std::string key =
      fmt::format("{:016x}", std::hash<std::string>{}(fmt::format("{}|{}|{}|{}", kernel, rootfs, r.mem_mib, r.vcpus)));
  std::string dir = o_.data_dir + "/golden/" + key;
  if (exists(dir + "/state") && exists(dir + "/chain")) return dir;

  // A VM of its own (never listed: it has no row) booted to agent-ready.
  std::string id = "golden" + key.substr(0, 14);
  remove_vm_files(id);
  std::filesystem::create_directories(vm_dir(id), ec);
  storage::CreateOptions disk;
  disk.base = image_.rootfs;
  disk.layers_root = layers_root();
  if (auto made = storage::create_chain(vm_dir(id) + "/disk", disk); !made.ok())
    return engine_error("the golden VM's disk", made.error());
  FORKVM_CHECK(save_resources(id, r));
  auto t0 = std::chrono::steady_clock::now();
  auto vm = FORKVM_TRY(boot(id, r));
  std::string tmp = dir + ".new";
  auto saved = save_and_stop(*vm, tmp);
  if (!saved.ok()) {
    remove_vm_files(id);
    return saved.error();
  }
  if (auto s = storage::retain_chain(saved->disk, "golden:" + key); !s.ok())
    return engine_error("holding the golden disk layers", s.error());
  if (auto s = storage::save_chain(tmp + "/chain", saved->disk); !s.ok())
    return engine_error("recording the golden disk", s.error());
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(tmp, dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("keeping {}: {}", dir, ec.message()));
  remove_vm_files(id);  // its own top layer; the frozen ones stay held by "golden:"
  log(LogLevel::info, "engine: golden snapshot of image '{}' ready in {} ms: {}", image_.name,
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count(), dir);
  return dir;
}


}  // namespace forkvm::engine
