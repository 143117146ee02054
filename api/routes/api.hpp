// The API as an HttpHandler: route, authenticate, run the handler, turn any
// ApiError into the wire error body. Handlers are free functions over a
// RouteContext; the one table that binds them to paths is route_table.cpp.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "api/engine/engine.hpp"
#include "api/http/message.hpp"
#include "api/models/api_error.hpp"
#include "api/routes/router.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

inline constexpr size_t kMaxJsonBody = 1 << 20;   // 1 MiB
inline constexpr size_t kMaxFileBody = 64 << 20;  // 64 MiB: base64 of a 48 MiB file

struct RouteContext {
  Store& store;
  VmEngine& engine;
  std::string_view openapi_json;
  const HttpRequest& request;
  std::map<std::string, std::string> params;  // decoded path parameters
  std::map<std::string, std::string> query;   // decoded query parameters
  Account account;                            // empty for unauthenticated routes
  CallContext call;

  [[nodiscard]] const std::string& param(const std::string& name) const { return params.at(name); }
};

using RouteHandler = ApiResult<HttpReply> (*)(RouteContext&);

struct Route {
  const char* method;
  const char* pattern;
  RouteHandler handler;
  bool needs_auth;
  size_t body_limit;
};

// The table (route_table.cpp).
[[nodiscard]] const std::vector<Route>& api_routes();

class Api final : public HttpHandler {
 public:
  Api(Store& store, VmEngine& engine, std::string_view openapi_json);

  HttpReply handle(const HttpRequest& request) override;
  [[nodiscard]] size_t body_limit(std::string_view method, std::string_view target) const override;
  [[nodiscard]] HttpResponse error_response(int status, std::string_view code,
                                            std::string_view message) const override;

 private:
  Store& store_;
  VmEngine& engine_;
  std::string_view openapi_json_;
  Router router_;
};

// Shared by the handler files.
[[nodiscard]] HttpResponse json_response(std::string body, int status = 200);
[[nodiscard]] HttpResponse error_response_for(const ApiError& error);
// Store failures are logged with the request id and answered as INTERNAL_ERROR.
[[nodiscard]] ApiError store_error(const RouteContext& ctx, const Error& error);
// The caller's VM named by path parameter `name`: INVALID_VM_ID, VM_NOT_FOUND
// (also for other accounts' VMs) or VM_DELETED.
[[nodiscard]] ApiResult<VmRecord> load_vm(RouteContext& ctx, const std::string& name = "vm_id");
// After a guest call (exec, files, systemd, terminals) succeeded on a VM the
// store has as suspended: the engine resumed it, so the store says running.
void note_resumed(RouteContext& ctx, VmRecord& vm);
[[nodiscard]] ApiResult<SnapshotRecord> load_snapshot(RouteContext& ctx, const std::string& id,
                                                      bool allow_deleted);
[[nodiscard]] ApiResult<std::optional<int64_t>> query_int(const RouteContext& ctx, const std::string& key,
                                                          int64_t min, int64_t max);
[[nodiscard]] ApiResult<bool> query_bool(const RouteContext& ctx, const std::string& key, bool fallback);

// Handlers, grouped by file.
// vm_routes.cpp
ApiResult<HttpReply> list_vms(RouteContext& ctx);
ApiResult<HttpReply> create_vm(RouteContext& ctx);
ApiResult<HttpReply> get_vm(RouteContext& ctx);
ApiResult<HttpReply> delete_vm(RouteContext& ctx);
ApiResult<HttpReply> start_vm(RouteContext& ctx);
ApiResult<HttpReply> stop_vm(RouteContext& ctx);
ApiResult<HttpReply> kill_vm(RouteContext& ctx);
ApiResult<HttpReply> suspend_vm(RouteContext& ctx);
ApiResult<HttpReply> await_vm(RouteContext& ctx);
ApiResult<HttpReply> optimize_vm(RouteContext& ctx);
ApiResult<HttpReply> resize_vm(RouteContext& ctx);
ApiResult<HttpReply> fork_vm(RouteContext& ctx);
ApiResult<HttpReply> snapshot_vm(RouteContext& ctx);
// snapshot_routes.cpp
ApiResult<HttpReply> list_snapshots(RouteContext& ctx);
ApiResult<HttpReply> create_snapshot(RouteContext& ctx);
ApiResult<HttpReply> get_snapshot(RouteContext& ctx);
ApiResult<HttpReply> delete_snapshot(RouteContext& ctx);
ApiResult<HttpReply> update_snapshot(RouteContext& ctx);
ApiResult<HttpReply> get_build(RouteContext& ctx);
ApiResult<HttpReply> list_build_phases(RouteContext& ctx);
ApiResult<HttpReply> get_build_for_vm(RouteContext& ctx);
// guest_routes.cpp
ApiResult<HttpReply> exec_await(RouteContext& ctx);
ApiResult<HttpReply> get_file(RouteContext& ctx);
ApiResult<HttpReply> put_file(RouteContext& ctx);
ApiResult<HttpReply> watch_files(RouteContext& ctx);
ApiResult<HttpReply> stats_stream(RouteContext& ctx);
// systemd_routes.cpp
ApiResult<HttpReply> list_services(RouteContext& ctx);
ApiResult<HttpReply> create_service(RouteContext& ctx);
ApiResult<HttpReply> delete_service(RouteContext& ctx);
ApiResult<HttpReply> service_status(RouteContext& ctx);
ApiResult<HttpReply> service_logs(RouteContext& ctx);
ApiResult<HttpReply> start_services(RouteContext& ctx);
ApiResult<HttpReply> stop_services(RouteContext& ctx);
ApiResult<HttpReply> restart_services(RouteContext& ctx);
ApiResult<HttpReply> list_terminals(RouteContext& ctx);
ApiResult<HttpReply> terminal_logs(RouteContext& ctx);
ApiResult<HttpReply> terminal_output(RouteContext& ctx);
// api.cpp
ApiResult<HttpReply> health(RouteContext& ctx);
ApiResult<HttpReply> openapi(RouteContext& ctx);

}  // namespace forkvm::api
