// VM lifecycle endpoints: list/get from the store, everything that changes a
// VM through the engine, and the store updated only after the engine
// succeeded (a failed create leaves no row behind).
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "api/models/ids.hpp"
#include "api/models/json_out.hpp"
#include "api/models/requests.hpp"
#include "api/models/responses.hpp"
#include "api/routes/api.hpp"
#include "api/routes/template_build.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace {

constexpr int64_t kMaxListLimit = 1000;

bool is_vm_state(std::string_view s) {
  for (auto v : {"building", "starting", "running", "suspending", "suspended", "stopped", "lost"})
    if (s == v) return true;
  return false;
}

// The create request as stored: the body with credentials removed, and the
// idle timeout in effect at the top level (the idle monitor reads it there;
// a template may have given it).
std::string redacted_config(std::string_view body, std::optional<int64_t> idle_timeout_seconds) {
  rapidjson::Document d;
  d.Parse(body.data(), body.size());
  if (d.HasParseError() || !d.IsObject()) return "{}";
  d.RemoveMember("dockerCredentials");
  if (idle_timeout_seconds) {
    auto it = d.FindMember("idleTimeoutSeconds");
    if (it == d.MemberEnd())
      d.AddMember("idleTimeoutSeconds", rapidjson::Value(*idle_timeout_seconds), d.GetAllocator());
    else if (it->value.IsNull())
      it->value.SetInt64(*idle_timeout_seconds);
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  d.Accept(w);
  return {sb.GetString(), sb.GetSize()};
}

ApiResult<HttpReply> store_update(RouteContext& ctx, VmRecord& vm, std::string body) {
  vm.updated_at_ms = now_ms();
  auto r = ctx.store.update_vm(vm);
  if (!r.ok()) return store_error(ctx, r.error());
  return HttpReply{json_response(std::move(body))};
}

// The settings a template gives the VMs created from it, where the request
// itself is silent. (What the template puts in the guest is in its snapshot.)
void inherit_vm_settings(CreateVmRequest& req, const LayerSpec& layer) {
  if (!req.idle_timeout_seconds) req.idle_timeout_seconds = layer.idle_timeout_seconds;
  if (!req.persistence) req.persistence = layer.persistence;
  if (!req.ports) req.ports = layer.ports;
}

void apply_runtime(VmRecord& vm, const VmRuntime& rt) {
  vm.vmm_pid = rt.vmm_pid;
  vm.control_socket = rt.control_socket;
  vm.agent_socket = rt.agent_socket;
}

}  // namespace

ApiResult<HttpReply> list_vms(RouteContext& ctx) {
  VmListFilter f;
  f.limit = FORKVM_TRY(query_int(ctx, "limit", 0, kMaxListLimit)).value_or(kMaxListLimit);
  f.offset = FORKVM_TRY(query_int(ctx, "offset", 0, INT32_MAX)).value_or(0);
  f.include_deleted = FORKVM_TRY(query_bool(ctx, "includeDeleted", false));
  if (auto it = ctx.query.find("vmState"); it != ctx.query.end() && !it->second.empty()) {
    if (!is_vm_state(it->second)) return api_error(ErrorCode::BadRequest, "vmState is not a VM state");
    f.state = it->second;
  }
  if (auto it = ctx.query.find("search"); it != ctx.query.end() && !it->second.empty()) f.search = it->second;
  auto list = ctx.store.list_vms(ctx.account.id, f);
  if (!list.ok()) return store_error(ctx, list.error());
  return HttpReply{json_response(wire::vm_list(*list))};
}

ApiResult<HttpReply> get_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  return HttpReply{json_response(wire::get_vm(vm))};
}

