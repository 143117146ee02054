// `forkvm keys create [--data DIR] [--account NAME] [--label TEXT]`: prints a
// new API key as one line on stdout (only its hash is stored).
#include <cstdio>
#include <string>
#include <vector>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "api/serve/commands.hpp"
#include "api/serve/serve.hpp"

namespace forkvm::cli {

namespace {

constexpr const char* kKeysUsage = R"(usage: forkvm keys create [--data DIR] [--account NAME] [--label TEXT]

  --data DIR      the server's data directory (default ./data)
  --account NAME  account that owns the key, created if new (default "default")
  --label TEXT    a note stored with the key
)";

}  // namespace

int keys_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"data", "account", "label"}, {"help"});
  if (!args.ok() || args->has("help") || args->positional().size() != 1 ||
      args->positional()[0] != "create") {
    if (!args.ok()) std::fprintf(stderr, "forkvm keys: %s\n", args.error().message.c_str());
    bool help = args.ok() && args->has("help");
    std::fputs(kKeysUsage, help ? stdout : stderr);
    return help ? 0 : kUsageError;
  }
  return api::run_keys_create(args->get("data").value_or("./data"), args->get("account").value_or("default"),
                              args->get("label").value_or(""));
}

}  // namespace forkvm::cli
