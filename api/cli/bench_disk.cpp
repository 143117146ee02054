// forkvm bench disk: the Debian image booted on a layered copy-on-write disk
// (as every API VM runs), then what its disk does and what it costs the rest
// of the VM: direct-I/O write and read throughput as the guest's dd sees it,
// and the agent's exec round trip with the disk idle against the same while
// a guest writer keeps the disk busy. Every virtio device of a VM shares one
// event thread, so a disk that held it would show in the second figure.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "api/cli/bench_vm.hpp"
#include "vmm/elapsed.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kDiskUsage = R"(usage: forkvm bench disk [options]

  --mib N           bytes dd writes, then reads back, in MiB (default 256)
  --execs N         exec round trips of `true`, idle and under load (default 40)
  --image NAME|DIR  guest image (default: default, from tools/guest/artifacts image)
  --mem MiB         guest memory (default 1024)
  --cpus N          vCPUs (default 2)
  --json            print one JSON line

The guest runs on a new copy-on-write chain over the image's root disk. The
load is a guest shell looping `dd oflag=direct conv=fsync` of 64 MiB files.
)";

using Clock = std::chrono::steady_clock;

Result<Samples> exec_round_trips(BenchVm& vm, uint64_t n) {
  Samples ms;
  for (uint64_t i = 0; i < n; ++i) {
    const auto t0 = Clock::now();
    auto r = FORKVM_TRY(vm.exec("true"));
    if (r.exit_code != 0) return make_error("exec `true` exited {}", r.exit_code);
    ms.add(ms_since(t0));
  }
  return ms;
}

// MiB/s of a guest command that moves `mib` MiB, timed from the host.
Result<double> timed_mib_s(BenchVm& vm, const std::string& command, uint64_t mib) {
  const auto t0 = Clock::now();
  auto r = FORKVM_TRY(vm.exec(command));
  const double ms = ms_since(t0);
  if (r.exit_code != 0) return make_error("`{}` exited {}: {}", command, r.exit_code, r.stderr_data);
  return static_cast<double>(mib) / (ms / 1000);
}

struct Figures {
  double write_mib_s = 0, read_mib_s = 0;
  Samples idle_ms, loaded_ms;
};

Result<Figures> measure(BenchVm& vm, uint64_t mib, uint64_t execs) {
  Figures f;
  f.write_mib_s = FORKVM_TRY(timed_mib_s(
      vm,
      fmt::format("dd if=/dev/zero of=/root/bench-disk bs=1M count={} oflag=direct conv=fsync status=none",
                  mib),
      mib));
  // Read what was written, from the disk: not from the page cache.
  f.read_mib_s = FORKVM_TRY(timed_mib_s(vm,
                                        "sync && echo 3 >/proc/sys/vm/drop_caches && dd if=/root/bench-disk "
                                        "of=/dev/null bs=1M iflag=direct status=none",
                                        mib));
  f.idle_ms = FORKVM_TRY(exec_round_trips(vm, execs));
  auto started = FORKVM_TRY(
      vm.exec("rm -f /root/bench-stop /root/bench-writer; setsid sh -c 'echo $$ >/root/bench-writer; while [ "
              "! -e /root/bench-stop ]; do "
              "dd if=/dev/zero of=/root/bench-load bs=1M count=64 oflag=direct conv=fsync status=none; done' "
              "</dev/null >/dev/null 2>&1 & while [ ! -s /root/bench-writer ]; do sleep 0.05; done"));
  if (started.exit_code != 0) return make_error("starting the guest's writer exited {}", started.exit_code);
  auto loaded = exec_round_trips(vm, execs);
  auto stopped = vm.exec(
      "touch /root/bench-stop; while kill -0 $(cat /root/bench-writer) 2>/dev/null; do sleep 0.1; done; "
      "rm -f /root/bench-load /root/bench-disk /root/bench-writer /root/bench-stop");
  f.loaded_ms = FORKVM_TRY(std::move(loaded));
  if (!stopped.ok()) return stopped.error();
  return f;
}

}  // namespace

int bench_disk(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"mib", "execs", "image", "mem", "cpus"}, {"json", "help"});
  if (!args) return usage_error("bench disk", args.error());
  if (args->has("help")) {
    std::fputs(kDiskUsage, stdout);
    return 0;
  }
  auto mib = args->get_uint("mib", 256, 1, 1 << 20);
  auto execs = args->get_uint("execs", 40, 1, 100000);
  auto mem = args->get_uint("mem", 1024, 128, 65536);
  auto cpus = args->get_uint("cpus", 2, 1, 64);
  if (!mib || !execs || !mem || !cpus)
    return usage_error("bench disk", !mib     ? mib.error()
                                     : !execs ? execs.error()
                                     : !mem   ? mem.error()
                                              : cpus.error());
  auto image = engine::find_image(args->get("image").value_or("default"));
  if (!image) return usage_error("bench disk", image.error());
  auto dir = BenchDir::create();
  if (!dir) return usage_error("bench disk", dir.error());

  auto vm = BenchVm::boot(*image, dir->path(), "disk", *mem, static_cast<uint32_t>(*cpus));
  if (!vm) return usage_error("bench disk", vm.error());
  auto figures = [&]() -> Result<Figures> {
    FORKVM_CHECK(vm->wait_booted(std::chrono::minutes(10)));
    return measure(*vm, *mib, *execs);
  }();
  vm->stop();
  if (!figures) {
    std::fprintf(stderr, "forkvm bench disk: %s\n", figures.error().message.c_str());
    return 1;
  }
  const Figures& f = *figures;
  const double ratio = f.loaded_ms.median() / f.idle_ms.median();
  if (args->has("json")) {
    std::printf(
        "{\"bench\":\"disk\",\"mib\":%llu,\"write_mib_s\":%.1f,\"read_mib_s\":%.1f,\"exec_idle_ms\":%s,"
        "\"exec_idle_p99_ms\":%.2f,\"exec_loaded_ms\":%s,\"exec_loaded_p99_ms\":%.2f,\"loaded_ratio\":%.3f}"
        "\n",
        static_cast<unsigned long long>(*mib), f.write_mib_s, f.read_mib_s, f.idle_ms.json().c_str(),
        f.idle_ms.percentile(99), f.loaded_ms.json().c_str(), f.loaded_ms.percentile(99), ratio);
    return 0;
  }
  std::printf("layered disk, %llu MiB direct I/O: write %.1f MiB/s, read %.1f MiB/s\n",
              static_cast<unsigned long long>(*mib), f.write_mib_s, f.read_mib_s);
  std::printf("exec `true`, disk idle:    %s, p99 %.1f ms\n", f.idle_ms.text().c_str(),
              f.idle_ms.percentile(99));
  std::printf("exec `true`, disk writing: %s, p99 %.1f ms\n", f.loaded_ms.text().c_str(),
              f.loaded_ms.percentile(99));
  std::printf("ratio loaded/idle (median) %.3f\n", ratio);
  return 0;
}

}  // namespace forkvm::cli