ApiResult<HttpReply> create_vm(RouteContext& ctx) {
  CreateVmInput in;
  in.request = FORKVM_TRY(parse_create_vm(ctx.request.body));
  std::optional<std::string> base = in.request.snapshot_id;
  std::optional<std::string> build_id;
  bool from_template = false;
  if (LayerSpec* layer = in.request.spec ? in.request.spec.get() : in.request.template_.get()) {
    // A top-level snapshotId is the template's base when the template has none.
    LayerSpec* innermost = layer;
    while (innermost->base) innermost = innermost->base.get();
    if (base && !innermost->snapshot_id && !innermost->dockerfile) innermost->snapshot_id = base;
    // A template is built (or found in the cache) into a snapshot first;
    // the VM is then a restore of it with the top-level fields applied.
    BuiltSnapshot built = FORKVM_TRY(build_template(ctx, *layer, {}, ErrorCode::CreateVmBadRequest));
    inherit_vm_settings(in.request, *layer);
    base = built.snapshot.id;
    build_id = built.build_id;
    from_template = true;
    in.base_snapshot = std::move(built.snapshot);
    in.request.spec.reset();
    in.request.template_.reset();
  } else if (base) {
    in.base_snapshot = FORKVM_TRY(load_snapshot(ctx, *base, false));
  }
  in.vm_id = new_vm_id();
  CreatedVm created = FORKVM_TRY(ctx.engine.create_vm(ctx.call, in));
  if (from_template) {
    created.snapshot_id = base;  // the response's snapshotId: what the template became
    created.build_id = build_id;
  }
  VmRecord vm;
  vm.id = created.vm_id.empty() ? in.vm_id : created.vm_id;
  vm.account_id = ctx.account.id;
  vm.name = in.request.name;
  vm.state = created.state;
  vm.instance_id = created.instance_id;
  vm.config_json = redacted_config(ctx.request.body, in.request.idle_timeout_seconds);
  vm.snapshot_id = created.snapshot_id ? created.snapshot_id : base;
  vm.build_id = created.build_id;
  if (in.request.persistence) vm.persistence_json = wire::persistence(*in.request.persistence);
  vm.created_at_ms = vm.updated_at_ms = now_ms();
  apply_runtime(vm, created.runtime);
  if (auto s = ctx.store.insert_vm(vm); !s.ok()) {
    // The VM runs but is unrecorded: stop it rather than leak it.
    log(LogLevel::error, "request {}: recording VM {} failed; killing it", ctx.call.request_id, vm.id);
    (void)ctx.engine.kill_vm(ctx.call, vm);
    return store_error(ctx, s.error());
  }
  return HttpReply{json_response(wire::created_vm(created, vm.id))};
}

ApiResult<HttpReply> delete_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  FORKVM_CHECK(ctx.engine.delete_vm(ctx.call, vm));
  vm.deleted = true;
  vm.state = "stopped";
  vm.vmm_pid.reset();
  return store_update(ctx, vm, JsonOut().begin_object().field("id", vm.id).end_object().take());
}

ApiResult<HttpReply> start_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  StartVmRequest req = FORKVM_TRY(parse_start_vm(ctx.request.body));
  StartedVm started = FORKVM_TRY(ctx.engine.start_vm(ctx.call, vm, req));
  vm.state = "running";
  vm.instance_id = started.instance_id;
  apply_runtime(vm, started.runtime);
  JsonOut o;
  o.begin_object().field("id", vm.id).key("domains").begin_array();
  for (const auto& d : started.domains) o.str(d);
  o.end_array().field("console_url", started.console_url).end_object();
  return store_update(ctx, vm, o.take());
}

ApiResult<HttpReply> stop_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  StoppedVm stopped = FORKVM_TRY(ctx.engine.stop_vm(ctx.call, vm));
  vm.state = "stopped";
  vm.vmm_pid.reset();
  return store_update(ctx, vm,
                      JsonOut()
                          .begin_object()
                          .field("vmId", vm.id)
                          .field("vmInstanceId", stopped.instance_id)
                          .end_object()
                          .take());
}

ApiResult<HttpReply> kill_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  FORKVM_CHECK(ctx.engine.kill_vm(ctx.call, vm));
  vm.state = "stopped";
  vm.vmm_pid.reset();
  return store_update(ctx, vm, JsonOut().begin_object().field("id", vm.id).end_object().take());
}

