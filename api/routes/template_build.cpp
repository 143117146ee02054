#include "api/routes/template_build.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "api/auth/sha256.hpp"
#include "api/models/ids.hpp"
#include "api/models/responses.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace {

constexpr std::string_view kDefaultBase = "default-image";

std::vector<const LayerSpec*> innermost_first(const LayerSpec& outermost) {
  std::vector<const LayerSpec*> layers;
  for (const LayerSpec* l = &outermost; l != nullptr; l = l->base.get()) layers.push_back(l);
  std::reverse(layers.begin(), layers.end());
  return layers;
}

// Two requests for the same layer build it once: the second waits for the
// first and then finds its snapshot in the cache.
std::shared_ptr<std::mutex> layer_lock(const std::string& key) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<std::mutex>> locks;
  std::lock_guard guard(mu);
  std::erase_if(locks, [](const auto& entry) { return entry.second.expired(); });
  auto lock = locks[key].lock();
  if (!lock) {
    lock = std::make_shared<std::mutex>();
    locks[key] = lock;
  }
  return lock;
}

// What the engine's create applies inside the builder VM: everything of the
// layer that ends up in the guest.
CreateVmRequest builder_request(const LayerSpec& l) {
  CreateVmRequest q;
  q.workdir = l.workdir;
  q.users = l.users;
  q.groups = l.groups;
  q.additional_files = l.additional_files;
  q.git_repos = l.git_repos;
  q.git = l.git;
  q.apt_deps = l.apt_deps;
  q.systemd = l.systemd;
  q.vcpu_count = l.vcpu_count;
  q.mem_size_gb = l.mem_size_gb;
  q.rootfs_size_gb = l.rootfs_size_gb;
  return q;
}

// A layer above a snapshot runs with the snapshot's vCPUs and memory (its
// state holds them); asking for others there would be silently ignored.
ApiStatus check_sizes_over(const LayerSpec& l, const SnapshotRecord& base, ErrorCode bad_input) {
  if (l.vcpu_count && base.vcpu_count && *l.vcpu_count != *base.vcpu_count)
    return api_error(bad_input,
                     fmt::format("vcpuCount {} differs from its base snapshot {}'s {}; give sizes on "
                                 "the innermost layer, or resize VMs created from it",
                                 *l.vcpu_count, base.id, *base.vcpu_count));
  if (l.mem_size_gb && base.mem_size_mib && *l.mem_size_gb * 1024 != *base.mem_size_mib)
    return api_error(bad_input, fmt::format("memSizeGb {} differs from its base snapshot {}'s {} MiB; give "
                                            "sizes on the innermost layer, or resize VMs created from it",
                                            *l.mem_size_gb, base.id, *base.mem_size_mib));
  return {};
}

// The request's build row, opened at the first layer that is not cached.
class BuildRow {
 public:
  explicit BuildRow(RouteContext& ctx) : ctx_(ctx) {}

  [[nodiscard]] const std::optional<std::string>& id() const { return id_; }

  ApiStatus open(const std::string& template_hash, std::vector<std::string> planned) {
    BuildRecord b;
    b.id = new_build_id();
    b.account_id = ctx_.account.id;
    b.request_id = ctx_.call.request_id;
    b.state = "running";
    b.template_hash = template_hash;
    b.planned_phases = std::move(planned);
    b.started_at_ms = b.updated_at_ms = now_ms();
    if (auto s = ctx_.store.insert_build(b); !s.ok()) return store_error(ctx_, s.error());
    id_ = b.id;
    record_ = std::move(b);
    return {};
  }

  // Phases are a progress log: a failure to write one is logged, not fatal.
  void phase(const std::string& name, const std::optional<std::string>& snapshot_id) {
    BuildPhaseRecord p{new_phase_id(), *id_, name, snapshot_id, now_ms()};
    if (auto s = ctx_.store.insert_build_phase(p); !s.ok())
      log(LogLevel::warn, "request {}: build {}: recording phase '{}': {}", ctx_.call.request_id, *id_, name,
          s.error().message);
  }

