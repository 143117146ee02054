// Network slots set up ahead of time. Setting a slot up runs a dozen `ip`
// and `nft` commands, tens of milliseconds every VM start (a create's
// restore, a fork child) would otherwise wait for; a background thread keeps
// a few set up instead, and prepare() hands one to the next VM, whose VMM
// claims it (devices/net/host_network.hpp).
#include <chrono>

#include "api/engine/leftover_network.hpp"
#include "api/engine/local_engine_impl.hpp"
#include "devices/net/host_network.hpp"
#include "vmm/elapsed.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {

namespace {

// A slot that failed to prepare is not retried at once: whatever stood in
// the way (no `nft`, no netns support) will stand there again.
constexpr std::chrono::seconds kRetryAfterFailure{30};

}  // namespace

ApiResult<uint32_t> LocalEngine::free_slot_locked() const {
  uint32_t slot = o_.first_net_slot;
  while (used_slots_.contains(slot)) slot++;
  if (slot > net::kMaxSlot) return api_error(ErrorCode::VmLimitExceeded, "no free network slot on this host");
  return slot;
}

void LocalEngine::start_net_preparer() {
  // Prepared by an earlier server and never claimed: nobody will now.
  for (uint32_t slot : net::HostNetwork::prepared_slots()) {
    {
      std::lock_guard lock(mu_);
      if (used_slots_.contains(slot)) continue;  // a found VM's VMM claimed it after all
    }
    if (net::HostNetwork::unprepare(slot)) remove_leftover_network(slot, "an earlier server prepared");
  }
  if (o_.prepared_net_slots == 0) return;
  net_preparer_ = std::thread([this] { keep_slots_prepared(); });
}

void LocalEngine::keep_slots_prepared() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (prepared_slots_.size() >= o_.prepared_net_slots) {
      slots_changed_.wait(lock);
      continue;
    }
    auto slot = free_slot_locked();
    if (!slot.ok()) {
      slots_changed_.wait_for(lock, kRetryAfterFailure);
      continue;
    }
    used_slots_.insert(*slot);
    lock.unlock();
    auto t0 = std::chrono::steady_clock::now();
    Status made = net::HostNetwork::prepare(*slot);
    const double ms = ms_since(t0);
    lock.lock();
    if (made.ok()) {
      prepared_slots_.insert(*slot);
      log(LogLevel::debug, "engine: network slot {} prepared in {:.1f} ms", *slot, ms);
    } else {
      used_slots_.erase(*slot);
      log(LogLevel::warn, "engine: preparing network slot {}: {}; VMs set their network up themselves", *slot,
          made.error().message);
      slots_changed_.wait_for(lock, kRetryAfterFailure);
    }
  }
}

void LocalEngine::release_prepared_slots() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    slots_changed_.notify_all();
  }
  if (net_preparer_.joinable()) net_preparer_.join();
  std::set<uint32_t> slots;
  {
    std::lock_guard lock(mu_);
    slots.swap(prepared_slots_);
  }
  for (uint32_t slot : slots) {
    // A VMM may have claimed it in between (its VM was being started).
    if (net::HostNetwork::unprepare(slot)) remove_leftover_network(slot, "prepared and not used");
  }
}

}  // namespace forkvm::engine
