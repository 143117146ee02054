// forkvm bench api: the API's latencies through HTTP against `forkvm serve`:
// create to first exec, the exec-await round trip beside the agent's own
// (straight over the VM's vsock socket, so the difference is what HTTP, the
// routes and the store add), fork through HTTP, and concurrent exec-awaits
// spread over several VMs.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <thread>

#include "api/agent/agent_client.hpp"
#include "api/cli/args.hpp"
#include "api/cli/bench_api_server.hpp"
#include "api/cli/bench_common.hpp"
#include "vmm/elapsed.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kApiUsage = R"(usage: forkvm bench api [options]

  --runs N            creates measured to their first exec (default 10)
  --execs N           exec-await round trips of `true` on one VM, each beside one
                      straight to its agent (default 200)
  --fork-counts LIST  fork sizes measured, comma-separated (default 1,10; "0" skips)
  --vms N             VMs the concurrent exec-awaits are spread over (default 10)
  --concurrent N      exec-await requests sent at once (default 100; 0 skips)
  --vm-mem MiB        memory of each VM, for a server started here (default: serve's)
  --url URL --key KEY a running server instead of starting one
  --run-dir DIR       that server's socket directory (default /run/forkvm)
  --data DIR          data directory of the started server, kept afterwards (default:
                      a temporary one under /var/tmp, removed; keeping one keeps its
                      golden snapshot for the next run)
  --json              print one JSON line

Without --url, `forkvm serve` (this binary) is started on a free loopback port
with a key from `forkvm keys create`. The first create (it waits for the golden
snapshot) is reported apart. Every VM made is deleted at the end.
)";

using Clock = std::chrono::steady_clock;

struct Percentiles {
  double p50 = 0, p99 = 0;
  size_t n = 0;
};

Percentiles pct(const Samples& s, size_t n) { return {s.percentile(50), s.percentile(99), n}; }

std::string pct_json(const Percentiles& p) {
  return fmt::format(R"({{"n":{},"p50_ms":{:.3f},"p99_ms":{:.3f}}})", p.n, p.p50, p.p99);
}

std::string pct_text(const Percentiles& p) {
  return fmt::format("p50 {:.2f} ms, p99 {:.2f} ms ({})", p.p50, p.p99, p.n);
}

Result<std::vector<uint64_t>> parse_counts(const std::string& text) {
  std::vector<uint64_t> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v > 100)
      return make_error("--fork-counts: bad count '{}' (0..100)", item);
    if (v > 0) out.push_back(v);
  }
  return out;
}

struct ForkFigures {
  uint64_t count = 0;
  double response_ms = 0;  // POST .../fork answered
  double all_exec_ms = 0;  // from the POST until every child answered an exec
  std::string error{};     // the fork failed: why (the other parts still run)
};

struct ConcurrentFigures {
  uint64_t requests = 0, vms = 0, errors = 0;
  double wall_ms = 0;
  Percentiles latency{};
  std::string first_error{};
};

// Runs `jobs` at once, one thread each, and returns their results in order.
template <typename F>
std::vector<Status> in_parallel(size_t jobs, F&& job) {
  std::vector<Status> results(jobs);
  std::vector<std::thread> threads;
  threads.reserve(jobs);
  for (size_t i = 0; i < jobs; i++) threads.emplace_back([&, i] { results[i] = job(i); });
  for (auto& t : threads) t.join();
  return results;
}

Result<ForkFigures> measure_fork(BenchServer& server, const std::string& parent, uint64_t count) {
  ForkFigures f;
  f.count = count;
  auto t0 = Clock::now();
  auto children = FORKVM_TRY(server.fork(parent, count));
  f.response_ms = ms_since(t0);
  auto results = in_parallel(children.size(), [&](size_t i) { return server.exec(children[i], "true"); });
  f.all_exec_ms = ms_since(t0);
  for (size_t i = 0; i < results.size(); i++)
    if (!results[i].ok()) return results[i].error().context("fork child " + children[i]);
  for (const auto& c : children) FORKVM_CHECK(server.delete_vm(c));
  return f;
}