  void finish(const std::optional<std::string>& failure) {
    if (!id_) return;
    record_.state = failure ? "failed" : "succeeded";
    record_.failure_reason = failure;
    record_.finished_at_ms = record_.updated_at_ms = now_ms();
    if (auto s = ctx_.store.update_build(record_); !s.ok())
      log(LogLevel::warn, "request {}: build {}: recording its end: {}", ctx_.call.request_id, *id_,
          s.error().message);
  }

 private:
  RouteContext& ctx_;
  std::optional<std::string> id_;
  BuildRecord record_;
};

std::string layer_label(size_t i, size_t n) {
  return n == 1 ? "layer" : fmt::format("layer {}/{}", i + 1, n);
}

// The builder VM is a real VM of the account while it exists (listed, and
// found again by a restarted server); it is deleted once its snapshot is
// taken or the layer failed.
void discard_builder(RouteContext& ctx, VmRecord& vm) {
  if (auto s = ctx.engine.delete_vm(ctx.call, vm); !s.ok())
    log(LogLevel::warn, "request {}: deleting builder VM {}: {}", ctx.call.request_id, vm.id,
        s.error().message);
  vm.deleted = true;
  vm.state = "stopped";
  vm.vmm_pid.reset();
  vm.updated_at_ms = now_ms();
  if (auto r = ctx.store.update_vm(vm); !r.ok())
    log(LogLevel::warn, "request {}: recording builder VM {} deleted: {}", ctx.call.request_id, vm.id,
        r.error().message);
}

struct LayerJob {
  const LayerSpec& layer;
  std::string label;
  std::string hash;
  const std::optional<SnapshotRecord>& base;
  OuterSnapshotFields names;
};

ApiResult<SnapshotRecord> build_layer(RouteContext& ctx, BuildRow& build, const LayerJob& job) {
  SnapshotRecord snap;
  snap.id = new_snapshot_id();
  snap.account_id = ctx.account.id;
  snap.name = job.names.name;
  snap.state = "building";
  snap.persistence_json = wire::persistence(job.names.persistence.value_or(Persistence{}));
  snap.build_id = build.id();
  snap.template_hash = job.hash;
  snap.storage_json = "{}";
  snap.created_at_ms = now_ms();
  if (auto s = ctx.store.insert_snapshot(snap); !s.ok()) return store_error(ctx, s.error());
  auto fail = [&](ApiError e) {
    snap.state = "failed";
    snap.failure_reason = e.message;
    (void)ctx.store.update_snapshot(snap);
    return e;
  };

  build.phase(job.label + ": start VM", std::nullopt);
  CreateVmInput in;
  in.vm_id = new_vm_id();
  in.request = builder_request(job.layer);
  in.base_snapshot = job.base;
  auto created = ctx.engine.create_vm(ctx.call, in);
  if (!created.ok()) return fail(created.error());
  VmRecord vm;
  vm.id = in.vm_id;
  vm.account_id = ctx.account.id;
  vm.name = fmt::format("builder of {} ({}, build {})", snap.id, job.label, *build.id());
  vm.state = created->state;
  vm.instance_id = created->instance_id;
  vm.config_json = "{}";
  vm.snapshot_id = job.base ? std::optional<std::string>(job.base->id) : std::nullopt;
  vm.build_id = build.id();
  vm.created_at_ms = vm.updated_at_ms = now_ms();
  vm.vmm_pid = created->runtime.vmm_pid;
  vm.control_socket = created->runtime.control_socket;
  vm.agent_socket = created->runtime.agent_socket;
  if (auto s = ctx.store.insert_vm(vm); !s.ok()) {
    (void)ctx.engine.kill_vm(ctx.call, vm);
    (void)ctx.engine.delete_vm(ctx.call, vm);
    return fail(store_error(ctx, s.error()));
  }

  build.phase(job.label + ": snapshot", snap.id);
  auto made = ctx.engine.snapshot_vm(ctx.call, vm, SnapshotInput{snap.id, SnapshotVmRequest{}});
  discard_builder(ctx, vm);
  if (!made.ok()) return fail(made.error());
  snap.state = "ready";
  snap.source_vm_id = vm.id;
  snap.source_instance_id = made->record.source_instance_id;
  snap.vcpu_count = made->record.vcpu_count;
  snap.mem_size_mib = made->record.mem_size_mib;
  snap.rootfs_size_mb = made->record.rootfs_size_mb;
  snap.storage_json = made->record.storage_json;
  if (auto r = ctx.store.update_snapshot(snap); !r.ok()) {
    (void)ctx.engine.delete_snapshot(ctx.call, snap);
    return store_error(ctx, r.error());
  }
  return snap;
}

