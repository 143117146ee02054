// systemd services and terminal sessions inside a running guest.
#include <fmt/format.h>

#include <limits>

#include "api/models/json_out.hpp"
#include "api/models/requests.hpp"
#include "api/routes/api.hpp"

namespace forkvm::api {

namespace {

ApiResult<std::string> service_id(RouteContext& ctx) {
  const std::string& id = ctx.param("service_id");
  FORKVM_CHECK(validate_service_name(id));
  return id;
}

ApiResult<HttpReply> batch(RouteContext& ctx, ServiceAction action) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  BatchServiceRequest req = FORKVM_TRY(parse_batch_services(ctx.request.body));
  auto results = FORKVM_TRY(ctx.engine.service_action(ctx.call, vm, action, req.service_ids));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().key("results").begin_array();
  for (const auto& r : results)
    o.begin_object()
        .field("serviceId", r.service_id)
        .field("success", r.success)
        .field("message", r.message)
        .end_object();
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

}  // namespace

ApiResult<HttpReply> list_services(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  auto services = FORKVM_TRY(ctx.engine.list_services(ctx.call, vm));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().key("services").begin_array();
  for (const auto& s : services) o.begin_object().field("name", s.name).end_object();
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> create_service(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  SystemdUnit unit = FORKVM_TRY(parse_systemd_unit(ctx.request.body));
  ServiceCreated c = FORKVM_TRY(ctx.engine.create_service(ctx.call, vm, unit));
  note_resumed(ctx, vm);
  return HttpReply{json_response(JsonOut()
                                     .begin_object()
                                     .field("success", true)
                                     .field("message", c.message)
                                     .field("serviceName", c.service_name)
                                     .end_object()
                                     .take())};
}

ApiResult<HttpReply> delete_service(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string id = FORKVM_TRY(service_id(ctx));
  std::string message = FORKVM_TRY(ctx.engine.delete_service(ctx.call, vm, id));
  note_resumed(ctx, vm);
  return HttpReply{json_response(
      JsonOut().begin_object().field("success", true).field("message", message).end_object().take())};
}

ApiResult<HttpReply> service_status(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string id = FORKVM_TRY(service_id(ctx));
  ServiceStatus s = FORKVM_TRY(ctx.engine.service_status(ctx.call, vm, id));
  note_resumed(ctx, vm);
  return HttpReply{json_response(JsonOut()
                                     .begin_object()
                                     .field("name", s.name)
                                     .field("activeState", s.active_state)
                                     .field("subState", s.sub_state)
                                     .field("loadState", s.load_state)
                                     .field("description", s.description)
                                     .end_object()
                                     .take())};
}

ApiResult<HttpReply> service_logs(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string id = FORKVM_TRY(service_id(ctx));
  auto lines = FORKVM_TRY(query_int(ctx, "lines", 0, std::numeric_limits<int32_t>::max()));
  std::optional<std::string> since;
  if (auto it = ctx.query.find("since"); it != ctx.query.end() && !it->second.empty()) since = it->second;
  auto logs = FORKVM_TRY(ctx.engine.service_logs(ctx.call, vm, id, lines, since));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().key("logs").begin_array();
  for (const auto& l : logs) {
    o.begin_object().field("message", l.message).field("timestamp", l.timestamp);
    o.field("priority", l.priority).field("unit", l.unit).end_object();
  }
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> start_services(RouteContext& ctx) { return batch(ctx, ServiceAction::start); }
ApiResult<HttpReply> stop_services(RouteContext& ctx) { return batch(ctx, ServiceAction::stop); }
ApiResult<HttpReply> restart_services(RouteContext& ctx) { return batch(ctx, ServiceAction::restart); }

ApiResult<HttpReply> list_terminals(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  auto terminals = FORKVM_TRY(ctx.engine.list_terminals(ctx.call, vm));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().key("terminals").begin_array();
  for (const auto& t : terminals)
    o.begin_object().field("name", t.name).field("status", t.status).field("created", t.created).end_object();
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> terminal_logs(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  auto lines = FORKVM_TRY(ctx.engine.terminal_logs(ctx.call, vm, ctx.param("terminal_id")));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().key("logs").begin_array();
  for (const auto& l : lines)
    o.begin_object().field("line", l.line).field("timestamp", l.timestamp).end_object();
  o.end_array().end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> terminal_output(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string output = FORKVM_TRY(ctx.engine.terminal_output(ctx.call, vm, ctx.param("terminal_id")));
  note_resumed(ctx, vm);
  return HttpReply{json_response(JsonOut().begin_object().field("output", output).end_object().take())};
}

}  // namespace forkvm::api
