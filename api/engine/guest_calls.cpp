// LocalEngine's calls into a running guest, through its forkvm-agent.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <thread>

#include <fmt/format.h>

#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"
#include "api/models/json_out.hpp"

namespace forkvm::engine {
namespace {

constexpr uint64_t kMaxFileRead = 256ULL << 20;  // the API answers a file in one body
constexpr int64_t kExecSlackMs = 30000;          // transport allowance on top of an exec's timeout

// An EventStream fed by a thread that runs one blocking agent call. The
// thread owns the shared state, so the stream can go away first.
template <typename T>
class ThreadStream final : public EventStream<T> {
 public:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<T> items;
    bool ended = false;
    std::optional<ApiError> error;
    std::atomic<bool> cancel{false};
    void push(T item) {
      std::lock_guard lock(mu);
      if (items.size() < 10000) items.push_back(std::move(item));  // a stalled reader drops, never grows
      cv.notify_all();
    }
  };
  using Body = std::function<Status(State&)>;

  explicit ThreadStream(Body body) : s_(std::make_shared<State>()) {
    std::thread([s = s_, body = std::move(body)] {
      Status st = body(*s);
      std::lock_guard lock(s->mu);
      s->ended = true;
      if (!st.ok()) s->error = from_agent_error(st.error());
      s->cv.notify_all();
    }).detach();
  }
  ~ThreadStream() override { cancel(); }

  ApiResult<std::optional<T>> next(std::chrono::milliseconds max_wait) override {
    std::unique_lock lock(s_->mu);
    s_->cv.wait_for(lock, max_wait, [&] { return !s_->items.empty() || s_->ended; });
    if (!s_->items.empty()) {
      T item = std::move(s_->items.front());
      s_->items.pop_front();
      return std::optional<T>(std::move(item));
    }
    if (s_->ended) {
      return s_->error ? *s_->error : api_error(ErrorCode::ServiceUnavailable, "the stream ended");
    }
    return std::optional<T>();
  }
  void cancel() override { s_->cancel = true; }

 private:
  std::shared_ptr<State> s_;
};

std::string unit_json(const SystemdUnit& u) {
  JsonOut o;
  o.begin_object().field("name", u.name);
  if (!u.mode.empty()) o.field("mode", u.mode);
  o.key("exec").begin_array();
  for (const auto& e : u.exec) o.str(e);
  o.end_array();
  if (!u.env.empty()) {
    o.key("env").begin_object();
    for (const auto& [k, v] : u.env) o.field(k, v);
    o.end_object();
  }
  if (u.user) o.field("user", *u.user);
  if (u.group) o.field("group", *u.group);
  if (u.workdir) o.field("workdir", *u.workdir);
  auto list = [&](std::string_view key, const std::optional<std::vector<std::string>>& v) {
    if (!v) return;
    o.key(key).begin_array();
    for (const auto& x : *v) o.str(x);
    o.end_array();
  };
  list("after", u.after);
  list("requires", u.requires_);
  list("onFailure", u.on_failure);
  list("wantedBy", u.wanted_by);
  auto flag = [&](std::string_view key, const std::optional<bool>& v) {
    if (v) o.key(key).boolean(*v);
  };
  flag("enable", u.enable);
  flag("deleteAfterSuccess", u.delete_after_success);
  flag("remainAfterExit", u.remain_after_exit);
  flag("readySignal", u.ready_signal);
  if (u.timeout_sec) o.key("timeoutSec").num(*u.timeout_sec);
  if (u.watchdog_sec) o.key("watchdogSec").num(*u.watchdog_sec);
  if (u.restart_policy) {
    o.key("restartPolicy").begin_object().field("policy", u.restart_policy->policy);
    if (u.restart_policy->restart_sec) o.key("restartSec").num(*u.restart_policy->restart_sec);
    if (u.restart_policy->start_limit_burst) o.key("startLimitBurst").num(*u.restart_policy->start_limit_burst);
    if (u.restart_policy->start_limit_interval_sec)
      o.key("startLimitIntervalSec").num(*u.restart_policy->start_limit_interval_sec);
    o.end_object();
  }
  o.end_object();
  return o.take();
}

std::string user_of(const CallContext& ctx) { return ctx.linux_user.value_or(""); }

}  // namespace

std::string LocalEngine::watch_root(const CallContext& ctx, const VmRecord& vm) const {
  std::string workdir = read_text_file(vm_dir(vm.id) + "/workdir");
  if (!workdir.empty()) return workdir;
  std::string user = user_of(ctx);
  return user.empty() || user == "root" ? "/root" : "/home/" + user;
}

