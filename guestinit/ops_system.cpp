// System requests: users and groups (useradd/groupadd), stats, ready.
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "guestinit/ops.hpp"
#include "guestinit/process.hpp"
#include "guestinit/stats.hpp"
#include "guestinit/stream.hpp"
#include "guestinit/users.hpp"

namespace forkvm::agent {
namespace {

// POSIX portable user/group names: what useradd accepts by default.
bool valid_account_name(std::string_view n) {
  if (n.empty() || n.size() > 32 || n[0] == '-') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

void run_admin(Stream& s, std::vector<std::string> argv, std::string_view what) {
  auto r = run_capture(std::move(argv));
  if (!r.ok()) return s.end_error(code::kSpawnFailed, r.error().message);
  int rc = r->outcome.exit_code;
  if (rc == 0) return s.end_ok();
  // useradd/groupadd exit 9 when the name is taken.
  s.end_error(rc == 9 ? code::kUserExists : code::kCommandFailed,
              fmt::format("{} failed (status {}): {}", what, rc, r->err.substr(0, 1024)));
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void op_user_create(Stream& s, const JsonValue& req) {
  std::string name = str_or(req, "name");
  if (!valid_account_name(name))
    return s.end_error(code::kBadRequest, fmt::format("invalid user name '{}'", name));
  std::vector<std::string> argv = {"useradd"};
  if (bool_or(req, "createHome", true)) argv.emplace_back("-m");
  if (auto uid = get_i64(req, "uid"); uid && *uid >= 0) argv.insert(argv.end(), {"-u", std::to_string(*uid)});
  if (auto g = get_str(req, "group"); g && valid_account_name(*g)) argv.insert(argv.end(), {"-g", *g});
  std::string groups;
  for (const auto& g : str_list(req, "groups"))
    if (valid_account_name(g)) groups += (groups.empty() ? "" : ",") + g;
  if (!groups.empty()) argv.insert(argv.end(), {"-G", groups});
  argv.insert(argv.end(), {"-s", str_or(req, "shell", "/bin/bash")});
  if (auto home = get_str(req, "home"); home && !home->empty()) argv.insert(argv.end(), {"-d", *home});
  if (bool_or(req, "system", false)) argv.emplace_back("-r");
  argv.push_back("--");
  argv.push_back(name);
  run_admin(s, std::move(argv), "useradd");
}

void op_group_create(Stream& s, const JsonValue& req) {
  std::string name = str_or(req, "name");
  if (!valid_account_name(name))
    return s.end_error(code::kBadRequest, fmt::format("invalid group name '{}'", name));
  std::vector<std::string> argv = {"groupadd"};
  if (auto gid = get_i64(req, "gid"); gid && *gid >= 0) argv.insert(argv.end(), {"-g", std::to_string(*gid)});
  if (bool_or(req, "system", false)) argv.emplace_back("-r");
  argv.push_back("--");
  argv.push_back(name);
  run_admin(s, std::move(argv), "groupadd");
}

namespace {

std::optional<CpuTimes> sample_cpu() {
  auto t = read_small_file("/proc/stat");
  return t.ok() ? parse_proc_stat(*t) : std::nullopt;
}

std::string stats_json(const std::optional<CpuTimes>& before, const std::optional<CpuTimes>& after) {
  JsonWriter w;
  w.begin_object().field("timestampMs", now_ms());
  if (before && after) w.field("cpuPercent", cpu_percent(*before, *after));
  if (auto t = read_small_file("/proc/meminfo"); t.ok())
    if (auto m = parse_meminfo(*t)) {
      w.field("memTotalBytes", m->total_bytes).field("memUsedBytes", m->used_bytes);
      w.field("memAvailableBytes", m->available_bytes).field("memFreeBytes", m->free_bytes);
    }
  if (auto t = read_small_file("/proc/loadavg"); t.ok())
    if (auto l = parse_loadavg(*t))
      w.field("load1", l->one).field("load5", l->five).field("load15", l->fifteen);
  if (auto t = read_small_file("/proc/uptime"); t.ok())
    if (auto u = parse_uptime(*t)) w.field("uptimeSeconds", *u);
  return w.end_object().take();
}

// Sleeps up to ms, waking early on cancellation.
void wait_or_cancel(Stream& s, int64_t ms) {
  pollfd p{s.wake_fd(), POLLIN, 0};
  ::poll(&p, 1, static_cast<int>(ms));
  s.drain_wake();
}

}  // namespace

void op_stats(Stream& s, const JsonValue& req) {
  // As the API documents: default 1000 ms, clamped to 100-10000.
  int64_t interval = std::clamp<int64_t>(i64_or(req, "intervalMs", 1000), 100, 10000);
  int64_t count = i64_or(req, "count", 0);  // 0: until cancelled
  // The first sample needs a baseline; a short one keeps the first answer quick.
  auto prev = sample_cpu();
  wait_or_cancel(s, std::min<int64_t>(interval, 200));
  for (int64_t i = 0; (count <= 0 || i < count) && !s.cancelled(); ++i) {
    if (i > 0) wait_or_cancel(s, interval);
    if (s.cancelled()) break;
    auto cur = sample_cpu();
    if (!s.event(stats_json(prev, cur))) return;
    prev = cur;
  }
  s.end_ok();
}

void op_ready(Stream& s, const JsonValue&) {
  std::string state = "unavailable";
  struct stat st {};
  if (::stat("/run/systemd/system", &st) == 0) {
    // is-system-running exits nonzero for every state but "running"; the
    // word it prints is the answer either way.
    if (auto r = run_capture({"systemctl", "is-system-running"}, 10000); r.ok()) {
      state = r->out;
      while (!state.empty() && (state.back() == '\n' || state.back() == ' ')) state.pop_back();
      if (state.empty()) state = "unknown";
    }
  }
  JsonWriter w;
  w.begin_object().field("agentVersion", kAgentVersion).key("protocol").begin_object();
  w.field("major", static_cast<int>(kProtocolMajor))
      .field("minor", static_cast<int>(kProtocolMinor))
      .end_object();
  w.field("systemState", state).field("ready", true);
  if (auto t = read_small_file("/proc/uptime"); t.ok())
    if (auto u = parse_uptime(*t)) w.field("uptimeSeconds", *u);
  s.end_ok(w.end_object().view());
}

}  // namespace forkvm::agent