ApiResult<HttpReply> suspend_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  SuspendedVm s = FORKVM_TRY(ctx.engine.suspend_vm(ctx.call, vm));
  vm.state = "suspended";
  vm.vmm_pid.reset();
  return store_update(ctx, vm,
                      JsonOut()
                          .begin_object()
                          .field("id", vm.id)
                          .field("vmInstanceId", s.instance_id)
                          .field("snapshotLayerId", s.snapshot_layer_id)
                          .end_object()
                          .take());
}

ApiResult<HttpReply> await_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  VmExit exit = FORKVM_TRY(ctx.engine.await_exit(ctx.call, vm));
  // Reload: the row may have changed while we waited.
  VmRecord now = FORKVM_TRY(load_vm(ctx));
  now.state = "stopped";
  now.vmm_pid.reset();
  return store_update(
      ctx, now,
      JsonOut().begin_object().field("id", vm.id).field("exitStatus", exit.exit_status).end_object().take());
}

ApiResult<HttpReply> optimize_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  OptimizedVm o = FORKVM_TRY(ctx.engine.optimize_vm(ctx.call, vm));
  return HttpReply{json_response(
      JsonOut().begin_object().field("id", vm.id).field("message", o.message).end_object().take())};
}

ApiResult<HttpReply> resize_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx, "id"));
  ResizeVmRequest req = FORKVM_TRY(parse_resize_vm(ctx.request.body));
  const ResizedVm r = FORKVM_TRY(ctx.engine.resize_vm(ctx.call, vm, req));
  if (r.resumed) note_resumed(ctx, vm);
  return HttpReply{json_response("{}")};
}

ApiResult<HttpReply> fork_vm(RouteContext& ctx) {
  VmRecord parent = FORKVM_TRY(load_vm(ctx));
  ForkVmRequest req = FORKVM_TRY(parse_fork_vm(ctx.request.body));
  ForkInput in;
  for (int64_t i = 0; i < req.count; i++) in.child_ids.push_back(new_vm_id());
  ForkedVms forked = FORKVM_TRY(ctx.engine.fork_vm(ctx.call, parent, in));
  JsonOut o;
  o.begin_object().field("vmId", parent.id).key("forks").begin_array();
  for (const auto& child : forked.children) {
    VmRecord vm = parent;  // a fork inherits the parent's configuration
    vm.id = child.vm_id;
    vm.state = child.state;
    vm.instance_id = child.instance_id;
    vm.created_at_ms = vm.updated_at_ms = now_ms();
    vm.last_activity_ms.reset();
    vm.cpu_time_seconds.reset();
    apply_runtime(vm, child.runtime);
    if (auto s = ctx.store.insert_vm(vm); !s.ok()) {
      log(LogLevel::error, "request {}: recording fork {} failed; killing it", ctx.call.request_id, vm.id);
      (void)ctx.engine.kill_vm(ctx.call, vm);
      return store_error(ctx, s.error());
    }
    o.begin_object().field("id", child.vm_id).key("domains").begin_array();
    for (const auto& d : child.domains) o.str(d);
    o.end_array().field("consoleUrl", child.console_url).end_object();
  }
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> snapshot_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  SnapshotInput in{new_snapshot_id(), FORKVM_TRY(parse_snapshot_vm(ctx.request.body))};
  CreatedSnapshot created = FORKVM_TRY(ctx.engine.snapshot_vm(ctx.call, vm, in));
  SnapshotRecord rec = std::move(created.record);
  rec.id = in.snapshot_id;
  rec.account_id = ctx.account.id;
  rec.source_vm_id = vm.id;
  rec.name = in.request.name;
  rec.persistence_json = wire::persistence(in.request.persistence.value_or(Persistence{}));
  if (rec.created_at_ms == 0) rec.created_at_ms = now_ms();
  if (auto s = ctx.store.insert_snapshot(rec); !s.ok()) return store_error(ctx, s.error());
  return HttpReply{json_response(JsonOut()
                                     .begin_object()
                                     .field("snapshotId", rec.id)
                                     .field("sourceVmId", vm.id)
                                     .field("sourceVmInstanceId", rec.source_instance_id)
                                     .end_object()
                                     .take())};
}

}  // namespace forkvm::api
