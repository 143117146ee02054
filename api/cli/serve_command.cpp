// `forkvm serve [--listen ADDR:PORT] [--data DIR]`: the Freestyle VMs API server.
#include <cstdio>
#include <string>
#include <vector>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "api/serve/commands.hpp"
#include "api/serve/serve.hpp"

namespace forkvm::cli {

namespace {

constexpr const char* kServeUsage = R"(usage: forkvm serve [--listen ADDR:PORT] [--data DIR]

  --listen ADDR:PORT     where to listen (default 127.0.0.1:8080)
  --data DIR             data directory: forkvm.db, api-key, VMs (default ./data)
  --header-timeout-ms N  a request header must arrive within N ms (default 30000)
  --body-timeout-ms N    a request body must arrive within N ms (default 120000)
  --image NAME|DIR       the guest image VMs boot (default: default, made by
                         tools/guest/artifacts image)
  --vm-mem MiB           memory of a VM that asks for no size (default 1024)
  --vm-cpus N            vCPUs of a VM that asks for no count (default 2)
  --ready-net-slots N    network slots kept set up ahead of time, so a VM start
                         claims one instead of setting its network up (default 2)
  --standby-vmms N       VMM processes kept ready (started, KVM VM made) for
                         restores: a create or resume claims one (default 2)

On first start with no API keys, a key is created, printed to stderr and
written to DIR/api-key (mode 0600). More keys: forkvm keys create.
)";

}  // namespace

int serve_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv,
                          {"listen", "data", "header-timeout-ms", "body-timeout-ms", "image", "vm-mem",
                           "vm-cpus", "ready-net-slots", "standby-vmms"},
                          {"help"});
  if (!args.ok() || args->has("help") || !args->positional().empty()) {
    if (!args.ok()) std::fprintf(stderr, "forkvm serve: %s\n", args.error().message.c_str());
    std::fputs(kServeUsage, args.ok() && args->has("help") ? stdout : stderr);
    return args.ok() && args->has("help") ? 0 : kUsageError;
  }
  api::ServeOptions options;
  if (auto data = args->get("data")) options.data_dir = *data;
  if (auto listen = args->get("listen")) {
    if (auto s = api::parse_listen(*listen, options.http); !s.ok()) {
      std::fprintf(stderr, "forkvm serve: %s\n", s.error().message.c_str());
      return kUsageError;
    }
  }
  if (auto image = args->get("image")) options.engine.image = *image;
  auto mem = args->get_uint("vm-mem", options.engine.default_mem_mib, 64, 1 << 20);
  auto cpus = args->get_uint("vm-cpus", options.engine.default_vcpus, 1, 255);
  if (!mem.ok() || !cpus.ok()) {
    std::fprintf(stderr, "forkvm serve: %s\n", (!mem.ok() ? mem.error() : cpus.error()).message.c_str());
    return kUsageError;
  }
  auto slots = args->get_uint("ready-net-slots", options.engine.prepared_net_slots, 0, 64);
  auto standbys = args->get_uint("standby-vmms", options.engine.standby_vmms, 0, 64);
  if (!slots.ok() || !standbys.ok()) {
    std::fprintf(stderr, "forkvm serve: %s\n",
                 (!slots.ok() ? slots.error() : standbys.error()).message.c_str());
    return kUsageError;
  }
  options.engine.prepared_net_slots = static_cast<uint32_t>(*slots);
  options.engine.standby_vmms = static_cast<uint32_t>(*standbys);
  options.engine.default_mem_mib = *mem;
  options.engine.default_vcpus = static_cast<uint32_t>(*cpus);
  auto header = args->get_uint("header-timeout-ms", 30000, 100, 3600000);
  auto body = args->get_uint("body-timeout-ms", 120000, 100, 3600000);
  if (!header.ok() || !body.ok()) {
    std::fprintf(stderr, "forkvm serve: %s\n",
                 (!header.ok() ? header.error() : body.error()).message.c_str());
    return kUsageError;
  }
  options.http.header_timeout = std::chrono::milliseconds(*header);
  options.http.body_timeout = std::chrono::milliseconds(*body);
  return api::run_serve(options);
}

}  // namespace forkvm::cli