ApiResult<ExecResult> LocalEngine::exec(const CallContext& ctx, const VmRecord& vm, const ExecRequest& req) {
  auto live = FORKVM_TRY(running(vm));
  agent::ExecRequest r;
  r.command = req.command;
  r.user = user_of(ctx);
  r.timeout_ms = req.timeout_ms.value_or(0);
  r.terminal = req.terminal.value_or("");
  // The VM's workdir, else root's home: where watch-files looks (watch_root).
  r.cwd = read_text_file(vm_dir(vm.id) + "/workdir");
  if (r.cwd.empty() && (r.user.empty() || r.user == "root")) r.cwd = "/root";
  int64_t call_timeout = r.timeout_ms > 0 ? r.timeout_ms + kExecSlackMs : 300000 + kExecSlackMs;
  auto res = FORKVM_TRY(from_agent(live->agent(call_timeout).exec(r)));
  if (res.timed_out)
    return api_error(ErrorCode::ExecTimedOut,
                     fmt::format("the command did not finish within {} ms and was killed", r.timeout_ms));
  ExecResult out;
  out.stdout_text = std::move(res.stdout_data);
  out.stderr_text = std::move(res.stderr_data);
  // A command typed into a terminal runs on in its session: no exit status here.
  if (r.terminal.empty()) out.status_code = res.signal != 0 ? 128 + res.signal : res.exit_code;
  return out;
}

ApiResult<FileRead> LocalEngine::read_file(const CallContext& ctx, const VmRecord& vm, const std::string& path) {
  auto live = FORKVM_TRY(running(vm));
  auto agent = live->agent(120000);
  auto st = FORKVM_TRY(from_agent(agent.stat(path, user_of(ctx))));
  FileRead out;
  if (st.kind == "directory") {
    out.is_directory = true;
    for (auto& e : FORKVM_TRY(from_agent(agent.list_dir(path, user_of(ctx)))))
      out.entries.push_back(DirEntry{std::move(e.name), e.kind == "directory"});
    return out;
  }
  if (st.size > kMaxFileRead)
    return api_error(ErrorCode::FilesBadRequest,
                     fmt::format("{} is {} bytes; this endpoint returns files up to {} bytes", path, st.size,
                                 kMaxFileRead));
  out.bytes = FORKVM_TRY(from_agent(agent.read_file_all(path, kMaxFileRead, user_of(ctx))));
  return out;
}

ApiStatus LocalEngine::write_file(const CallContext& ctx, const VmRecord& vm, const std::string& path,
                                  const std::string& bytes) {
  auto live = FORKVM_TRY(running(vm));
  agent::WriteFileRequest w{.path = path, .user = user_of(ctx)};
  auto r = live->agent(120000).write_file(w, bytes);
  if (!r.ok()) return from_agent_error(r.error());
  return {};
}

ApiResult<std::unique_ptr<EventStream<FileEvent>>> LocalEngine::watch_files(const CallContext& ctx,
                                                                            const VmRecord& vm) {
  auto live = FORKVM_TRY(running(vm));
  std::string root = watch_root(ctx, vm);
  auto agent = std::make_shared<agent::AgentClient>(live->agent(3600000));
  using Stream = ThreadStream<FileEvent>;
  return std::unique_ptr<EventStream<FileEvent>>(std::make_unique<Stream>([agent, root](Stream::State& s) {
    return agent->watch(
        root,
        [&](const agent::WatchEvent& e) {
          s.push(FileEvent{e.event_type == "move" ? "rename" : e.event_type, e.filename});
          return true;
        },
        &s.cancel);
  }));
}

ApiResult<std::unique_ptr<EventStream<StatsSample>>> LocalEngine::stream_stats(const CallContext& /*ctx*/,
                                                                               const VmRecord& vm,
                                                                               std::chrono::milliseconds interval) {
  auto live = FORKVM_TRY(running(vm));
  auto agent = std::make_shared<agent::AgentClient>(live->agent(3600000));
  using Stream = ThreadStream<StatsSample>;
  int64_t every = interval.count();
  return std::unique_ptr<EventStream<StatsSample>>(std::make_unique<Stream>([agent, every](Stream::State& s) {
    return agent->stats(
        every,
        [&](const agent::StatsSample& a) {
          StatsSample out;
          out.timestamp_ms = a.timestamp_ms;
          out.memory_total_bytes = a.mem_total_bytes;
          out.memory_available_bytes = a.mem_available_bytes;
          out.cpu_percent = a.cpu_percent.value_or(0);
          s.push(out);
          return true;
        },
        &s.cancel);
  }));
}

