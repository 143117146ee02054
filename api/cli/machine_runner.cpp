#include "api/cli/machine_runner.hpp"

#include <csignal>
#include <cstdio>

#include "devices/storage/chain_descriptor.hpp"

namespace forkvm::cli {

Status host_options(const Args& args, bool net, MachineConfig& c) {
  for (const auto& d : args.get_all("disk")) {
    DiskConfig disk{d, false};
    if (d.ends_with(",ro")) disk = {d.substr(0, d.size() - 3), true};
    if (disk.path.starts_with("chain:")) {
      disk.path = storage::chain_file(disk.path.substr(6));
      disk.chain = true;
    }
    c.disks.push_back(disk);
  }
  c.console = args.get("console").value_or("-");
  if (auto v = args.get("vsock")) {
    c.vsock = VsockConfig{*v, FORKVM_TRY(args.get_uint("vsock-cid", 3, 3, 0xFFFFFFFE))};
  }
  if (net) c.net = NetConfig{static_cast<uint32_t>(FORKVM_TRY(args.get_uint("net-slot", 0, 0, 16383)))};
  return {};
}
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
