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

On first start with no API keys, a key is created, printed to stderr and
written to DIR/api-key (mode 0600). More keys: forkvm keys create.
)";

}  // namespace

int serve_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"listen", "data", "header-timeout-ms", "body-timeout-ms"}, {"help"});
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
