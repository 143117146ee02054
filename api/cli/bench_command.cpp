// forkvm bench MODE: dispatches to one file per benchmark mode.
#include <cstdio>

#include "api/cli/bench_common.hpp"
#include "api/cli/commands.hpp"

namespace forkvm::cli {

int bench_command(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0] == "--help") {
    std::fputs(
        "usage: forkvm bench boot|agent|disk|fork|restore|suspend|pagein|net|api|template [--runs N] "
        "[--json]\n"
        "       (forkvm bench MODE --help)\n",
        argv.empty() ? stderr : stdout);
    return argv.empty() ? kUsageError : 0;
  }
  std::vector<std::string> rest(argv.begin() + 1, argv.end());
  if (argv[0] == "boot") return bench_boot(rest);
  if (argv[0] == "agent") return bench_agent(rest);
  if (argv[0] == "disk") return bench_disk(rest);
  if (argv[0] == "fork") return bench_fork(rest);
  if (argv[0] == "restore") return bench_restore(rest);
  if (argv[0] == "suspend") return bench_suspend(rest);
  if (argv[0] == "pagein") return bench_pagein(rest);
  if (argv[0] == "net") return bench_net(rest);
  if (argv[0] == "api") return bench_api(rest);
  if (argv[0] == "template") return bench_template(rest);
  std::fprintf(stderr, "forkvm bench: unknown mode '%s'\n", argv[0].c_str());
  return kUsageError;
}

}  // namespace forkvm::cli
