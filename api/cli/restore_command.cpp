// forkvm restore: run a VM from a snapshot directory, continuing where it was saved.
#include <chrono>
#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "api/cli/machine_runner.hpp"
#include "vmm/log.hpp"
#include "vmm/machine.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kRestoreUsage = R"(usage: forkvm restore --snapshot DIR [options]

Runs the VM saved in DIR (by `forkvm snapshot` or the control socket's
"snapshot" op) from where it was saved, like `forkvm run` runs a fresh one.
Memory, vCPUs and devices come from the snapshot; these host-side settings
are the restorer's:

  --snapshot DIR      the snapshot directory (state + memory)
  --console PATH|-    serial console to a file, or - for stdout (default)
  --vsock PATH        the vsock host socket (required when the snapshot has vsock);
                      the guest gets a transport reset: its connections close
  --vsock-cid N       the guest's new vsock CID (default 3)
  --net-slot SLOT     the network slot to attach to (when the snapshot has virtio-net)
  --disk PATH[,ro]    replace the recorded disk paths, in order (same count);
                      chain:DIR for a layered disk (forkvm disk)
  --control PATH      serve the control socket (status, pause, resume, snapshot, stop)
  --verbose           log VMM setup steps

exit status: as `forkvm run`; 1 also when the snapshot cannot be restored
(missing, corrupt, other format version).
)";

Result<MachineConfig> restore_config(const Args& args) {
  MachineConfig c;
  FORKVM_CHECK(host_options(args, args.get("net-slot").has_value(), c));
  return c;
}

}  // namespace

int restore_command(const std::vector<std::string>& argv) {
  const auto t0 = std::chrono::steady_clock::now();
  auto args = Args::parse(argv, {"snapshot", "console", "vsock", "vsock-cid", "net-slot", "disk", "control"},
                          {"verbose", "help"});
  if (args && args->has("help")) {
    std::fputs(kRestoreUsage, stdout);
    return 0;
  }
  if (args && !args->positional().empty())
    args = make_error("unexpected argument '{}'", args->positional()[0]);
  if (args && !args->get("snapshot")) args = make_error("--snapshot DIR is required");
  auto config = args ? restore_config(*args) : Result<MachineConfig>(args.error());
  if (!config) {
    std::fprintf(stderr, "forkvm restore: %s\n", config.error().message.c_str());
    return kUsageError;
  }
  if (args->has("verbose")) set_log_level(LogLevel::debug);

  auto machine = Machine::restore(*config, *args->get("snapshot"));
  if (!machine) {
    std::fprintf(stderr, "forkvm restore: %s\n", machine.error().message.c_str());
    return 1;
  }
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // On stderr, one line, for tests and benchmarks: the guest's first
  // instruction follows within the vCPU thread start.
  std::fprintf(stderr, "forkvm restore: restored in %.2f ms\n", ms);
  return run_machine(**machine, "forkvm restore", args->get("control"));
}

}  // namespace forkvm::cli
