// Typed agent calls over AgentConnection. Every call bounds what it keeps
// in memory: exec output by max_output_bytes, lists by kMaxItems.
#include "api/agent/agent_client.hpp"

namespace forkvm::agent {
namespace {

constexpr size_t kMaxItems = 1'000'000;
constexpr uint64_t kMaxListBytes = 256u << 20;

Error coded(std::string_view code, std::string_view msg) { return make_error("{}: {}", code, msg); }

std::string req_path(std::string_view op, const std::string& path, const std::string& user) {
  JsonWriter w;
  w.begin_object().field("op", op).field("path", path);
  if (!user.empty()) w.field("user", user);
  return w.end_object().take();
}

std::string req_name(std::string_view op, const std::string& name) {
  return JsonWriter().begin_object().field("op", op).field("name", name).end_object().take();
}

std::string exec_json(const ExecRequest& r) {
  JsonWriter w;
  w.begin_object().field("op", "exec").field("command", r.command);
  if (!r.env.empty()) {
    w.key("env").begin_object();
    for (const auto& [k, v] : r.env) w.field(k, v);
    w.end_object();
  }
  if (!r.cwd.empty()) w.field("cwd", r.cwd);
  if (!r.user.empty()) w.field("user", r.user);
  if (r.timeout_ms > 0) w.field("timeoutMs", r.timeout_ms);
  w.field("maxOutputBytes", r.max_output_bytes);
  if (r.stdin_data) w.field("stdin", true);
  if (!r.terminal.empty()) w.field("terminal", r.terminal);
  return w.end_object().take();
}

ExecResult exec_result(const JsonValue& d) {
  ExecResult r;
  r.exit_code = static_cast<int>(i64_or(d, "exitCode", -1));
  r.signal = static_cast<int>(i64_or(d, "signal", 0));
  r.timed_out = bool_or(d, "timedOut", false);
  r.cancelled = bool_or(d, "cancelled", false);
  r.stdout_truncated = bool_or(d, "stdoutTruncated", false);
  r.stderr_truncated = bool_or(d, "stderrTruncated", false);
  r.stdout_bytes = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(d, "stdoutBytes", 0)));
  r.stderr_bytes = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(d, "stderrBytes", 0)));
  r.duration_ms = i64_or(d, "durationMs", 0);
  return r;
}

}  // namespace

Result<std::string> AgentClient::call(std::string_view request_json, StreamHandlers& h) {
  auto conn = FORKVM_TRY(AgentConnection::open(o_));
  return conn.run(request_json, h);
}

Result<std::string> AgentClient::simple(std::string_view request_json) {
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms;
  return call(request_json, h);
}

Result<std::string> AgentClient::collect_items(std::string_view request_json,
                                               const std::function<void(const JsonValue&)>& on_item) {
  size_t n = 0;
  bool overflow = false;
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms;
  h.max_total_bytes = kMaxListBytes;
  h.on_event = [&](const JsonValue& ev) {
    const JsonValue* items = member(ev, "items");
    if (items == nullptr || !items->IsArray()) return true;
    for (const auto& it : items->GetArray()) {
      if (++n > kMaxItems) {
        overflow = true;
        return false;
      }
      on_item(it);
    }
    return true;
  };
  auto r = call(request_json, h);
  if (overflow) return coded(kAgentProtocolError, "the agent sent more than the item limit");
  return r;
}

Result<HelloInfo> AgentClient::hello() {
  auto conn = FORKVM_TRY(AgentConnection::open(o_));
  return conn.hello();
}

Result<ReadyInfo> AgentClient::ready() {
  auto res = FORKVM_TRY(simple(R"({"op":"ready"})"));
  auto d = FORKVM_TRY(parse_object(res));
  ReadyInfo r;
  r.agent_version = str_or(d, "agentVersion");
  if (const JsonValue* p = member(d, "protocol")) {
    r.protocol_major = static_cast<int>(i64_or(*p, "major", 0));
    r.protocol_minor = static_cast<int>(i64_or(*p, "minor", 0));
  }
  r.system_state = str_or(d, "systemState");
  r.uptime_seconds = get_double(d, "uptimeSeconds").value_or(0);
  return r;
}

