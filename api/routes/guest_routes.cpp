// Endpoints served by the agent inside a running guest: exec, files, and the
// two NDJSON streams (watch-files, stats).
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "api/models/base64.hpp"
#include "api/models/json_out.hpp"
#include "api/models/requests.hpp"
#include "api/routes/api.hpp"

namespace forkvm::api {

namespace {

// How often a quiet stream sends a bare "\n" (the SDK skips empty lines).
// It is also how a stream notices a client that went away without a FIN.
constexpr std::chrono::seconds kKeepAlive{15};
constexpr std::chrono::milliseconds kPoll{500};

// Pumps an engine stream into the client until either side ends it.
template <typename T, typename ToJson>
StreamResponse ndjson_stream(std::shared_ptr<EventStream<T>> stream, ToJson to_json) {
  StreamResponse r;
  r.produce = [stream = std::move(stream), to_json](StreamSink& sink) {
    auto last_write = std::chrono::steady_clock::now();
    while (!sink.closed()) {
      auto item = stream->next(kPoll);
      if (!item.ok()) break;  // the source ended (VM stopped, agent gone)
      auto now = std::chrono::steady_clock::now();
      if (*item) {
        if (!sink.write(to_json(**item) + "\n")) break;
        last_write = now;
      } else if (now - last_write >= kKeepAlive) {
        if (!sink.write("\n")) break;
        last_write = now;
      }
    }
    stream->cancel();  // stops the in-guest watcher when the client left
  };
  return r;
}

ApiResult<std::string> file_path(RouteContext& ctx) {
  const std::string& path = ctx.param("filepath");
  FORKVM_CHECK(validate_guest_path(path, ErrorCode::FilesBadRequest));
  return path;
}

}  // namespace

ApiResult<HttpReply> exec_await(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  ExecRequest req = FORKVM_TRY(parse_exec(ctx.request.body));
  ExecResult r = FORKVM_TRY(ctx.engine.exec(ctx.call, vm, req));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object().field("stdout", r.stdout_text).field("stderr", r.stderr_text).key("statusCode");
  if (r.status_code)
    o.num(*r.status_code);
  else
    o.null();
  o.end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> get_file(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string path = FORKVM_TRY(file_path(ctx));
  FileRead f = FORKVM_TRY(ctx.engine.read_file(ctx.call, vm, path));
  note_resumed(ctx, vm);
  JsonOut o;
  o.begin_object();
  if (f.is_directory) {
    o.key("files").begin_array();
    for (const auto& e : f.entries)
      o.begin_object()
          .field("name", e.name)
          .field("kind", e.is_directory ? "directory" : "file")
          .end_object();
    o.end_array();
  } else {
    // Always base64: file bytes need not be UTF-8, and the SDK decodes it.
    o.field("content", base64_encode(f.bytes)).field("encoding", "base64");
  }
  o.end_object();
  return HttpReply{json_response(o.take())};
}

ApiResult<HttpReply> put_file(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::string path = FORKVM_TRY(file_path(ctx));
  WriteFileRequest req = FORKVM_TRY(parse_write_file(ctx.request.body));
  FORKVM_CHECK(ctx.engine.write_file(ctx.call, vm, path, req.bytes));
  note_resumed(ctx, vm);
  return HttpReply{json_response("{}")};
}

ApiResult<HttpReply> watch_files(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  std::shared_ptr<EventStream<FileEvent>> stream = FORKVM_TRY(ctx.engine.watch_files(ctx.call, vm));
  note_resumed(ctx, vm);
  return HttpReply{ndjson_stream(std::move(stream), [](const FileEvent& e) {
    return JsonOut()
        .begin_object()
        .field("eventType", e.event_type)
        .field("filename", e.filename)
        .end_object()
        .take();
  })};
}

ApiResult<HttpReply> stats_stream(RouteContext& ctx) {
  VmRecord vm = FORKVM_TRY(load_vm(ctx));
  // The spec: default 1000 ms, clamped to 100..10000.
  int64_t interval = FORKVM_TRY(query_int(ctx, "interval_ms", 0, INT64_MAX)).value_or(1000);
  interval = std::clamp<int64_t>(interval, 100, 10000);
  std::shared_ptr<EventStream<StatsSample>> stream =
      FORKVM_TRY(ctx.engine.stream_stats(ctx.call, vm, std::chrono::milliseconds(interval)));
  note_resumed(ctx, vm);
  return HttpReply{ndjson_stream(std::move(stream), [](const StatsSample& s) {
    return JsonOut()
        .begin_object()
        .field("timestamp", format_timestamp(s.timestamp_ms))
        .field("memoryTotalBytes", s.memory_total_bytes)
        .field("memoryAvailableBytes", s.memory_available_bytes)
        .field("cpuPercent", s.cpu_percent)
        .end_object()
        .take();
  })};
}

}  // namespace forkvm::api
