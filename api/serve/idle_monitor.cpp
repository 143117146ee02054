#include "api/serve/idle_monitor.hpp"

#include <rapidjson/document.h>

#include "vmm/log.hpp"

namespace forkvm::api {

std::optional<IdleSettings> idle_settings_of(const VmRecord& vm) {
  rapidjson::Document d;
  d.Parse(vm.config_json.data(), vm.config_json.size());
  if (d.HasParseError() || !d.IsObject()) return std::nullopt;
  auto timeout = d.FindMember("idleTimeoutSeconds");
  if (timeout == d.MemberEnd() || !timeout->value.IsInt64() || timeout->value.GetInt64() <= 0)
    return std::nullopt;
  IdleSettings s;
  s.timeout_ms = timeout->value.GetInt64() * 1000;
  auto threshold = d.FindMember("activityThresholdBytes");
  if (threshold != d.MemberEnd() && threshold->value.IsInt64() && threshold->value.GetInt64() > 0)
    s.threshold_bytes = static_cast<uint64_t>(threshold->value.GetInt64());
  return s;
}

IdleMonitor::IdleMonitor(Store& store, VmEngine& engine, std::chrono::milliseconds interval)
    : store_(store), engine_(engine), interval_(interval) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      lock.unlock();
      check_once();
      lock.lock();
    }
  });
}

IdleMonitor::~IdleMonitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void IdleMonitor::check_once() {
  auto rows = store_.list_vms_in_states({"running"});
  if (!rows.ok()) {
    log(LogLevel::warn, "idle: listing running VMs: {}", rows.error().message);
    return;
  }
  std::map<std::string, IdleTracker> seen;
  for (auto& vm : *rows) {
    auto settings = idle_settings_of(vm);
    if (!settings) continue;
    auto act = engine_.activity(vm);
    if (!act) continue;  // not running here (yet): nothing to time
    const int64_t now = now_ms();
    auto it = trackers_.find(vm.id);
    IdleTracker tracker = it != trackers_.end() ? it->second : IdleTracker(now);
    bool idle = tracker.observe(*settings, {now, act->net_bytes, act->last_api_ms, act->busy});
    if (tracker.saw_network()) record_network_activity(vm, now);
    if (idle) {
      log(LogLevel::info, "idle: VM {} had no activity for {} s; suspending it", vm.id,
          settings->timeout_ms / 1000);
      suspend(vm);
      continue;  // a resumed VM starts a new tracker
    }
    seen.emplace(vm.id, tracker);
  }
  trackers_ = std::move(seen);
}

void IdleMonitor::record_network_activity(const VmRecord& vm, int64_t now) {
  // Read again, so that only this field changes (the wire's lastNetworkActivity).
  auto row = store_.get_vm(vm.account_id, vm.id);
  if (!row.ok() || !*row) return;
  VmRecord current = **row;
  current.last_activity_ms = now;
  if (auto s = store_.update_vm(current); !s.ok())
    log(LogLevel::warn, "idle: recording VM {}'s network activity: {}", vm.id, s.error().message);
}

void IdleMonitor::suspend(const VmRecord& vm) {
  CallContext ctx{vm.account_id, "idle-timeout", std::nullopt};
  auto s = engine_.suspend_vm(ctx, vm);
  if (!s.ok()) {
    log(LogLevel::warn, "idle: suspending VM {}: {}", vm.id, s.error().message);
    return;
  }
  // Read again: a route may have changed the row while the VM was saved.
  auto row = store_.get_vm(vm.account_id, vm.id);
  if (!row.ok() || !*row) return;
  VmRecord now = **row;
  now.state = "suspended";
  now.vmm_pid.reset();
  now.updated_at_ms = now_ms();
  if (auto u = store_.update_vm(now); !u.ok())
    log(LogLevel::warn, "idle: recording that VM {} is suspended: {}", vm.id, u.error().message);
}

}  // namespace forkvm::api