Result<ExecResult> AgentClient::exec_stream(const ExecRequest& r, const OutputSink& out,
                                            const std::atomic<bool>* cancel) {
  StreamHandlers h;
  h.on_data = [&](Channel ch, std::string_view b) {
    return ch == Channel::Stdout || ch == Channel::Stderr ? out(ch, b) : true;
  };
  h.cancel = cancel;
  // The agent enforces the command's timeout; the client's deadline only
  // catches an agent that never answers.
  h.timeout_ms = r.timeout_ms > 0 ? r.timeout_ms + 10000 : o_.exec_default_timeout_ms;
  bool sent = false;
  if (r.stdin_data) {
    h.next_input = [&]() -> std::optional<std::string> {
      if (sent) return std::nullopt;
      sent = true;
      return *r.stdin_data;
    };
  }
  auto res = FORKVM_TRY(call(exec_json(r), h));
  auto d = FORKVM_TRY(parse_object(res));
  return exec_result(d);
}

Result<ExecResult> AgentClient::exec(const ExecRequest& r) {
  std::string out, err;
  bool out_trunc = false, err_trunc = false;
  // The agent caps output too; this cap holds against an agent that does not.
  uint64_t cap = r.max_output_bytes == 0 ? (64u << 20) : r.max_output_bytes;
  auto append = [&](std::string& buf, bool& trunc, std::string_view b) {
    size_t room = buf.size() >= cap ? 0 : static_cast<size_t>(cap - buf.size());
    if (b.size() > room) trunc = true;
    buf.append(b.substr(0, room));
  };
  auto res = exec_stream(r, [&](Channel ch, std::string_view b) {
    if (ch == Channel::Stdout)
      append(out, out_trunc, b);
    else
      append(err, err_trunc, b);
    return true;
  });
  if (!res.ok()) return res;
  res->stdout_data = std::move(out);
  res->stderr_data = std::move(err);
  res->stdout_truncated = res->stdout_truncated || out_trunc;
  res->stderr_truncated = res->stderr_truncated || err_trunc;
  return res;
}

Result<uint64_t> AgentClient::read_file(const std::string& path, const ByteSink& sink,
                                        const std::string& user) {
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms * 10;  // large files take a while
  h.on_data = [&](Channel ch, std::string_view b) { return ch != Channel::Content || sink(b); };
  auto res = FORKVM_TRY(call(req_path("file.read", path, user), h));
  auto d = FORKVM_TRY(parse_object(res));
  return static_cast<uint64_t>(std::max<int64_t>(0, i64_or(d, "bytes", 0)));
}

Result<std::string> AgentClient::read_file_all(const std::string& path, uint64_t max_bytes,
                                               const std::string& user) {
  std::string out;
  bool too_big = false;
  auto r = read_file(
      path,
      [&](std::string_view b) {
        if (out.size() + b.size() > max_bytes) {
          too_big = true;
          return false;
        }
        out.append(b);
        return true;
      },
      user);
  if (too_big) return coded("FILE_TOO_LARGE", fmt::format("{} is larger than {} bytes", path, max_bytes));
  if (!r.ok()) return r.error();
  return out;
}

Result<uint64_t> AgentClient::write_file(const WriteFileRequest& r, const ByteSource& source) {
  JsonWriter w;
  w.begin_object().field("op", "file.write").field("path", r.path).field("mkdirs", r.mkdirs);
  if (!r.user.empty()) w.field("user", r.user);
  if (r.mode) w.field("mode", *r.mode);
  if (!r.owner.empty()) w.field("owner", r.owner);
  if (!r.group.empty()) w.field("group", r.group);
  w.end_object();
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms * 10;
  h.next_input = source;
  auto res = FORKVM_TRY(call(w.view(), h));
  auto d = FORKVM_TRY(parse_object(res));
  return static_cast<uint64_t>(std::max<int64_t>(0, i64_or(d, "bytes", 0)));
}

Result<uint64_t> AgentClient::write_file(const WriteFileRequest& r, std::string_view content) {
  size_t off = 0;
  return write_file(r, [&]() -> std::optional<std::string> {
    if (off >= content.size()) return std::nullopt;
    size_t n = std::min(content.size() - off, kDataChunk);
    std::string chunk(content.substr(off, n));
    off += n;
    return chunk;
  });
}

Result<std::vector<DirEntry>> AgentClient::list_dir(const std::string& path, const std::string& user) {
  std::vector<DirEntry> out;
  FORKVM_TRY(collect_items(req_path("file.list", path, user), [&](const JsonValue& it) {
    out.push_back({str_or(it, "name"), str_or(it, "kind", "other")});
  }));
  return out;
}

