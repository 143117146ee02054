// Snapshot and build endpoints. Reads, renames and deletes are store
// operations; creating a snapshot from a template is a build
// (template_build.hpp). Deleting is a soft
// delete (the spec's `deleted` flag): the engine reclaims the files of
// deleted rows.
#include <fmt/format.h>

#include "api/models/ids.hpp"
#include "api/models/json_out.hpp"
#include "api/models/requests.hpp"
#include "api/models/responses.hpp"
#include "api/routes/api.hpp"
#include "api/routes/template_build.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace {

ApiResult<BuildRecord> load_build(RouteContext& ctx, const std::string& id) {
  // Builds have no "invalid id" code in the SDK table; a malformed id is
  // simply not found.
  if (!is_build_id(id)) return api_error(ErrorCode::BuildNotFound, fmt::format("Build not found: {}", id));
  auto b = ctx.store.get_build(ctx.account.id, id);
  if (!b.ok()) return store_error(ctx, b.error());
  if (!*b) return api_error(ErrorCode::BuildNotFound, fmt::format("Build not found: {}", id));
  return std::move(**b);
}

}  // namespace

ApiResult<HttpReply> list_snapshots(RouteContext& ctx) {
  SnapshotListFilter f;
  f.include_deleted = FORKVM_TRY(query_bool(ctx, "includeDeleted", false));
  f.include_failed = FORKVM_TRY(query_bool(ctx, "includeFailed", false));
  f.include_building = FORKVM_TRY(query_bool(ctx, "includeBuilding", false));
  auto list = ctx.store.list_snapshots(ctx.account.id, f);
  if (!list.ok()) return store_error(ctx, list.error());
  return HttpReply{json_response(wire::snapshot_list(*list))};
}

ApiResult<HttpReply> create_snapshot(RouteContext& ctx) {
  CreateSnapshotRequest req = FORKVM_TRY(parse_create_snapshot(ctx.request.body));
  BuiltSnapshot built = FORKVM_TRY(
      build_template(ctx, *req.spec, {req.name, req.persistence}, ErrorCode::CreateSnapshotBadRequest));
  return HttpReply{
      json_response(JsonOut().begin_object().field("snapshotId", built.snapshot.id).end_object().take())};
}

ApiResult<HttpReply> get_snapshot(RouteContext& ctx) {
  // The spec returns deleted and failed rows too, for deep links.
  SnapshotRecord s = FORKVM_TRY(load_snapshot(ctx, ctx.param("snapshot_id"), true));
  return HttpReply{json_response(wire::snapshot_info(s))};
}

ApiResult<HttpReply> delete_snapshot(RouteContext& ctx) {
  SnapshotRecord s = FORKVM_TRY(load_snapshot(ctx, ctx.param("snapshot_id"), true));
  if (s.deleted)
    return api_error(ErrorCode::SnapshotAlreadyDeleted, fmt::format("Snapshot already deleted: {}", s.id));
  auto done = ctx.store.mark_snapshot_deleted(ctx.account.id, s.id);
  if (!done.ok()) return store_error(ctx, done.error());
  // Lost a race with another delete of the same snapshot.
  if (!*done)
    return api_error(ErrorCode::SnapshotAlreadyDeleted, fmt::format("Snapshot already deleted: {}", s.id));
  // After the row: only the one delete that won the race releases the layers.
  // The snapshot is gone for the caller either way; leftovers are logged.
  if (auto released = ctx.engine.delete_snapshot(ctx.call, s); !released.ok())
    log(LogLevel::warn, "request {}: snapshot {}: its files stay: {}", ctx.call.request_id, s.id,
        released.error().message);
  // The spec's body is {snapshot_id}; the SDK's snapshots.delete() promises
  // {snapshotId}. Both, so either reader finds the id.
  return HttpReply{json_response(
      JsonOut().begin_object().field("snapshot_id", s.id).field("snapshotId", s.id).end_object().take())};
}

ApiResult<HttpReply> update_snapshot(RouteContext& ctx) {
  SnapshotRecord s = FORKVM_TRY(load_snapshot(ctx, ctx.param("snapshot_id"), true));
  UpdateSnapshotRequest req = FORKVM_TRY(parse_update_snapshot(ctx.request.body));
  if (req.name_present) {
    auto done = ctx.store.update_snapshot_name(ctx.account.id, s.id, req.name);
    if (!done.ok()) return store_error(ctx, done.error());
    s.name = req.name;
  }
  return HttpReply{json_response(
      JsonOut().begin_object().field("snapshot_id", s.id).field("name", s.name).end_object().take())};
}

ApiResult<HttpReply> get_build(RouteContext& ctx) {
  BuildRecord b = FORKVM_TRY(load_build(ctx, ctx.param("build_id")));
  return HttpReply{json_response(wire::build(b))};
}

ApiResult<HttpReply> list_build_phases(RouteContext& ctx) {
  BuildRecord b = FORKVM_TRY(load_build(ctx, ctx.param("build_id")));
  auto phases = ctx.store.list_build_phases(b.id);
  if (!phases.ok()) return store_error(ctx, phases.error());
  return HttpReply{json_response(wire::build_phases(*phases))};
}

ApiResult<HttpReply> get_build_for_vm(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  if (!vm.build_id)
    return api_error(ErrorCode::BuildNotFoundForVm, fmt::format("VM {} was not produced by a build", vm.id));
  BuildRecord b = FORKVM_TRY(load_build(ctx, *vm.build_id));
  return HttpReply{json_response(wire::build(b))};
}

}  // namespace forkvm::api
