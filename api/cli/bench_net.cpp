// forkvm bench net: what a VM start pays for its network, set up on the spot
// (netns, veth pair, TAP, addresses, two nft tables: a dozen `ip` and `nft`
// commands) against a slot prepared ahead of time, where the start only
// claims the slot and attaches to its TAP. On the host itself: no guest, no
// KVM, but root (network namespaces).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "devices/net/host_network.hpp"
#include "vmm/elapsed.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kNetUsage = R"(usage: forkvm bench net [--runs N] [--slot S] [--json]

  --runs N   set-ups of each kind (default 20)
  --slot S   the network slot used (default 16383, the last; it must be free)
  --json     print one JSON line

Times HostNetwork::create on a fresh slot (what every VM start ran before
slots were prepared) against create on a prepared slot (what a VM start runs
now), and the preparation itself, which the API engine does in the
background. Each network is torn down before the next.
)";

using Clock = std::chrono::steady_clock;

}  // namespace

int bench_net(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"runs", "slot"}, {"json", "help"});
  if (!args) return usage_error("bench net", args.error());
  if (args->has("help")) {
    std::fputs(kNetUsage, stdout);
    return 0;
  }
  auto runs = args->get_uint("runs", 20, 1, 10000);
  auto slot_arg = args->get_uint("slot", net::kMaxSlot, 0, net::kMaxSlot);
  for (const auto* r : {&runs, &slot_arg})
    if (!*r) return usage_error("bench net", r->error());
  const auto slot = static_cast<uint32_t>(*slot_arg);
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "bench net: %s\n", e.message.c_str());
    return 1;
  };

  Samples fresh, prepare, claimed;
  for (uint64_t i = 0; i < *runs; i++) {
    auto t0 = Clock::now();
    {
      auto n = net::HostNetwork::create(slot);
      if (!n) return fail(n.error());
      fresh.add(ms_since(t0));
    }
    t0 = Clock::now();
    if (auto s = net::HostNetwork::prepare(slot); !s) return fail(s.error());
    prepare.add(ms_since(t0));
    t0 = Clock::now();
    auto n = net::HostNetwork::create(slot);
    if (!n) return fail(n.error());
    claimed.add(ms_since(t0));
    if (!(*n)->adopted()) return fail(make_error("slot {} was prepared but set up again", slot));
  }
  const double ratio = fresh.median() / claimed.median();
  if (args->has("json")) {
    std::puts(
        fmt::format(
            R"({{"bench":"net","runs":{},"fresh_ms":{},"prepare_ms":{},"claimed_ms":{},"ratio":{:.1f}}})",
            *runs, fresh.json(), prepare.json(), claimed.json(), ratio)
            .c_str());
  } else {
    std::printf("network set up at VM start:       %s\n", fresh.text().c_str());
    std::printf("prepared slot claimed at start:   %s\n", claimed.text().c_str());
    std::printf("preparing a slot (in background): %s\n", prepare.text().c_str());
    std::printf("set up / claimed (medians):       %.1fx\n", ratio);
  }
  return 0;
}

}  // namespace forkvm::cli