Result<FileStat> AgentClient::stat(const std::string& path, const std::string& user) {
  auto res = FORKVM_TRY(simple(req_path("file.stat", path, user)));
  auto d = FORKVM_TRY(parse_object(res));
  FileStat s;
  s.size = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(d, "size", 0)));
  s.kind = str_or(d, "kind", "other");
  s.mode = static_cast<uint32_t>(i64_or(d, "mode", 0) & 07777);
  s.uid = static_cast<uint32_t>(i64_or(d, "uid", 0));
  s.gid = static_cast<uint32_t>(i64_or(d, "gid", 0));
  s.user = str_or(d, "user");
  s.group = str_or(d, "group");
  s.mtime_ms = i64_or(d, "mtimeMs", 0);
  s.mtime = str_or(d, "mtime");
  s.link_target = str_or(d, "linkTarget");
  return s;
}

Status AgentClient::mkdir(const std::string& path, bool parents, const std::string& user) {
  JsonWriter w;
  w.begin_object().field("op", "file.mkdir").field("path", path).field("parents", parents);
  if (!user.empty()) w.field("user", user);
  FORKVM_TRY(simple(w.end_object().view()));
  return {};
}

Status AgentClient::remove(const std::string& path, bool recursive, const std::string& user) {
  JsonWriter w;
  w.begin_object().field("op", "file.remove").field("path", path).field("recursive", recursive);
  if (!user.empty()) w.field("user", user);
  FORKVM_TRY(simple(w.end_object().view()));
  return {};
}

Status AgentClient::watch(const std::string& path, const std::function<bool(const WatchEvent&)>& on_event,
                          const std::atomic<bool>* cancel, const std::function<void()>& on_ready) {
  StreamHandlers h;
  h.timeout_ms = 0;  // ends by cancellation
  h.cancel = cancel;
  h.on_event = [&](const JsonValue& ev) {
    if (bool_or(ev, "ready", false)) {
      if (on_ready) on_ready();
      return true;
    }
    WatchEvent e{str_or(ev, "eventType"), str_or(ev, "filename"), str_or(ev, "oldFilename")};
    return on_event(e);
  };
  FORKVM_TRY(
      call(JsonWriter().begin_object().field("op", "watch").field("path", path).end_object().view(), h));
  return {};
}

Status AgentClient::terminal_create(const std::string& name, const std::string& user) {
  JsonWriter w;
  w.begin_object().field("op", "terminal.create").field("name", name);
  if (!user.empty()) w.field("user", user);
  FORKVM_TRY(simple(w.end_object().view()));
  return {};
}

Result<std::vector<TerminalInfo>> AgentClient::terminals() {
  auto res = FORKVM_TRY(simple(R"({"op":"terminal.list"})"));
  auto d = FORKVM_TRY(parse_object(res));
  std::vector<TerminalInfo> out;
  if (const JsonValue* a = member(d, "terminals"); a != nullptr && a->IsArray())
    for (const auto& t : a->GetArray())
      out.push_back({str_or(t, "name"), str_or(t, "status"), str_or(t, "created")});
  return out;
}

Result<std::vector<TerminalLine>> AgentClient::terminal_logs(const std::string& name) {
  std::vector<TerminalLine> out;
  FORKVM_TRY(collect_items(req_name("terminal.logs", name), [&](const JsonValue& it) {
    out.push_back({str_or(it, "line"), str_or(it, "timestamp")});
  }));
  return out;
}

Result<std::string> AgentClient::terminal_output(const std::string& name) {
  std::string out;
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms;
  h.on_data = [&](Channel, std::string_view b) {
    if (out.size() + b.size() > (4u << 20)) return false;  // the agent's ring is 1 MiB
    out.append(b);
    return true;
  };
  FORKVM_TRY(call(req_name("terminal.output", name), h));
  return out;
}

Status AgentClient::terminal_input(const std::string& name, std::string_view data) {
  FORKVM_TRY(simple(JsonWriter()
                        .begin_object()
                        .field("op", "terminal.input")
                        .field("name", name)
                        .field("data", data)
                        .end_object()
                        .view()));
  return {};
}

Status AgentClient::terminal_close(const std::string& name) {
  FORKVM_TRY(simple(req_name("terminal.close", name)));
  return {};
}

Result<std::string> AgentClient::systemd_create(std::string_view spec_json, bool start) {
  // Parsed only to refuse non-objects; the agent validates the fields.
  FORKVM_TRY(parse_object(spec_json));
  JsonWriter w;
  w.begin_object().field("op", "systemd.create").field("start", start).key("spec").raw(spec_json);
  return simple(w.end_object().view());
}

}  // namespace forkvm::agent
