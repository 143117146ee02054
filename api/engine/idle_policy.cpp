#include "api/engine/idle_policy.hpp"

#include <algorithm>

namespace forkvm::api {

bool IdleTracker::observe(const IdleSettings& s, const ActivitySample& a) {
  saw_network_ = false;
  if (a.net_bytes) {
    // Counters only grow while the interface lives; a smaller value is a new
    // interface (the VM was restarted), a new baseline rather than traffic.
    if (last_bytes_ && *a.net_bytes >= *last_bytes_ && *a.net_bytes - *last_bytes_ > s.threshold_bytes)
      saw_network_ = true;
    last_bytes_ = a.net_bytes;
  } else {
    last_bytes_.reset();
  }
  if (saw_network_ || a.busy) last_active_ms_ = a.now_ms;
  last_active_ms_ = std::max(last_active_ms_, a.last_api_ms);
  if (s.timeout_ms <= 0) return false;
  return a.now_ms - last_active_ms_ >= s.timeout_ms;
}

}  // namespace forkvm::api
