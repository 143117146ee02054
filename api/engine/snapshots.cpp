// LocalEngine's snapshot-backed operations: snapshot a VM, create a VM from
// a snapshot, fork, suspend and resume. Each is one request to the VMM's
// control socket (vmm/control.hpp), plus `forkvm restore` (memory mapped
// copy-on-write from the snapshot) for VMs made from a snapshot:
//
//   snapshot: the VMM pauses, saves state and freezes the disk (a new top
//             layer for the VM), and writes memory from a fork()ed copy while
//             the VM runs on. Every VM created from it gets its own top layer.
//   fork:     the VMM pauses and fork()s one child VMM per new VM: memory is
//             shared copy-on-write, each child opens a chain of its own over
//             the frozen disk. The parent runs on; children are adopted by pid.
//   suspend:  the same save with "stop": memory is written while paused,
//             then the VMM exits.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <thread>

#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"
#include "api/models/ids.hpp"
#include "api/models/json_out.hpp"
#include "devices/storage/chain_ops.hpp"
#include "devices/storage/layer_store.hpp"
#include "vmm/control.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {
namespace {

ApiError engine_error(std::string_view what, const Error& e) {
  return api_error(ErrorCode::InternalError, fmt::format("{}: {}", what, e.message));
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Removes a suspended VM's saved directory and lets go of the disk layers
// its frozen chain file held, or they would outlive it forever. The VMM
// held them under the name it wrote the file as: suspend saves to DIR.new
// and renames it.
void discard_saved(const std::string& dir, const std::string& layers_root) {
  if (auto chain = storage::load_chain(dir + "/chain"); chain.ok()) {
    for (const std::string& holder : {dir + "/chain", dir + ".new/chain"}) {
      if (auto s = storage::release_chain(*chain, holder); !s.ok())
        log(LogLevel::warn, "engine: releasing the disk layers of {}: {}", dir, s.error().message);
    }
    if (auto g = storage::gc(layers_root); !g.ok())
      log(LogLevel::warn, "engine: collecting unused disk layers: {}", g.error().message);
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

// The children's pids in the VMM's fork response, in request order.
Result<std::vector<int>> fork_child_pids(const std::string& reply) {
  rapidjson::Document doc;
  doc.Parse(reply.c_str());
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("ok") || !doc["ok"].IsTrue() ||
      !doc.HasMember("children") || !doc["children"].IsArray())
    return make_error("not a fork response");
  std::vector<int> pids;
  for (const auto& c : doc["children"].GetArray()) {
    if (!c.IsObject() || !c.HasMember("pid") || !c["pid"].IsInt() || c["pid"].GetInt() <= 0)
      return make_error("a fork child without a pid");
    pids.push_back(c["pid"].GetInt());
  }
  return pids;
}

}  // namespace

ApiResult<LocalEngine::SavedVm> LocalEngine::save(LiveVm& vm, const std::string& dir, bool stop) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("create {}: {}", dir, ec.message()));
  // The guest's page cache is part of its memory, so disk + memory are
  // consistent without a sync.
  JsonOut req;
  req.begin_object().field("op", "snapshot").field("dir", dir);
  if (stop) req.key("stop").boolean(true);
  auto reply = control_request(vm.control_socket, req.end_object().take(), 600000);
  auto fail = [&](ApiError e) {
    std::filesystem::remove_all(dir, ec);  // no partial snapshot left behind
    return e;
  };
  if (!reply.ok()) return fail(engine_error("snapshot through the VMM's control socket", reply.error()));
  if (reply->find("\"ok\":true") == std::string::npos)
    return fail(api_error(ErrorCode::InternalError, "the VMM refused the snapshot: " + *reply));
  if (stop) {
    if (!vm.vmm->wait_for(std::chrono::seconds(60))) {
      vm.vmm->signal(SIGKILL);
      vm.vmm->wait_for(std::chrono::seconds(10));
    }
    forget(vm.id);
  }
  auto frozen = storage::load_chain(dir + "/chain");
  if (!frozen.ok()) return fail(engine_error("the VM's frozen disk", frozen.error()));
  return SavedVm{dir, *frozen};
}

void LocalEngine::renew_identity(LiveVm& vm, bool new_machine_id) {
  agent::IdentityRequest r;
  r.regenerate_machine_id = new_machine_id;
  if (auto done = vm.agent(15000).identity(r); !done.ok())
    log(LogLevel::warn, "engine: VM {}: renewing the guest's identity: {}", vm.id, done.error().message);
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
  // The VM runs on; dir/chain (written and held by the VMM) is its disk at that instant.
  auto saved = FORKVM_TRY(save(*live, dir, false));
  if (auto s = storage::retain_chain(saved.disk, "snapshot:" + input.snapshot_id); !s.ok())
    return engine_error("holding the snapshot's disk layers", s.error());
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
  auto vm = FORKVM_TRY(restore(id, snapshot_dir));
  // Another VM may run from the same snapshot: its RNG state and machine-id are not this one's.
  renew_identity(*vm, true);
  return vm;
}

