#include "api/cli/machine_runner.hpp"

#include <csignal>
#include <cstdio>

namespace forkvm::cli {
namespace {

Machine* g_running = nullptr;

extern "C" void on_stop_signal(int /*sig*/) {
  if (g_running != nullptr) g_running->request_stop();
}

}  // namespace

int run_machine(Machine& machine, const char* name, const std::optional<std::string>& control_path) {
  if (control_path) {
    if (auto s = machine.listen_control(*control_path); !s.ok()) {
      std::fprintf(stderr, "%s: %s\n", name, s.error().message.c_str());
      return 1;
    }
  }
  g_running = &machine;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  auto exit = machine.run();
  g_running = nullptr;
  if (!exit) {
    std::fprintf(stderr, "%s: %s\n", name, exit.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "%s: guest %s%s%s\n", name, exit_kind_name(exit->kind),
               exit->detail.empty() ? "" : ": ", exit->detail.c_str());
  return exit_status(exit->kind);
}

}  // namespace forkvm::cli
