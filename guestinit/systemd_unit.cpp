// Unit-file generation and systemd output parsing.
#include "guestinit/systemd_unit.hpp"

#include <algorithm>
#include <charconv>

#include "guestinit/ansi.hpp"

namespace forkvm::agent {
namespace {

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// Escapes for a double-quoted systemd value: C escapes, and the specifier
// and variable characters doubled so neither is expanded.
std::string quote_value(std::string_view s, bool dollars) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '%':
        out += "%%";
        break;
      case '$':
        out += dollars ? "$$" : "$";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
          out.push_back(c);
    }
  }
  out += '"';
  return out;
}

std::vector<std::string> unit_list(const JsonValue& v, const char* key, std::optional<CodedError>& err) {
  std::vector<std::string> out;
  for (auto u : str_list(v, key)) {
    if (u.empty() || has_control(u) || u.find_first_of(" \"'\\") != std::string::npos) {
      err = CodedError{"BAD_REQUEST", fmt::format("invalid unit name in {}: '{}'", key, u)};
      return out;
    }
    // As the SDK does: a bare name means a service.
    if (u.find('.') == std::string::npos) u += ".service";
    out.push_back(std::move(u));
  }
  return out;
}

bool valid_env_key(std::string_view k) {
  if (k.empty() || (k[0] >= '0' && k[0] <= '9')) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::optional<int64_t> nonneg(const JsonValue& v, const char* key) {
  auto n = get_i64(v, key);
  if (n && *n < 0) return std::nullopt;
  return n;
}

}  // namespace

std::string normalize_service_name(std::string_view name) {
  constexpr std::string_view suffix = ".service";
  if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix)
    name.remove_suffix(suffix.size());
  return std::string(name);
}

std::optional<CodedError> validate_service_name(std::string_view name) {
  if (name.empty()) return CodedError{"SERVICE_NAME_EMPTY", "service name is empty"};
  if (name.size() > kMaxServiceName)
    return CodedError{"SERVICE_NAME_TOO_LONG",
                      fmt::format("service name is longer than {} characters", kMaxServiceName)};
  bool ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
  if (!ok)
    return CodedError{"SERVICE_NAME_INVALID_CHARS",
                      "service name may contain only letters, digits, '-', '_' and '.'"};
  // systemd's own units and the agent's must not be replaced through the API;
  // a leading '.' or '-' makes hidden files or option-like arguments.
  for (std::string_view p : {"systemd-", "forkvm-", "dbus", "getty", "-", "."})
    if (name.substr(0, p.size()) == p)
      return CodedError{"SERVICE_NAME_INVALID_PREFIX",
                        fmt::format("service names may not start with '{}'", p)};
  return std::nullopt;
}

std::variant<UnitSpec, CodedError> parse_unit_spec(const JsonValue& v) {
  UnitSpec s;
  s.name = normalize_service_name(str_or(v, "name"));
  if (auto e = validate_service_name(s.name)) return *e;
  std::string mode = str_or(v, "mode", "service");
  if (mode != "service" && mode != "oneshot")
    return CodedError{"BAD_REQUEST", fmt::format("unknown mode '{}'", mode)};
  s.oneshot = mode == "oneshot";
  s.exec = str_list(v, "exec");
  if (s.exec.empty()) return CodedError{"BAD_REQUEST", "exec must list at least one command"};
  for (const auto& e : s.exec)
    if (e.find_first_not_of(" \t") == std::string::npos)
      return CodedError{"BAD_REQUEST", "empty exec command"};
  s.env = str_map(v, "env");
  for (const auto& [k, val] : s.env)
    if (!valid_env_key(k))
      return CodedError{"BAD_REQUEST", fmt::format("invalid environment variable name '{}'", k)};
  s.user = str_or(v, "user");
  s.group = str_or(v, "group");
  s.workdir = str_or(v, "workdir");
  for (const auto* f : {&s.user, &s.group})
    if (has_control(*f) || f->find_first_of(" \"'\\%$") != std::string::npos)
      return CodedError{"BAD_REQUEST", fmt::format("invalid user or group '{}'", *f)};
  if (has_control(s.workdir)) return CodedError{"BAD_REQUEST", "invalid workdir"};
  std::optional<CodedError> err;
  s.after = unit_list(v, "after", err);
  s.requires_units = unit_list(v, "requires", err);
  s.on_failure = unit_list(v, "onFailure", err);
  s.wanted_by = unit_list(v, "wantedBy", err);
  if (err) return *err;
  if (!member(v, "wantedBy") || member(v, "wantedBy")->IsNull()) s.wanted_by = {"multi-user.target"};
  s.enable = bool_or(v, "enable", true);
  s.timeout_sec = nonneg(v, "timeoutSec");
  s.watchdog_sec = nonneg(v, "watchdogSec");
  s.delete_after_success = bool_or(v, "deleteAfterSuccess", false);
  s.remain_after_exit = bool_or(v, "remainAfterExit", true);
  s.ready_signal = bool_or(v, "readySignal", false);
  if (const JsonValue* rp = member(v, "restartPolicy"); rp != nullptr && rp->IsObject()) {
    RestartPolicy p{str_or(*rp, "policy", "no"), nonneg(*rp, "restartSec"), nonneg(*rp, "startLimitBurst"),
                    nonneg(*rp, "startLimitIntervalSec")};
    if (p.policy != "no" && p.policy != "on-failure" && p.policy != "always" && p.policy != "on-abnormal")
      return CodedError{"BAD_REQUEST", fmt::format("unknown restart policy '{}'", p.policy)};
    s.restart = p;
  }
  return s;
}

