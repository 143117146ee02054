// When is a VM idle? No API call and no network traffic above a threshold
// for idleTimeoutSeconds. Pure logic, fed by the idle monitor
// (api/serve/idle_monitor.cpp) one check at a time, so it is unit-tested
// without VMs or clocks.
#pragma once

#include <cstdint>
#include <optional>

namespace forkvm::api {

struct IdleSettings {
  int64_t timeout_ms = 0;        // <= 0: never idle
  uint64_t threshold_bytes = 0;  // traffic per check above this is activity (spec: activityThresholdBytes)
};

// What the engine sees of a VM at one check.
struct ActivitySample {
  int64_t now_ms = 0;
  std::optional<uint64_t> net_bytes{};  // rx + tx of the VM's host-side interface, if it has one
  int64_t last_api_ms = 0;              // the last API call into the VM (0: none)
  bool busy = false;                    // a call into the VM is still running
};

class IdleTracker {
 public:
  // `started_ms`: when the VM was last seen starting (or this tracker began).
  explicit IdleTracker(int64_t started_ms) : last_active_ms_(started_ms) {}

  // One check; true when the VM has been idle for the whole timeout.
  bool observe(const IdleSettings& s, const ActivitySample& a);
  // True when the last observe() counted network traffic as activity.
  [[nodiscard]] bool saw_network() const { return saw_network_; }
  [[nodiscard]] int64_t last_active_ms() const { return last_active_ms_; }

 private:
  int64_t last_active_ms_;
  std::optional<uint64_t> last_bytes_;
  bool saw_network_ = false;
};

}  // namespace forkvm::api
