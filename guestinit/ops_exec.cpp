// exec and terminal requests.
#include <sys/stat.h>

#include "guestinit/ansi.hpp"
#include "guestinit/batcher.hpp"
#include "guestinit/ops.hpp"
#include "guestinit/process.hpp"
#include "guestinit/stream.hpp"
#include "guestinit/terminals.hpp"

namespace forkvm::agent {
namespace {

constexpr uint64_t kDefaultMaxOutput = 10u << 20;

// Resolves the request's "user"; false (and the stream ended) when unknown.
bool resolve_user(Stream& s, const JsonValue& req, std::optional<Account>& out) {
  auto user = get_str(req, "user");
  if (!user || user->empty()) return true;
  out = lookup_account(*user);
  if (!out) {
    s.end_error(code::kUserNotFound, fmt::format("user not found: {}", *user));
    return false;
  }
  return true;
}

void exec_in_terminal(Stream& s, const JsonValue& req, const std::string& name, std::optional<Account> acct) {
  TerminalOptions o{std::move(acct), str_or(req, "cwd"), str_map(req, "env")};
  auto t = TerminalManager::instance().get_or_create(name, o);
  if (!t.ok()) return s.end_error(code::kSpawnFailed, t.error().message);
  // The command is typed into the session; its output goes to the
  // terminal's logs, not to this request.
  auto st = (*t)->write(str_or(req, "command") + "\n");
  if (!st.ok()) return s.end_error(code::kIoError, st.error().message);
  JsonWriter w;
  w.begin_object().field("terminal", name).field("written", true).end_object();
  s.end_ok(w.view());
}

}  // namespace

void op_exec(Stream& s, const JsonValue& req) {
  std::string command = str_or(req, "command");
  if (command.find_first_not_of(" \t\r\n") == std::string::npos)
    return s.end_error(code::kExecEmpty, "command is empty");
  std::optional<Account> acct;
  if (!resolve_user(s, req, acct)) return;
  if (auto term = get_str(req, "terminal"); term && !term->empty())
    return exec_in_terminal(s, req, *term, std::move(acct));

  SpawnOptions o;
  o.argv = {"/bin/bash", "-lc", command};
  o.env = str_map(req, "env");
  o.cwd = str_or(req, "cwd");
  o.account = std::move(acct);
  RunLimits lim;
  lim.timeout_ms = std::max<int64_t>(0, i64_or(req, "timeoutMs", 0));
  int64_t cap = i64_or(req, "maxOutputBytes", static_cast<int64_t>(kDefaultMaxOutput));
  lim.max_output = cap > 0 ? static_cast<uint64_t>(cap) : 0;
  auto r = run_process(std::move(o), {}, &s, bool_or(req, "stdin", false), lim,
                       [&](Channel ch, std::string_view b) { return s.data(ch, b); });
  if (!r.ok()) return s.end_error(code::kSpawnFailed, r.error().message);
  JsonWriter w;
  w.begin_object().field("exitCode", r->exit_code).field("signal", r->signal).field("timedOut", r->timed_out);
  w.field("cancelled", r->cancelled)
      .field("stdoutBytes", r->stdout_bytes)
      .field("stderrBytes", r->stderr_bytes);
  w.field("stdoutTruncated", r->stdout_truncated).field("stderrTruncated", r->stderr_truncated);
  w.field("durationMs", r->duration_ms).end_object();
  s.end_ok(w.view());
}

void op_terminal_create(Stream& s, const JsonValue& req) {
  std::string name = str_or(req, "name");
  if (name.empty()) return s.end_error(code::kBadRequest, "terminal name is empty");
  std::optional<Account> acct;
  if (!resolve_user(s, req, acct)) return;
  TerminalOptions o{std::move(acct), str_or(req, "cwd"), str_map(req, "env")};
  auto t = TerminalManager::instance().get_or_create(name, o);
  if (!t.ok()) return s.end_error(code::kSpawnFailed, t.error().message);
  s.end_ok(JsonWriter().begin_object().field("name", name).end_object().view());
}

void op_terminal_list(Stream& s, const JsonValue&) {
  JsonWriter w;
  w.begin_object().key("terminals").begin_array();
  for (const auto& t : TerminalManager::instance().list()) {
    w.begin_object().field("name", t->name()).field("status", t->running() ? "running" : "exited");
    w.field("created", iso8601_ms(t->created_ms())).end_object();
  }
  w.end_array().end_object();
  s.end_ok(w.view());
}

namespace {
std::shared_ptr<Terminal> find_terminal(Stream& s, const JsonValue& req) {
  std::string name = str_or(req, "name");
  auto t = TerminalManager::instance().find(name);
  if (t == nullptr) s.end_error(code::kTerminalNotFound, fmt::format("terminal not found: {}", name));
  return t;
}
}  // namespace

void op_terminal_logs(Stream& s, const JsonValue& req) {
  auto t = find_terminal(s, req);
  if (t == nullptr) return;
  ItemBatcher b(s);
  for (const auto& l : t->logs()) {
    JsonWriter w;
    w.begin_object().field("line", l.line).field("timestamp", iso8601_ms(l.timestamp_ms)).end_object();
    if (!b.add(w.view())) return;
  }
  if (!b.flush()) return;
  s.end_ok(JsonWriter().begin_object().field("count", b.count()).end_object().view());
}

void op_terminal_output(Stream& s, const JsonValue& req) {
  auto t = find_terminal(s, req);
  if (t == nullptr) return;
  std::string out = t->output();
  if (!s.data(Channel::Content, out)) return;
  s.end_ok(JsonWriter().begin_object().field("bytes", out.size()).end_object().view());
}

void op_terminal_input(Stream& s, const JsonValue& req) {
  auto t = find_terminal(s, req);
  if (t == nullptr) return;
  auto st = t->write(str_or(req, "data"));
  if (!st.ok()) return s.end_error(code::kIoError, st.error().message);
  s.end_ok();
}

void op_terminal_close(Stream& s, const JsonValue& req) {
  std::string name = str_or(req, "name");
  if (!TerminalManager::instance().remove(name))
    return s.end_error(code::kTerminalNotFound, fmt::format("terminal not found: {}", name));
  s.end_ok();
}

}  // namespace forkvm::agent