std::string exec_line(std::string_view command) { return "/bin/bash -c " + quote_value(command, true); }

std::string render_unit(const UnitSpec& s, std::string_view unit_dir) {
  std::string u;
  auto line = [&](std::string_view k, std::string_view val) { u += fmt::format("{}={}\n", k, val); };
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : " ") + x;
    return out;
  };
  u += fmt::format("{}; generated from a SystemdUnitSpec. Edits are lost on re-create.\n", kManagedMarker);
  u += "[Unit]\n";
  line("Description", fmt::format("{} (forkvm)", s.name));
  if (!s.after.empty()) line("After", join(s.after));
  if (!s.requires_units.empty()) line("Requires", join(s.requires_units));
  if (!s.on_failure.empty()) line("OnFailure", join(s.on_failure));
  if (s.restart && s.restart->start_limit_burst)
    line("StartLimitBurst", std::to_string(*s.restart->start_limit_burst));
  if (s.restart && s.restart->start_limit_interval_sec)
    line("StartLimitIntervalSec", std::to_string(*s.restart->start_limit_interval_sec));

  u += "\n[Service]\n";
  line("Type", s.oneshot ? "oneshot" : s.ready_signal ? "notify" : "simple");
  // bash -c is the main process: it must be allowed to pass on the child's sd_notify.
  if (!s.oneshot && s.ready_signal) line("NotifyAccess", "all");
  if (s.oneshot) {
    line("RemainAfterExit", s.remain_after_exit ? "yes" : "no");
    for (const auto& e : s.exec) line("ExecStart", exec_line(e));
  } else {
    // Only oneshot units may have several ExecStart=; the commands before
    // the last run in order as ExecStartPre=, the last is the service.
    for (size_t i = 0; i + 1 < s.exec.size(); ++i) line("ExecStartPre", exec_line(s.exec[i]));
    line("ExecStart", exec_line(s.exec.back()));
  }
  for (const auto& [k, val] : s.env) line("Environment", quote_value(k + "=" + val, false));
  if (!s.user.empty()) line("User", s.user);
  if (!s.group.empty()) line("Group", s.group);
  if (!s.workdir.empty()) line("WorkingDirectory", quote_value(s.workdir, false));
  if (s.timeout_sec) line("TimeoutSec", std::to_string(*s.timeout_sec));
  if (s.watchdog_sec) line("WatchdogSec", std::to_string(*s.watchdog_sec));
  if (s.restart && !s.oneshot) {
    line("Restart", s.restart->policy);
    if (s.restart->restart_sec) line("RestartSec", std::to_string(*s.restart->restart_sec));
  }
  if (s.oneshot && s.delete_after_success) {
    // Runs only when every ExecStart= succeeded. --no-block: a reload
    // waited on from inside a starting unit would deadlock.
    std::string unit_path = fmt::format("{}/{}.service", unit_dir, s.name);
    line("ExecStartPost",
         exec_line(
             fmt::format("systemctl disable {0}.service; rm -f '{1}'; systemctl --no-block daemon-reload",
                         s.name, unit_path)));
  }
  u += "\n[Install]\n";
  line("WantedBy", join(s.wanted_by));
  return u;
}

std::optional<JournalEntry> parse_journal_line(std::string_view line) {
  auto doc = parse_object(line);
  if (!doc.ok()) return std::nullopt;
  const JsonValue& d = *doc;
  JournalEntry e;
  const JsonValue* msg = member(d, "MESSAGE");
  if (msg == nullptr) return std::nullopt;
  if (msg->IsString()) {
    e.message.assign(msg->GetString(), msg->GetStringLength());
  } else if (msg->IsArray()) {
    // journalctl prints non-UTF-8 messages as an array of byte values.
    for (const auto& b : msg->GetArray())
      if (b.IsUint() && b.GetUint() < 256) e.message.push_back(static_cast<char>(b.GetUint()));
  }
  std::string ts = str_or(d, "__REALTIME_TIMESTAMP");
  int64_t us = 0;
  auto [p, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), us);
  if (ec == std::errc{} && p == ts.data() + ts.size() && !ts.empty()) e.timestamp = iso8601_ms(us / 1000);
  std::string prio = str_or(d, "PRIORITY");
  int pr = 0;
  auto [pp, pec] = std::from_chars(prio.data(), prio.data() + prio.size(), pr);
  if (pec == std::errc{} && pp == prio.data() + prio.size() && !prio.empty()) e.priority = pr;
  e.unit = str_or(d, "_SYSTEMD_UNIT", str_or(d, "UNIT"));
  return e;
}

std::map<std::string, std::string> parse_show_output(std::string_view text) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view l = text.substr(0, nl);
    size_t eq = l.find('=');
    if (eq != std::string_view::npos && eq > 0)
      out[std::string(l.substr(0, eq))] = std::string(l.substr(eq + 1));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace forkvm::agent
