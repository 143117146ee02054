// systemd requests: unit files under /etc/systemd/system plus systemctl and
// journalctl. Only units carrying the agent's marker are listed or deleted.
// FORKVM_AGENT_UNIT_DIR overrides the directory (tests).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "guestinit/batcher.hpp"
#include "guestinit/ops.hpp"
#include "guestinit/process.hpp"
#include "guestinit/stream.hpp"
#include "guestinit/systemd_unit.hpp"

namespace forkvm::agent {
namespace {

std::string unit_dir() {
  const char* d = std::getenv("FORKVM_AGENT_UNIT_DIR");
  return d != nullptr && *d != '\0' ? d : "/etc/systemd/system";
}

std::string unit_path(const std::string& name) { return fmt::format("{}/{}.service", unit_dir(), name); }

bool systemd_running() {
  struct stat st {};
  return ::stat("/run/systemd/system", &st) == 0;
}

// Runs systemctl; ends the stream with SYSTEMD_FAILED (or SERVICE_NOT_FOUND)
// when it fails and returns false.
bool systemctl(Stream& s, std::vector<std::string> args, int64_t timeout_ms = 90000) {
  args.insert(args.begin(), "systemctl");
  auto r = run_capture(args, timeout_ms);
  if (!r.ok()) {
    s.end_error(code::kSystemdFailed, r.error().message);
    return false;
  }
  if (r->outcome.exit_code == 0) return true;
  std::string msg = r->err.empty() ? r->out : r->err;
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  if (msg.empty() && r->outcome.timed_out) msg = fmt::format("no answer from systemd within {} s", timeout_ms / 1000);
  if (msg.empty() && r->outcome.signal != 0) msg = fmt::format("systemctl was killed by signal {}", r->outcome.signal);
  if (msg.empty()) msg = fmt::format("exit status {}, no message", r->outcome.exit_code);
  bool missing = msg.find("not found") != std::string::npos || msg.find("not loaded") != std::string::npos;
  s.end_error(missing ? code::kServiceNotFound : code::kSystemdFailed,
              fmt::format("systemctl {}: {}", args.size() > 1 ? args[1] : "", msg));
  return false;
}

// A reload reruns every generator: minutes on a slow (emulated) machine.
bool daemon_reload(Stream& s) { return systemctl(s, {"daemon-reload"}, 180000); }

// Validates "name" from the request; returns "" after ending the stream.
std::string service_name(Stream& s, const JsonValue& req) {
  std::string name = normalize_service_name(str_or(req, "name"));
  if (auto e = validate_service_name(name)) {
    s.end_error(e->code, e->message);
    return {};
  }
  return name;
}

void best_effort(std::vector<std::string> argv) {
  if (!run_capture(std::move(argv)).ok()) return;
}

bool require_systemd(Stream& s) {
  if (systemd_running()) return true;
  s.end_error(code::kSystemdUnavailable, "systemd is not running in this guest");
  return false;
}

Status write_atomic(const std::string& path, std::string_view content) {
  std::string tmp = path + ".forkvm-tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create {}", tmp));
  if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
      ::fsync(fd.get()) != 0) {
    ::unlink(tmp.c_str());
    return errno_error(fmt::format("write {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error(fmt::format("rename {}", path));
  return {};
}

bool is_managed(const std::string& path) {
  auto text = read_small_file(path.c_str(), 1u << 20);
  return text.ok() && text->compare(0, kManagedMarker.size(), kManagedMarker) == 0;
}

}  // namespace

void op_systemd_create(Stream& s, const JsonValue& req) {
  const JsonValue* spec_json = member(req, "spec");
  if (spec_json == nullptr || !spec_json->IsObject())
    return s.end_error(code::kBadRequest, "spec is missing");
  auto parsed = parse_unit_spec(*spec_json);
  if (auto* e = std::get_if<CodedError>(&parsed)) return s.end_error(e->code, e->message);
  const UnitSpec& spec = std::get<UnitSpec>(parsed);
  std::string path = unit_path(spec.name);
  if (::access(path.c_str(), F_OK) == 0 && !bool_or(req, "replace", false))
    return s.end_error(code::kServiceExists, fmt::format("service already exists: {}", spec.name));
  bool dry = bool_or(req, "dryRun", false);  // writes the file only: for tests without systemd
  if (!dry && !require_systemd(s)) return;
  if (auto st = write_atomic(path, render_unit(spec, unit_dir())); !st.ok())
    return s.end_error(code::kIoError, st.error().message);
  if (!dry) {
    std::string unit = spec.name + ".service";
    if (!daemon_reload(s)) return;
    if (spec.enable && !systemctl(s, {"enable", unit})) return;
    // --no-block: a oneshot unit's start would otherwise last as long as its command.
    if (bool_or(req, "start", true) && !systemctl(s, {"start", "--no-block", unit})) return;
  }
  JsonWriter w;
  w.begin_object().field("success", true).field("message", fmt::format("created {}.service", spec.name));
  w.field("serviceName", spec.name).field("unitPath", path).end_object();
  s.end_ok(w.view());
}

void op_systemd_action(Stream& s, const JsonValue& req) {
  std::string op = str_or(req, "op");
  std::string action = op.substr(op.find('.') + 1);
  std::string name = service_name(s, req);
  if (name.empty() || !require_systemd(s)) return;
  std::vector<std::string> args = {action};
  if (bool_or(req, "noBlock", false)) args.emplace_back("--no-block");
  args.push_back(name + ".service");
  if (!systemctl(s, args)) return;
  JsonWriter w;
  w.begin_object()
      .field("serviceId", name)
      .field("success", true)
      .field("message", fmt::format("{}ed", action));
  s.end_ok(w.end_object().view());
}

void op_systemd_status(Stream& s, const JsonValue& req) {
  std::string name = service_name(s, req);
  if (name.empty() || !require_systemd(s)) return;
  auto r = run_capture({"systemctl", "show", name + ".service", "-p", "ActiveState", "-p", "SubState", "-p",
                        "LoadState", "-p", "Description", "-p", "MainPID", "-p", "ExecMainStatus"});
  if (!r.ok() || r->outcome.exit_code != 0)
    return s.end_error(code::kSystemdFailed, r.ok() ? r->err : r.error().message);
  auto props = parse_show_output(r->out);
  if (props["LoadState"] == "not-found")
    return s.end_error(code::kServiceNotFound, fmt::format("service not found: {}", name));
  JsonWriter w;
  w.begin_object()
      .field("name", name)
      .field("activeState", props["ActiveState"])
      .field("subState", props["SubState"]);
  w.field("loadState", props["LoadState"]).field("description", props["Description"]);
  w.field("mainPid", props["MainPID"]).field("execMainStatus", props["ExecMainStatus"]).end_object();
  s.end_ok(w.view());
}

void op_systemd_logs(Stream& s, const JsonValue& req) {
  std::string name = service_name(s, req);
  if (name.empty() || !require_systemd(s)) return;
  int64_t lines = std::clamp<int64_t>(i64_or(req, "lines", 100), 1, 10000);
  std::vector<std::string> args = {"journalctl", "-u", name + ".service",    "-o", "json",
                                   "--no-pager", "-n", std::to_string(lines)};
  if (auto since = get_str(req, "since"); since && !since->empty()) {
    args.emplace_back("--since");
    args.push_back(*since);
  }
  auto r = run_capture(args);
  if (!r.ok()) return s.end_error(code::kSystemdFailed, r.error().message);
  if (r->outcome.exit_code != 0)
    return s.end_error(code::kSystemdFailed, fmt::format("journalctl: {}", r->err));
  ItemBatcher b(s);
  std::string_view text = r->out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (auto e = parse_journal_line(text.substr(0, nl))) {
      JsonWriter w;
      w.begin_object().field("message", e->message).field("timestamp", e->timestamp);
      if (e->priority) w.field("priority", *e->priority);
      w.field("unit", e->unit).end_object();
      if (!b.add(w.view())) return;
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  if (!b.flush()) return;
  s.end_ok(JsonWriter().begin_object().field("count", b.count()).end_object().view());
}

void op_systemd_list(Stream& s, const JsonValue&) {
  std::vector<std::string> names;
  std::string dir = unit_dir();
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.size() > 8 && n.substr(n.size() - 8) == ".service" && is_managed(dir + "/" + n))
        names.push_back(n.substr(0, n.size() - 8));
    }
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  JsonWriter w;
  w.begin_object().key("services").begin_array();
  for (const auto& n : names) w.begin_object().field("name", n).end_object();
  s.end_ok(w.end_array().end_object().view());
}

void op_systemd_delete(Stream& s, const JsonValue& req) {
  std::string name = service_name(s, req);
  if (name.empty()) return;
  std::string path = unit_path(name);
  if (!is_managed(path))
    return s.end_error(code::kServiceNotFound, fmt::format("service not found: {}", name));
  bool dry = bool_or(req, "dryRun", false);
  if (!dry && !require_systemd(s)) return;
  std::string unit = name + ".service";
  if (!dry) {
    // Stop and disable are best effort: a failed or never-started unit is still deleted.
    best_effort({"systemctl", "stop", unit});
    best_effort({"systemctl", "disable", unit});
  }
  if (::unlink(path.c_str()) != 0) return s.end_error(code::kIoError, fmt::format("remove {}", path));
  if (!dry && !daemon_reload(s)) return;
  if (!dry) best_effort({"systemctl", "reset-failed", unit});
  JsonWriter w;
  w.begin_object().field("success", true).field("message", fmt::format("deleted {}", unit)).end_object();
  s.end_ok(w.view());
}

}  // namespace forkvm::agent
