// idleTimeoutSeconds: a thread that checks the running VMs every few seconds
// and suspends, through the engine's own suspend path, each one that had no
// API call and no network traffic above activityThresholdBytes for its
// timeout (api/engine/idle_policy.hpp decides). The next exec, file or
// terminal call resumes it transparently, as after POST .../suspend.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "api/engine/engine.hpp"
#include "api/engine/idle_policy.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

class IdleMonitor {
 public:
  IdleMonitor(Store& store, VmEngine& engine, std::chrono::milliseconds interval = std::chrono::seconds(5));
  ~IdleMonitor();  // stops and joins the thread
  IdleMonitor(const IdleMonitor&) = delete;
  IdleMonitor& operator=(const IdleMonitor&) = delete;

  // One round over the running VMs (the thread's body; public for tests).
  void check_once();

 private:
  void suspend(const VmRecord& vm);
  void record_network_activity(const VmRecord& vm, int64_t now);

  Store& store_;
  VmEngine& engine_;
  std::chrono::milliseconds interval_;
  std::map<std::string, IdleTracker> trackers_;  // by VM id; only the thread touches it
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The VM's idle settings from its stored create request; nullopt when it
// has no idleTimeoutSeconds (or a non-positive one).
[[nodiscard]] std::optional<IdleSettings> idle_settings_of(const VmRecord& vm);

}  // namespace forkvm::api
