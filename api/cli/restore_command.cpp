// forkvm restore: run a VM from a snapshot directory, continuing where it was
// saved; or, with --standby, make the KVM VM first and wait to be told which.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "api/cli/machine_runner.hpp"
#include "vmm/elapsed.hpp"
#include "vmm/log.hpp"
#include "vmm/machine.hpp"
#include "vmm/standby.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kRestoreUsage = R"(usage: forkvm restore --snapshot DIR [options]
       forkvm restore --standby PATH [--cpus N]

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

A standby VMM (--standby PATH) makes its KVM VM (and N vCPUs, default 0) at
once, then waits on the Unix socket PATH for the options above and a log
file (vmm/standby.hpp), so that a restore pays none of that. It dies with
the process that started it until it is claimed. vCPUs made long before the
restore are a hazard: KVM takes a TSC written within a second of the time
since their creation for a synchronization and keeps the creation-time
offset, so the guest's TSC can be up to 1 s off (forkvm serve uses 0).

exit status: as `forkvm run`; 1 also when the snapshot cannot be restored
(missing, corrupt, other format version).
)";

const std::set<std::string> kRestoreOptions = {"snapshot", "console", "vsock",  "vsock-cid",
                                               "net-slot", "disk",    "control"};

// The restore's own options: from the command line, or from a standby's claim.
Result<Args> parse_restore(const std::vector<std::string>& argv) {
  auto args = FORKVM_TRY(Args::parse(argv, kRestoreOptions, {"verbose"}));
  if (!args.positional().empty()) return make_error("unexpected argument '{}'", args.positional()[0]);
  if (!args.get("snapshot")) return make_error("--snapshot DIR is required");
  return args;
}

// Restores and runs; `answer` learns whether the restore worked before the
// vCPUs start.
int restore_and_run(const Args& args, std::optional<PreparedVm> prepared,
                    std::chrono::steady_clock::time_point t0,
                    const std::function<void(const Status&, double)>& answer) {
  MachineConfig config;
  Status given = host_options(args, args.get("net-slot").has_value(), config);
  if (!given.ok()) {
    answer(given, 0);
    std::fprintf(stderr, "forkvm restore: %s\n", given.error().message.c_str());
    return kUsageError;
  }
  if (args.has("verbose")) set_log_level(LogLevel::debug);
  auto machine = Machine::restore(config, *args.get("snapshot"), std::move(prepared));
  const double ms = ms_since(t0);
  answer(machine.ok() ? Status{} : Status(machine.error()), ms);
  if (!machine) {
    std::fprintf(stderr, "forkvm restore: %s\n", machine.error().message.c_str());
    return 1;
  }
  // On stderr, one line, for tests and benchmarks: the guest's first
  // instruction follows within the vCPU thread start.
  std::fprintf(stderr, "forkvm restore: restored in %.2f ms\n", ms);
  return run_machine(**machine, "forkvm restore", args.get("control"));
}

int run_standby(const std::string& path, uint32_t cpus) {
  // Unclaimed, it is the server's spare part: it must not outlive it.
  // Its parent gone before the signal was armed: init (1) adopted it already.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent == 1 || ::getppid() != parent) return 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto prepared = PreparedVm::create(cpus);
  if (!prepared) {
    std::fprintf(stderr, "forkvm restore --standby: %s\n", prepared.error().message.c_str());
    return 1;
  }
  std::fprintf(stderr, "forkvm restore: standby: KVM VM and %u vCPUs made in %.2f ms; waiting on %s\n", cpus,
               ms_since(t0), path.c_str());
  auto claim = standby::await_claim(path, std::chrono::seconds(10));
  if (!claim) {
    std::fprintf(stderr, "forkvm restore --standby: %s\n", claim.error().message.c_str());
    return 1;
  }
  ::prctl(PR_SET_PDEATHSIG, 0);  // now a VM's VMM: it outlives a server restart like any other
  const auto t1 = std::chrono::steady_clock::now();
  if (!claim->log_path.empty()) {
    const int log = ::open(claim->log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) {
      standby::answer(std::move(claim->connection), errno_error("open the log " + claim->log_path), 0);
      return 1;
    }
    ::dup2(log, STDOUT_FILENO);
    ::dup2(log, STDERR_FILENO);
    ::close(log);
  }
  std::fprintf(stderr, "forkvm restore: claimed (standby VMM pid %d, ready for %.0f ms)\n", ::getpid(),
               std::chrono::duration<double, std::milli>(t1 - t0).count());
  auto answer = [&claim](const Status& s, double ms) {
    standby::answer(std::move(claim->connection), s, ms);
  };
  auto args = parse_restore(claim->restore_args);
  if (!args) {
    answer(args.error(), 0);
    std::fprintf(stderr, "forkvm restore: %s\n", args.error().message.c_str());
    return kUsageError;
  }
  return restore_and_run(*args, std::move(*prepared), t1, answer);
}

}  // namespace

int restore_command(const std::vector<std::string>& argv) {
  const auto t0 = std::chrono::steady_clock::now();
  auto given = [&](std::string_view option) {
    return std::any_of(argv.begin(), argv.end(), [&](const std::string& a) {
      return a == option || (a.starts_with(option) && a.size() > option.size() && a[option.size()] == '=');
    });
  };
  if (given("--help")) {
    std::fputs(kRestoreUsage, stdout);
    return 0;
  }
  if (given("--standby")) {
    auto flags = Args::parse(argv, {"standby", "cpus"}, {});
    if (flags && !flags->positional().empty())
      flags = make_error("unexpected argument '{}'", flags->positional()[0]);
    auto cpus = flags ? flags->get_uint("cpus", 0, 0, 255) : Result<uint64_t>(flags.error());
    if (!cpus) {
      std::fprintf(stderr,
                   "forkvm restore --standby: %s (it takes only --cpus N: the restore's options come "
                   "with the claim)\n",
                   cpus.error().message.c_str());
      return kUsageError;
    }
    return run_standby(*flags->get("standby"), static_cast<uint32_t>(*cpus));
  }
  auto args = parse_restore(argv);
  if (!args) {
    std::fprintf(stderr, "forkvm restore: %s\n", args.error().message.c_str());
    return kUsageError;
  }
  return restore_and_run(*args, std::nullopt, t0, [](const Status&, double) {});
}

}  // namespace forkvm::cli
