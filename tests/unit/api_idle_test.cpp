// The idle decision behind idleTimeoutSeconds (api/engine/idle_policy.hpp), and
// what the engine reads from a guest's console (api/engine/guest_faults.hpp).
#include <doctest/doctest.h>

#include "api/engine/guest_faults.hpp"
#include "api/engine/idle_policy.hpp"

using forkvm::api::ActivitySample;
using forkvm::api::IdleSettings;
using forkvm::api::IdleTracker;

TEST_CASE("idle: quiet for the whole timeout, then idle") {
  IdleSettings s{10000, 0};
  IdleTracker t(1000);
  CHECK_FALSE(t.observe(s, {.now_ms = 5000, .net_bytes = 100}));
  CHECK_FALSE(t.observe(s, {.now_ms = 10999, .net_bytes = 100}));
  CHECK(t.observe(s, {.now_ms = 11000, .net_bytes = 100}));
}

TEST_CASE("idle: no timeout set, never idle") {
  IdleTracker t(0);
  CHECK_FALSE(t.observe({0, 0}, {.now_ms = 1'000'000'000}));
  CHECK_FALSE(t.observe({-5, 0}, {.now_ms = 2'000'000'000}));
}

TEST_CASE("idle: an API call restarts the timer") {
  IdleSettings s{10000, 0};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 9000, .last_api_ms = 8000}));
  CHECK_FALSE(t.observe(s, {.now_ms = 17999, .last_api_ms = 8000}));
  CHECK(t.observe(s, {.now_ms = 18000, .last_api_ms = 8000}));
}

TEST_CASE("idle: a running call keeps the VM active") {
  IdleSettings s{1000, 0};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 5000, .busy = true}));
  CHECK_FALSE(t.observe(s, {.now_ms = 5999}));
  CHECK(t.observe(s, {.now_ms = 6000}));
}

TEST_CASE("idle: traffic above the threshold is activity, below it is not") {
  IdleSettings s{10000, 500};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 1000, .net_bytes = 0}));  // first sample: a baseline only
  CHECK_FALSE(t.saw_network());
  CHECK_FALSE(t.observe(s, {.now_ms = 6000, .net_bytes = 400}));  // 400 <= 500: background noise
  CHECK_FALSE(t.saw_network());
  CHECK(t.observe(s, {.now_ms = 10000, .net_bytes = 800}));  // 400 more: still noise, and 10 s quiet
  IdleTracker u(0);
  CHECK_FALSE(u.observe(s, {.now_ms = 1000, .net_bytes = 0}));
  CHECK_FALSE(u.observe(s, {.now_ms = 9000, .net_bytes = 501}));
  CHECK(u.saw_network());
  CHECK(u.last_active_ms() == 9000);
  CHECK_FALSE(u.observe(s, {.now_ms = 18999, .net_bytes = 501}));
  CHECK(u.observe(s, {.now_ms = 19000, .net_bytes = 501}));
}

TEST_CASE("idle: with threshold 0 any byte counts") {
  IdleSettings s{10000, 0};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 1000, .net_bytes = 10}));
  CHECK_FALSE(t.observe(s, {.now_ms = 9000, .net_bytes = 11}));
  CHECK(t.saw_network());
  CHECK_FALSE(t.observe(s, {.now_ms = 18000, .net_bytes = 11}));
  CHECK(t.observe(s, {.now_ms = 19000, .net_bytes = 11}));
}

TEST_CASE("idle: counters that go back (a new interface) are a baseline, not traffic") {
  IdleSettings s{10000, 0};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 1000, .net_bytes = 5000}));
  CHECK_FALSE(t.observe(s, {.now_ms = 5000, .net_bytes = 20}));
  CHECK_FALSE(t.saw_network());
  CHECK(t.observe(s, {.now_ms = 10000, .net_bytes = 20}));
}

TEST_CASE("idle: no interface, only API calls count") {
  IdleSettings s{10000, 0};
  IdleTracker t(0);
  CHECK_FALSE(t.observe(s, {.now_ms = 5000}));
  CHECK(t.observe(s, {.now_ms = 10000}));
}

// ---- api/engine/guest_faults.hpp: a guest kernel's fault on its console ----

TEST_CASE("guest faults: the first kernel fault line, without CR; none in a clean boot") {
  using forkvm::engine::find_guest_fault;
  CHECK_FALSE(find_guest_fault("[  OK  ] Started dbus.service\r\nlogin: \r\n").has_value());
  CHECK_FALSE(find_guest_fault("").has_value());
  const auto f = find_guest_fault(
      "[  OK  ] Reached target basic.target\r\n"
      "[   42.1] rcu: INFO: rcu_sched self-detected stall on CPU\r\n"
      "[   50.0] Kernel panic - not syncing: hung\r\n");
  REQUIRE(f.has_value());
  CHECK(*f == "[   42.1] rcu: INFO: rcu_sched self-detected stall on CPU");
  CHECK(find_guest_fault("x\nKernel panic - not syncing: Attempted to kill init!") ==
        std::optional<std::string>("Kernel panic - not syncing: Attempted to kill init!"));
  CHECK(find_guest_fault(std::string(1000, 'a') + " soft lockup")->size() == 240);
}
