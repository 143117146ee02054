// Typed agent calls: systemd, users and groups, stats.
#include <sys/random.h>

#include <ctime>

#include "api/agent/agent_client.hpp"
#include "guestinit/hex.hpp"

namespace forkvm::agent {
namespace {

std::string req_name(std::string_view op, const std::string& name) {
  return JsonWriter().begin_object().field("op", op).field("name", name).end_object().take();
}

}  // namespace

Status AgentClient::systemd_action(std::string_view action, const std::string& name) {
  FORKVM_TRY(simple(req_name(fmt::format("systemd.{}", action), name)));
  return {};
}

Result<ServiceStatus> AgentClient::systemd_status(const std::string& name) {
  auto res = FORKVM_TRY(simple(req_name("systemd.status", name)));
  auto d = FORKVM_TRY(parse_object(res));
  return ServiceStatus{str_or(d, "name"), str_or(d, "activeState"), str_or(d, "subState"),
                       str_or(d, "loadState"), str_or(d, "description")};
}

Result<std::vector<JournalLine>> AgentClient::systemd_logs(const std::string& name, int lines,
                                                           const std::string& since) {
  JsonWriter w;
  w.begin_object().field("op", "systemd.logs").field("name", name).field("lines", lines);
  if (!since.empty()) w.field("since", since);
  std::vector<JournalLine> out;
  FORKVM_TRY(collect_items(w.end_object().view(), [&](const JsonValue& it) {
    JournalLine l{str_or(it, "message"), str_or(it, "timestamp"), str_or(it, "unit"), std::nullopt};
    if (auto p = get_i64(it, "priority")) l.priority = static_cast<int>(*p);
    out.push_back(std::move(l));
  }));
  return out;
}

Result<std::vector<std::string>> AgentClient::systemd_list() {
  auto res = FORKVM_TRY(simple(R"({"op":"systemd.list"})"));
  auto d = FORKVM_TRY(parse_object(res));
  std::vector<std::string> out;
  if (const JsonValue* a = member(d, "services"); a != nullptr && a->IsArray())
    for (const auto& s : a->GetArray()) out.push_back(str_or(s, "name"));
  return out;
}

Status AgentClient::systemd_delete(const std::string& name) {
  FORKVM_TRY(simple(req_name("systemd.delete", name)));
  return {};
}

Status AgentClient::user_create(const std::string& name, const std::vector<std::string>& groups) {
  JsonWriter w;
  w.begin_object().field("op", "user.create").field("name", name).key("groups").begin_array();
  for (const auto& g : groups) w.str(g);
  FORKVM_TRY(simple(w.end_array().end_object().view()));
  return {};
}

Status AgentClient::group_create(const std::string& name) {
  FORKVM_TRY(simple(req_name("group.create", name)));
  return {};
}

Result<IdentityResult> AgentClient::identity(const IdentityRequest& r) {
  std::string seed = r.seed;
  if (seed.empty()) {
    seed.resize(64);
    if (::getrandom(seed.data(), seed.size(), 0) != static_cast<ssize_t>(seed.size()))
      return errno_error("identity: getrandom");
  }
  // Hello first, then the clock: the time sent is as fresh as it can be.
  auto conn = FORKVM_TRY(AgentConnection::open(o_));
  int64_t now = 0;
  if (r.unix_time_ns) {
    now = *r.unix_time_ns;
  } else {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    now = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
  JsonWriter w;
  w.begin_object().field("op", "identity").field("seed", hex_encode(seed)).field("unixTimeNs", now);
  if (!r.hostname.empty()) w.field("hostname", r.hostname);
  w.field("regenerateMachineId", r.regenerate_machine_id);
  StreamHandlers h;
  h.timeout_ms = o_.call_timeout_ms;
  auto res = FORKVM_TRY(conn.run(w.end_object().view(), h));
  auto d = FORKVM_TRY(parse_object(res));
  IdentityResult out;
  out.reseeded = bool_or(d, "reseeded", false);
  out.clock_offset_ns = i64_or(d, "clockOffsetNs", 0);
  out.clock_step_ns = i64_or(d, "clockStepNs", 0);
  out.machine_id = str_or(d, "machineId");
  out.hostname = str_or(d, "hostname");
  return out;
}

Status AgentClient::stats(int64_t interval_ms, const std::function<bool(const StatsSample&)>& on_sample,
                          const std::atomic<bool>* cancel) {
  StreamHandlers h;
  h.timeout_ms = 0;  // a stream: ends by cancellation
  h.cancel = cancel;
  h.on_event = [&](const JsonValue& ev) {
    StatsSample s;
    s.timestamp_ms = i64_or(ev, "timestampMs", 0);
    s.cpu_percent = get_double(ev, "cpuPercent");
    s.mem_total_bytes = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(ev, "memTotalBytes", 0)));
    s.mem_used_bytes = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(ev, "memUsedBytes", 0)));
    s.mem_available_bytes = static_cast<uint64_t>(std::max<int64_t>(0, i64_or(ev, "memAvailableBytes", 0)));
    s.load1 = get_double(ev, "load1").value_or(0);
    s.load5 = get_double(ev, "load5").value_or(0);
    s.load15 = get_double(ev, "load15").value_or(0);
    s.uptime_seconds = get_double(ev, "uptimeSeconds").value_or(0);
    return on_sample(s);
  };
  FORKVM_TRY(call(
      JsonWriter().begin_object().field("op", "stats").field("intervalMs", interval_ms).end_object().view(),
      h));
  return {};
}

}  // namespace forkvm::agent
