// forkvm: one binary, subcommands. Each subcommand lives in its own file.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "api/cli/commands.hpp"
#include "api/serve/commands.hpp"

namespace {

constexpr const char* kUsage = R"(usage: forkvm <command> [options]

commands:
  run     boot a kernel and run it until the guest stops   (forkvm run --help)
  snapshot  save a running VM through its control socket    (forkvm snapshot --help)
  restore   run a VM from a snapshot                         (forkvm restore --help)
  control   send one request to a VMM's control socket      (forkvm control --help)
  bench   measure forkvm against a baseline                 (forkvm bench --help)
  disk    layered copy-on-write disks: create-chain, freeze, fork, flatten, info, gc
                                                            (forkvm disk --help)
  guest   exec in a running VM through its vsock socket     (forkvm guest --help)
  serve   the Freestyle VMs API server                      (forkvm serve --help)
  vm      a client of that API: create, list, exec, cp, fork, logs, ...
                                                            (forkvm vm --help)
  keys    API keys: keys create [--data DIR] [--account NAME]
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kUsage, stderr);
    return forkvm::cli::kUsageError;
  }
  std::string_view cmd = args.front();
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "--help" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "run") return forkvm::cli::run_command(rest);
  if (cmd == "snapshot") return forkvm::cli::snapshot_command(rest);
  if (cmd == "restore") return forkvm::cli::restore_command(rest);
  if (cmd == "control") return forkvm::cli::control_command(rest);
  if (cmd == "bench") return forkvm::cli::bench_command(rest);
  if (cmd == "disk") return forkvm::cli::disk_command(rest);
  if (cmd == "guest") return forkvm::cli::guest_command(rest);
  if (cmd == "serve") return forkvm::cli::serve_command(rest);
  if (cmd == "keys") return forkvm::cli::keys_command(rest);
  if (cmd == "vm") return forkvm::cli::vm_command(rest);
  std::fprintf(stderr, "forkvm: unknown command '%s'\n%s", args.front().c_str(), kUsage);
  return forkvm::cli::kUsageError;
}
