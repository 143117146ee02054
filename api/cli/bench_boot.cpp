// forkvm bench boot: boot time of forkvm against QEMU microvm, interleaved
// run by run so that both see the same machine state.
#include <algorithm>
#include <cstdio>
#include <unistd.h>

#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "api/cli/child_process.hpp"
#include "api/cli/commands.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kBootUsage = R"(usage: forkvm bench boot [options]

  --runs N          boots per VMM (default 10)
  --kernel PATH     guest kernel (default: tools/guest/artifacts vmlinux)
  --initrd PATH     initramfs (default: tools/guest/artifacts initramfs)
  --mem MiB         guest memory (default 256)
  --cpus N          vCPUs (default 1)
  --qemu PATH       QEMU binary (default qemu-system-x86_64)
  --json            print one JSON line

Times are from process start to the marker FORKVM-GUEST-READY on the serial
console, and to process exit (the guest powers off right after the marker).
)";

constexpr const char* kMarker = "FORKVM-GUEST-READY";
constexpr const char* kGuestArgs = "forkvm.test=poweroff";

}  // namespace

int bench_boot(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"runs", "kernel", "initrd", "mem", "cpus", "qemu"}, {"json", "help"});
  if (!args) return usage_error("bench boot", args.error());
  if (args->has("help")) {
    std::fputs(kBootUsage, stdout);
    return 0;
  }
  auto runs = args->get_uint("runs", 10, 1, 1000);
  auto mem = args->get_uint("mem", 256, 64, 65536);
  auto cpus = args->get_uint("cpus", 1, 1, 64);
  if (!runs || !mem || !cpus) return usage_error("bench boot", !runs ? runs.error() : !mem ? mem.error() : cpus.error());
  auto kernel = args->get("kernel") ? Result<std::string>(*args->get("kernel")) : guest_artifact("vmlinux");
  auto initrd = args->get("initrd") ? Result<std::string>(*args->get("initrd")) : guest_artifact("initramfs");
  if (!kernel || !initrd) return usage_error("bench boot", !kernel ? kernel.error() : initrd.error());
  const std::string qemu = args->get("qemu").value_or("qemu-system-x86_64");
  const std::string m = std::to_string(*mem);
  const std::string c = std::to_string(*cpus);

  const std::vector<std::string> forkvm_argv = {self_exe(), "run",    "--kernel", *kernel, "--initrd", *initrd,
                                                "--mem",    m,        "--cpus",   c,       "--cmdline", kGuestArgs};
  const std::vector<std::string> qemu_argv = {
      qemu,  "-enable-kvm", "-M",         "microvm",  "-cpu",      "host",    "-m",
      m,     "-smp",        c,            "-nodefaults", "-no-user-config", "-nographic", "-serial",
      "stdio", "-no-reboot", "-kernel",   *kernel,    "-initrd",   *initrd,   "-append",
      std::string("console=ttyS0 reboot=k panic=-1 ") + kGuestArgs};

  Samples fk_marker, fk_exit, q_marker, q_exit;
  for (uint64_t i = 0; i < *runs; ++i) {
    for (int which = 0; which < 2; ++which) {
      const auto& cmd = which == 0 ? forkvm_argv : qemu_argv;
      auto r = run_timed(cmd, kMarker, std::chrono::seconds(120));
      if (!r || r->marker_ms < 0) {
        std::fprintf(stderr, "bench boot: %s run %llu failed: %s\n", which == 0 ? "forkvm" : "qemu",
                     static_cast<unsigned long long>(i), r ? "no marker" : r.error().message.c_str());
        if (r) std::fprintf(stderr, "--- its output ---\n%s\n---\n", r->output.c_str());
        return 1;
      }
      (which == 0 ? fk_marker : q_marker).add(r->marker_ms);
      (which == 0 ? fk_exit : q_exit).add(r->exit_ms);
    }
  }
  const double ratio = fk_marker.median() / q_marker.median();
  if (args->has("json")) {
    std::printf("{\"bench\":\"boot\",\"runs\":%llu,\"forkvm_ms\":%s,\"qemu_ms\":%s,\"ratio\":%.3f,"
                "\"forkvm_exit_ms\":%s,\"qemu_exit_ms\":%s}\n",
                static_cast<unsigned long long>(*runs), fk_marker.json().c_str(), q_marker.json().c_str(), ratio,
                fk_exit.json().c_str(), q_exit.json().c_str());
  } else {
    std::printf("boot to marker, %llu runs, %s MiB, %s vCPU(s)\n", static_cast<unsigned long long>(*runs),
                m.c_str(), c.c_str());
    std::printf("  forkvm         %s\n", fk_marker.text().c_str());
    std::printf("  qemu microvm   %s\n", q_marker.text().c_str());
    std::printf("  ratio forkvm/qemu (median) %.3f\n", ratio);
    std::printf("process start to exit\n  forkvm         %s\n  qemu microvm   %s\n", fk_exit.text().c_str(),
                q_exit.text().c_str());
  }
  return 0;
}

}  // namespace forkvm::cli