ApiResult<ForkedVms> LocalEngine::fork_vm(const CallContext& /*ctx*/, const VmRecord& vm, const ForkInput& input) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = FORKVM_TRY(running(vm));
  auto r = FORKVM_TRY(load_resources(vm.id));
  std::vector<std::shared_ptr<LiveVm>> children;
  auto undo = [&](ApiError e) {
    for (const auto& c : children) {
      if (c->vmm) halt(*c, false);
      release_slot(c->net_slot);
      forget(c->id);
      remove_vm_files(c->id);
    }
    return e;
  };
  JsonOut req;
  req.begin_object().field("op", "fork").key("children").begin_array();
  for (const auto& id : input.child_ids) {
    std::error_code ec;
    std::filesystem::create_directories(vm_dir(id), ec);
    auto child = prepare(id);
    if (!child.ok()) return undo(child.error());
    children.push_back(*child);
    if (auto saved = save_resources(id, r); !saved.ok()) return undo(saved.error());
    const LiveVm& c = **child;
    req.begin_object()
        .field("control", c.control_socket)
        .field("console", c.dir + "/console.log")
        .field("vsock", c.agent_socket)
        .key("cid")
        .unum(vsock_cid(c))
        .key("net_slot")
        .unum(c.net_slot)
        .key("disks")
        .begin_array()
        .str(c.dir + "/disk")
        .end_array()
        .field("log", vmm_log(c))
        .end_object();
  }
  req.end_array().end_object();
  auto reply = control_request(live->control_socket, req.take(), 120000);
  if (!reply.ok()) return undo(engine_error("fork through the VMM's control socket", reply.error()));
  auto pids = fork_child_pids(*reply);
  if (!pids.ok() || pids->size() != children.size())
    return undo(api_error(ErrorCode::InternalError, "the VMM refused the fork: " + *reply));
  for (size_t i = 0; i < children.size(); ++i) {
    auto proc = VmmProcess::adopt((*pids)[i]);
    if (!proc.ok()) return undo(engine_error(fmt::format("fork child {}", i + 1), proc.error()));
    children[i]->vmm = *proc;
  }
  ForkedVms out;
  for (auto& c : children) {
    auto ready = await_ready(c);
    if (!ready.ok()) return undo(ready.error());
    // Copies of one guest: each needs RNG state and a machine-id of its own.
    renew_identity(*c, true);
    CreatedVm created;
    created.vm_id = c->id;
    created.instance_id = c->instance_id;
    created.state = "running";
    created.runtime.vmm_pid = c->vmm->pid();
    created.runtime.agent_socket = c->agent_socket;
    created.runtime.control_socket = c->control_socket;
    out.children.push_back(std::move(created));
  }
  renew_identity(*live, false);
  return out;
}

ApiResult<SuspendedVm> LocalEngine::suspend_vm(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  auto live = FORKVM_TRY(running(vm));
  std::string dir = vm_dir(vm.id) + "/suspended";
  std::string tmp = dir + ".new";
  auto saved = FORKVM_TRY(save(*live, tmp, true));
  discard_saved(dir, layers_root());
  std::error_code ec;
  std::filesystem::rename(tmp, dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("keeping {}: {}", dir, ec.message()));
  return SuspendedVm{live->instance_id, std::string(kLayerIdPrefix) + saved.disk.layers.back().substr(0, 16)};
}

ApiResult<std::shared_ptr<LiveVm>> LocalEngine::resume(const VmRecord& vm) {
  std::string dir = vm_dir(vm.id) + "/suspended";
  if (!exists(dir + "/state"))
    return api_error(ErrorCode::VmNotRunning, fmt::format("VM {} is suspended but its saved state is missing", vm.id));
  auto live = FORKVM_TRY(restore(vm.id, dir));
  // Its clock stood still while suspended.
  renew_identity(*live, false);
  // The restored VM maps the memory file privately and its disk is its own
  // chain: the directory and its frozen chain's holds can go.
  discard_saved(dir, layers_root());
  return live;
}

}  // namespace forkvm::engine

namespace forkvm::engine {

// The agent answers before systemd has finished booting (dbus, logind, getty and the
// network still start after it). Snapshotted then, every VM made from the golden one
// would run that tail again, each in memory of its own. Not fatal: a unit that hangs
// the boot costs its wait, and the snapshot is taken anyway.
void LocalEngine::wait_for_boot_end(LiveVm& vm) {
  constexpr int64_t kLimitMs = 60000;
  auto r = vm.agent(kLimitMs + 5000)
               .exec({.command = "systemctl is-system-running --wait", .timeout_ms = kLimitMs});
  if (!r.ok()) {
    log(LogLevel::warn, "engine: golden VM: waiting for its boot to end: {}", r.error().message);
  } else if (r->timed_out) {
    log(LogLevel::warn, "engine: golden VM: its boot did not end within {} s; snapshotting it anyway",
        kLimitMs / 1000);
  } else if (r->exit_code != 0) {
    // "degraded": a unit failed. Booted all the same.
    std::string state = r->stdout_data;
    while (!state.empty() && std::isspace(static_cast<unsigned char>(state.back()))) state.pop_back();
    log(LogLevel::warn, "engine: golden VM booted {}", state.empty() ? "with an error" : state);
  }
}

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
  // Held across boot and save, so that the VMM's exit after its snapshot is
  // expected, not reported as a lost VM.
  auto lock = op_lock(id);
  std::lock_guard op_guard(*lock);
  auto vm = FORKVM_TRY(boot(id, r));
  wait_for_boot_end(*vm);
  std::string tmp = dir + ".new";
  auto saved = save(*vm, tmp, true);
  if (!saved.ok()) {
    remove_vm_files(id);
    return saved.error();
  }
  if (auto s = storage::retain_chain(saved->disk, "golden:" + key); !s.ok())
    return engine_error("holding the golden disk layers", s.error());
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(tmp, dir, ec);
  if (ec) return api_error(ErrorCode::InternalError, fmt::format("keeping {}: {}", dir, ec.message()));
  remove_vm_files(id);  // its own top layer; the frozen ones stay held by "golden:"
  log(LogLevel::info, "engine: golden snapshot of image '{}' ready in {} ms: {}", image_.name,
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count(), dir);
  return dir;
}


}  // namespace forkvm::engine