ConcurrentFigures measure_concurrent(BenchServer& server, const std::vector<std::string>& vms,
                                     uint64_t requests) {
  ConcurrentFigures c;
  c.requests = requests;
  c.vms = vms.size();
  std::vector<double> ms(requests);
  auto t0 = Clock::now();
  auto results = in_parallel(requests, [&](size_t i) {
    auto t = Clock::now();
    Status s = server.exec(vms[i % vms.size()], "true");
    ms[i] = ms_since(t);
    return s;
  });
  c.wall_ms = ms_since(t0);
  Samples lat;
  for (size_t i = 0; i < results.size(); i++) {
    lat.add(ms[i]);
    if (!results[i].ok()) {
      if (c.errors++ == 0) c.first_error = results[i].error().message;
    }
  }
  c.latency = pct(lat, requests);
  return c;
}

}  // namespace

int bench_api(const std::vector<std::string>& argv) {
  auto args = Args::parse(
      argv, {"runs", "execs", "fork-counts", "vms", "concurrent", "vm-mem", "url", "key", "run-dir", "data"},
      {"json", "help"});
  if (!args) return usage_error("bench api", args.error());
  if (args->has("help")) {
    std::fputs(kApiUsage, stdout);
    return 0;
  }
  auto runs = args->get_uint("runs", 10, 1, 10000);
  auto execs = args->get_uint("execs", 200, 1, 1000000);
  auto vms = args->get_uint("vms", 10, 1, 100);
  auto concurrent = args->get_uint("concurrent", 100, 0, 1000);
  auto mem = args->get_uint("vm-mem", 0, 0, 1 << 20);
  for (const auto* r : {&runs, &execs, &vms, &concurrent, &mem})
    if (!*r) return usage_error("bench api", r->error());
  auto fork_counts = parse_counts(args->get("fork-counts").value_or("1,10"));
  if (!fork_counts) return usage_error("bench api", fork_counts.error());

  auto server = BenchServer::open(*args, *mem);
  if (!server) return usage_error("bench api", server.error());
  auto& s = **server;
  std::fprintf(stderr, "bench api: %s\n", s.describe().c_str());
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "bench api: %s\n", e.message.c_str());
    return 1;  // ~BenchServer deletes the VMs made so far and stops the server
  };

  // The first create waits for the golden snapshot (a boot, on a new data dir).
  auto t0 = Clock::now();
  auto main_vm = s.create_vm();
  if (!main_vm) return fail(main_vm.error());
  if (auto e = s.exec(*main_vm, "true"); !e) return fail(e.error());
  const double first_create_ms = ms_since(t0);

  Samples create_ms, create_exec_ms;
  for (uint64_t i = 0; i < *runs; i++) {
    t0 = Clock::now();
    auto id = s.create_vm();
    if (!id) return fail(id.error());
    create_ms.add(ms_since(t0));
    if (auto e = s.exec(*id, "true"); !e) return fail(e.error());
    create_exec_ms.add(ms_since(t0));
    if (auto d = s.delete_vm(*id); !d) return fail(d.error());
  }
  // Progress on stderr as each part ends: a later failure keeps what was measured.
  std::fprintf(stderr, "bench api: first create %.1f ms; create -> first exec %s\n", first_create_ms,
               pct_text(pct(create_exec_ms, *runs)).c_str());

  // Interleaved, so both see the same load on the machine.
  agent::ClientOptions ao;
  ao.socket_path = s.agent_socket(*main_vm);
  ao.vsock_mux = true;
  ao.call_timeout_ms = 600000;
  agent::AgentClient agent(ao);
  Samples http_ms, agent_ms;
  for (uint64_t i = 0; i < *execs; i++) {
    t0 = Clock::now();
    if (auto e = s.exec(*main_vm, "true"); !e) return fail(e.error());
    http_ms.add(ms_since(t0));
    t0 = Clock::now();
    auto r = agent.exec({.command = "true", .cwd = "/root"});
    if (!r || r->exit_code != 0)
      return fail(r ? make_error("agent exec true exited {}", r->exit_code)
                    : r.error().context("the agent at " + ao.socket_path));
    agent_ms.add(ms_since(t0));
  }
  std::fprintf(stderr, "bench api: exec-await HTTP %s; agent directly %s\n",
               pct_text(pct(http_ms, *execs)).c_str(), pct_text(pct(agent_ms, *execs)).c_str());

  std::vector<ForkFigures> forks;
  for (uint64_t n : *fork_counts) {
    auto f = measure_fork(s, *main_vm, n);
    if (!f) {
      std::fprintf(stderr, "bench api: fork count %llu: %s\n", static_cast<unsigned long long>(n),
                   f.error().message.c_str());
      ForkFigures failed;
      failed.count = n;
      failed.error = f.error().message;
      forks.push_back(failed);
      continue;
    }
    std::fprintf(stderr, "bench api: fork count %llu answered %.1f ms, children all answered %.1f ms\n",
                 static_cast<unsigned long long>(n), f->response_ms, f->all_exec_ms);
    forks.push_back(*f);
  }
  bool incomplete = std::any_of(forks.begin(), forks.end(), [](const auto& f) { return !f.error.empty(); });

  std::optional<ConcurrentFigures> conc;
  if (*concurrent > 0) {
    // A failed fork may have taken the parent down with it.
    std::vector<std::string> pool;
    if (s.exec(*main_vm, "true").ok()) pool.push_back(*main_vm);
    while (pool.size() < *vms) {
      auto id = s.create_vm();
      if (!id) {
        std::fprintf(stderr, "bench api: a VM for the concurrent part: %s\n", id.error().message.c_str());
        break;
      }
      pool.push_back(*id);
    }
    if (pool.size() < *vms) incomplete = true;  // reported, and the exit status says so
    if (!pool.empty()) conc = measure_concurrent(s, pool, *concurrent);
  }

  const auto create = pct(create_ms, *runs), to_exec = pct(create_exec_ms, *runs);
  const auto http = pct(http_ms, *execs), direct = pct(agent_ms, *execs);
  if (args->has("json")) {
    std::string fj = "[";
    for (const auto& f : forks)
      fj += f.error.empty() ? fmt::format(R"({}{{"count":{},"response_ms":{:.3f},"all_exec_ms":{:.3f}}})",
                                          fj.size() > 1 ? "," : "", f.count, f.response_ms, f.all_exec_ms)
                            : fmt::format(R"({}{{"count":{},"error":"{}"}})", fj.size() > 1 ? "," : "",
                                          f.count, "failed, see stderr");
    fj += "]";
    std::string cj =
        conc ? fmt::format(R"({{"requests":{},"vms":{},"errors":{},"wall_ms":{:.3f},"latency":{}}})",
                           conc->requests, conc->vms, conc->errors, conc->wall_ms, pct_json(conc->latency))
             : "null";
    std::puts(
        fmt::format(
            R"({{"bench":"api","first_create_exec_ms":{:.3f},"create":{},"create_to_exec":{},"exec_http":{},)"
            R"("exec_agent":{},"http_overhead_p50_ms":{:.3f},"fork":{},"concurrent":{}}})",
            first_create_ms, pct_json(create), pct_json(to_exec), pct_json(http), pct_json(direct),
            http.p50 - direct.p50, fj, cj)
            .c_str());
  } else {
    std::printf("first create -> exec answered (golden snapshot ready): %.1f ms\n", first_create_ms);
    std::printf("create answered:             %s\n", pct_text(create).c_str());
    std::printf("create -> first exec:        %s\n", pct_text(to_exec).c_str());
    std::printf("exec-await `true`, HTTP:     %s\n", pct_text(http).c_str());
    std::printf("exec `true`, agent directly: %s\n", pct_text(direct).c_str());
    std::printf("HTTP overhead (p50 - p50):   %.2f ms\n", http.p50 - direct.p50);
    for (const auto& f : forks) {
      if (!f.error.empty())
        std::printf("fork count %-3llu FAILED: %s\n", static_cast<unsigned long long>(f.count),
                    f.error.c_str());
      else
        std::printf("fork count %-3llu answered %.1f ms, every child answered an exec %.1f ms\n",
                    static_cast<unsigned long long>(f.count), f.response_ms, f.all_exec_ms);
    }
    if (conc)
      std::printf(
          "%llu concurrent exec-awaits over %llu VMs: %llu errors, all done in %.1f ms, each %s%s%s\n",
          static_cast<unsigned long long>(conc->requests), static_cast<unsigned long long>(conc->vms),
          static_cast<unsigned long long>(conc->errors), conc->wall_ms, pct_text(conc->latency).c_str(),
          conc->errors ? "; first error: " : "", conc->first_error.c_str());
  }
  return incomplete || (conc && conc->errors > 0) ? 1 : 0;
}

}  // namespace forkvm::cli