ApiResult<BuiltSnapshot> build_layers(RouteContext& ctx, BuildRow& build,
                                      const std::vector<const LayerSpec*>& layers,
                                      const OuterSnapshotFields& outer, ErrorCode bad_input) {
  std::optional<SnapshotRecord> base;
  if (const auto& id = layers.front()->snapshot_id) {
    base = FORKVM_TRY(load_snapshot(ctx, *id, false));
    if (base->state != "ready")
      return api_error(bad_input,
                       fmt::format("snapshot {} is {}, not ready to build on", base->id, base->state));
  }
  std::vector<std::pair<size_t, std::string>> cached;  // layers found before the build opened
  for (size_t i = 0; i < layers.size(); i++) {
    const LayerSpec& l = *layers[i];
    std::string label = layer_label(i, layers.size());
    if (base) FORKVM_CHECK(check_sizes_over(l, *base, bad_input));
    std::string hash = layer_hash(l, base ? std::string_view(base->id) : kDefaultBase);
    auto lock = layer_lock(ctx.account.id + "/" + hash);
    std::lock_guard guard(*lock);
    if (!l.skip_cache.value_or(false)) {
      auto hit = ctx.store.find_snapshot_by_template(ctx.account.id, hash);
      if (!hit.ok()) return store_error(ctx, hit.error());
      if (*hit) {
        base = std::move(**hit);
        if (build.id())
          build.phase(label + " (cached)", base->id);
        else
          cached.emplace_back(i, base->id);
        continue;
      }
    }
    if (!build.id()) {
      std::vector<std::string> planned;
      for (const auto& [k, id] : cached) planned.push_back(layer_label(k, layers.size()) + " (cached)");
      for (size_t k = i; k < layers.size(); k++) {
        planned.push_back(layer_label(k, layers.size()) + ": start VM");
        planned.push_back(layer_label(k, layers.size()) + ": snapshot");
      }
      FORKVM_CHECK(build.open(hash, std::move(planned)));
      for (const auto& [k, id] : cached) build.phase(layer_label(k, layers.size()) + " (cached)", id);
    }
    bool is_outermost = i + 1 == layers.size();
    LayerJob job{l, label, hash, base, is_outermost ? outer : OuterSnapshotFields{}};
    auto built = build_layer(ctx, build, job);
    if (!built.ok()) {
      ApiError e = built.error();
      if (layers.size() > 1) e.message = fmt::format("{} of the template: {}", label, e.message);
      return e;
    }
    base = std::move(*built);
  }
  return BuiltSnapshot{*base, build.id() ? build.id() : base->build_id};
}

}  // namespace

std::string layer_hash(const LayerSpec& layer, std::string_view base) {
  return sha256_hex(fmt::format("forkvm-layer-v1\n{}\n{}", base, layer.canonical));
}

ApiResult<BuiltSnapshot> build_template(RouteContext& ctx, const LayerSpec& outermost,
                                        const OuterSnapshotFields& outer, ErrorCode bad_input) {
  auto layers = innermost_first(outermost);
  for (const LayerSpec* l : layers) {
    if (l->dockerfile)
      return api_error(
          ErrorCode::NotImplemented,
          "baseImage (Dockerfile) layers are not implemented: forkvm has no image builder yet; base "
          "the layer on the default image or on a snapshotId, and install packages with aptDeps");
  }
  BuildRow build(ctx);
  auto built = build_layers(ctx, build, layers, outer, bad_input);
  build.finish(built.ok() ? std::nullopt : std::optional<std::string>(built.error().message));
  return built;
}

}  // namespace forkvm::api
