#include "api/routes/api.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>

#include "api/auth/auth.hpp"
#include "api/models/ids.hpp"
#include "api/models/json_out.hpp"
#include "api/routes/percent.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace {

std::vector<RoutePattern> patterns() {
  std::vector<RoutePattern> out;
  for (const auto& r : api_routes()) out.push_back({r.method, r.pattern});
  return out;
}

}  // namespace

HttpResponse json_response(std::string body, int status) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse error_response_for(const ApiError& error) {
  return json_response(error_body(error), error_http_status(error.code));
}

ApiError store_error(const RouteContext& ctx, const Error& error) {
  log(LogLevel::error, "request {}: store: {}", ctx.request.request_id, error.message);
  return api_error(
      ErrorCode::InternalError,
      fmt::format("the server's store failed (request id {}; see the server log)", ctx.request.request_id));
}

ApiResult<VmRecord> load_vm(RouteContext& ctx, const std::string& name) {
  const std::string& id = ctx.param(name);
  if (!is_vm_id(id))
    return api_error(ErrorCode::InvalidVmId,
                     fmt::format("'{}' is not a VM id (20 lowercase letters or digits)", id));
  auto vm = ctx.store.get_vm(ctx.account.id, id);
  if (!vm.ok()) return store_error(ctx, vm.error());
  // Another account's VM is reported exactly like a missing one.
  if (!*vm) return api_error(ErrorCode::VmNotFound, fmt::format("VM not found: {}", id));
  if ((*vm)->deleted) return api_error(ErrorCode::VmDeleted, fmt::format("VM {} has been deleted", id));
  return std::move(**vm);
}

void note_resumed(RouteContext& ctx, VmRecord& vm) {
  if (vm.state != "suspended") return;
  vm.state = "running";
  vm.updated_at_ms = now_ms();
  if (auto s = ctx.store.update_vm(vm); !s.ok())
    log(LogLevel::warn, "request {}: recording that VM {} resumed: {}", ctx.call.request_id, vm.id, s.error().message);
}

ApiResult<SnapshotRecord> load_snapshot(RouteContext& ctx, const std::string& id, bool allow_deleted) {
  if (!is_snapshot_id(id))
    return api_error(ErrorCode::InvalidSnapshotId,
                     fmt::format("'{}' is not a snapshot id (sc- and 20 lowercase letters or digits)", id));
  auto snap = ctx.store.get_snapshot(ctx.account.id, id);
  if (!snap.ok()) return store_error(ctx, snap.error());
  if (!*snap || ((*snap)->deleted && !allow_deleted))
    return api_error(ErrorCode::SnapshotNotFound, fmt::format("Snapshot not found: {}", id));
  return std::move(**snap);
}

ApiResult<std::optional<int64_t>> query_int(const RouteContext& ctx, const std::string& key, int64_t min,
                                            int64_t max) {
  auto it = ctx.query.find(key);
  if (it == ctx.query.end() || it->second.empty()) return std::optional<int64_t>{};
  const std::string& s = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max)
    return api_error(ErrorCode::BadRequest,
                     fmt::format("query parameter {} must be an integer between {} and {}", key, min, max));
  return std::optional<int64_t>{v};
}

ApiResult<bool> query_bool(const RouteContext& ctx, const std::string& key, bool fallback) {
  auto it = ctx.query.find(key);
  if (it == ctx.query.end() || it->second.empty()) return fallback;
  if (it->second == "true" || it->second == "1") return true;
  if (it->second == "false" || it->second == "0") return false;
  return api_error(ErrorCode::BadRequest, fmt::format("query parameter {} must be true or false", key));
}

ApiResult<HttpReply> health(RouteContext&) { return HttpReply{json_response(R"({"status":"ok"})")}; }

ApiResult<HttpReply> openapi(RouteContext& ctx) {
  return HttpReply{json_response(std::string(ctx.openapi_json))};
}

Api::Api(Store& store, VmEngine& engine, std::string_view openapi_json)
    : store_(store), engine_(engine), openapi_json_(openapi_json), router_(patterns()) {}

size_t Api::body_limit(std::string_view method, std::string_view target) const {
  RouteMatch m = router_.match(method, target_path(target));
  return m.kind == RouteMatch::Kind::found ? api_routes()[m.index].body_limit : kMaxJsonBody;
}

HttpResponse Api::error_response(int status, std::string_view code, std::string_view message) const {
  return json_response(error_body(code, message), status);
}

HttpReply Api::handle(const HttpRequest& request) {
  std::string_view path = target_path(request.target);
  RouteMatch m = router_.match(request.method, path);
  switch (m.kind) {
    case RouteMatch::Kind::not_found:
      return error_response(404, "NOT_FOUND", fmt::format("no such endpoint: {} {}", request.method, path));
    case RouteMatch::Kind::bad_escape:
      return error_response(400, "BAD_REQUEST", "malformed percent-escape in the request path");
    case RouteMatch::Kind::method_not_allowed: {
      std::string allow = fmt::format("{}", fmt::join(m.allowed, ", "));
      HttpResponse r =
          error_response(405, "METHOD_NOT_ALLOWED",
                         fmt::format("{} is not allowed on {} (allowed: {})", request.method, path, allow));
      r.headers.emplace_back("allow", allow);
      return r;
    }
    case RouteMatch::Kind::found:
      break;
  }
  const Route& route = api_routes()[m.index];
  auto query = parse_query(target_query(request.target));
  if (!query) return error_response(400, "BAD_REQUEST", "malformed percent-escape in the query string");
  RouteContext ctx{store_, engine_, openapi_json_, request, std::move(m.params), std::move(*query), {}, {}};
  if (route.needs_auth) {
    auto account =
        authenticate(store_, extract_credential(request.header("authorization"),
                                                request.header("x-freestyle-identity-access-token")));
    if (!account.ok()) return error_response_for(account.error());
    ctx.account = std::move(*account);
    ctx.call.account_id = ctx.account.id;
    ctx.call.request_id = request.request_id;
    if (auto user = request.header("x-freestyle-vm-linux-user-id"); user && !user->empty())
      ctx.call.linux_user = std::string(*user);
  }
  auto reply = route.handler(ctx);
  if (!reply.ok()) return error_response_for(reply.error());
  return std::move(*reply);
}

}  // namespace forkvm::api