ApiResult<std::vector<ServiceInfo>> LocalEngine::list_services(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto live = FORKVM_TRY(running(vm));
  std::vector<ServiceInfo> out;
  for (auto& name : FORKVM_TRY(from_agent(live->agent().systemd_list()))) out.push_back({std::move(name)});
  return out;
}

ApiResult<ServiceCreated> LocalEngine::create_service_on(LiveVm& vm, const SystemdUnit& unit) {
  auto msg = FORKVM_TRY(from_agent(vm.agent(120000).systemd_create(unit_json(unit))));
  return ServiceCreated{unit.name, msg.empty() ? "service " + unit.name + " created" : msg};
}

ApiResult<ServiceCreated> LocalEngine::create_service(const CallContext& /*ctx*/, const VmRecord& vm,
                                                      const SystemdUnit& unit) {
  auto live = FORKVM_TRY(running(vm));
  return create_service_on(*live, unit);
}

ApiResult<std::string> LocalEngine::delete_service(const CallContext& /*ctx*/, const VmRecord& vm,
                                                   const std::string& service_id) {
  auto live = FORKVM_TRY(running(vm));
  auto s = live->agent(120000).systemd_delete(service_id);
  if (!s.ok()) return from_agent_error(s.error());
  return "service " + service_id + " deleted";
}

ApiResult<ServiceStatus> LocalEngine::service_status(const CallContext& /*ctx*/, const VmRecord& vm,
                                                     const std::string& service_id) {
  auto live = FORKVM_TRY(running(vm));
  auto st = FORKVM_TRY(from_agent(live->agent().systemd_status(service_id)));
  return ServiceStatus{st.name, st.active_state, st.sub_state, st.load_state, st.description};
}

ApiResult<std::vector<JournalEntry>> LocalEngine::service_logs(const CallContext& /*ctx*/, const VmRecord& vm,
                                                               const std::string& service_id,
                                                               std::optional<int64_t> lines,
                                                               const std::optional<std::string>& since) {
  auto live = FORKVM_TRY(running(vm));
  int n = static_cast<int>(std::clamp<int64_t>(lines.value_or(100), 1, 10000));
  auto got = FORKVM_TRY(from_agent(live->agent().systemd_logs(service_id, n, since.value_or(""))));
  std::vector<JournalEntry> out;
  for (auto& l : got) {
    JournalEntry e;
    e.message = std::move(l.message);
    e.timestamp = std::move(l.timestamp);
    if (l.priority) e.priority = std::to_string(*l.priority);
    e.unit = std::move(l.unit);
    out.push_back(std::move(e));
  }
  return out;
}

ApiResult<std::vector<ServiceActionResult>> LocalEngine::service_action(
    const CallContext& /*ctx*/, const VmRecord& vm, ServiceAction action, const std::vector<std::string>& service_ids) {
  auto live = FORKVM_TRY(running(vm));
  std::string_view verb = action == ServiceAction::start ? "start" : action == ServiceAction::stop ? "stop" : "restart";
  std::vector<ServiceActionResult> out;
  for (const auto& id : service_ids) {
    auto s = live->agent(120000).systemd_action(verb, id);
    out.push_back({id, s.ok(), s.ok() ? fmt::format("{}ed {}", verb == "stop" ? "stopp" : verb, id) : s.error().message});
  }
  return out;
}

ApiResult<std::vector<TerminalInfo>> LocalEngine::list_terminals(const CallContext& /*ctx*/, const VmRecord& vm) {
  auto live = FORKVM_TRY(running(vm));
  std::vector<TerminalInfo> out;
  for (auto& t : FORKVM_TRY(from_agent(live->agent().terminals()))) {
    TerminalInfo i;
    i.name = std::move(t.name);
    i.status = std::move(t.status);
    if (!t.created.empty()) i.created = std::move(t.created);
    out.push_back(std::move(i));
  }
  return out;
}

ApiResult<std::vector<TerminalLine>> LocalEngine::terminal_logs(const CallContext& /*ctx*/, const VmRecord& vm,
                                                                const std::string& terminal_id) {
  auto live = FORKVM_TRY(running(vm));
  std::vector<TerminalLine> out;
  for (auto& l : FORKVM_TRY(from_agent(live->agent().terminal_logs(terminal_id)))) {
    TerminalLine t;
    t.line = std::move(l.line);
    if (!l.timestamp.empty()) t.timestamp = std::move(l.timestamp);
    out.push_back(std::move(t));
  }
  return out;
}

ApiResult<std::string> LocalEngine::terminal_output(const CallContext& /*ctx*/, const VmRecord& vm,
                                                    const std::string& terminal_id) {
  auto live = FORKVM_TRY(running(vm));
  return from_agent(live->agent().terminal_output(terminal_id));
}

}  // namespace forkvm::engine
