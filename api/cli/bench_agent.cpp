// forkvm bench agent: the Debian image booted to agent-ready (forkvm against
// QEMU microvm, same kernel, disk and marker, interleaved run by run), then
// the agent's exec round trip and file throughput through the vsock socket.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "api/agent/agent_client.hpp"
#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "api/cli/child_process.hpp"
#include "api/engine/image.hpp"
#include "api/engine/vmm_process.hpp"
#include "vmm/elapsed.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kAgentUsage = R"(usage: forkvm bench agent [options]

  --runs N          boots per VMM (default 3)
  --execs N         exec round trips of `true` (default 1000)
  --image NAME|DIR  guest image (default: default, from tools/guest/artifacts image)
  --mem MiB         guest memory (default 1024)
  --cpus N          vCPUs (default 2)
  --qemu PATH       QEMU binary (default qemu-system-x86_64); "none" skips QEMU
  --json            print one JSON line

Boot: process start to the agent's console marker FORKVM-AGENT-READY, each run
on a fresh copy of the image's root disk. Exec and files: through the VMM's
vsock socket, as the API server does.
)";

constexpr const char* kMarker = "FORKVM-AGENT-READY";
using Clock = std::chrono::steady_clock;

struct Throughput {
  double put_mib_s = 0, get_mib_s = 0;
};

Result<Throughput> file_throughput(agent::AgentClient& client, size_t bytes, int reps) {
  std::string data(bytes, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : data) c = static_cast<char>(rng());
  double put_ms = 0, get_ms = 0;
  for (int i = 0; i < reps; i++) {
    std::string path = fmt::format("/root/bench-{}.bin", bytes);
    auto t0 = Clock::now();
    FORKVM_TRY(client.write_file({.path = path}, data));
    put_ms += ms_since(t0);
    t0 = Clock::now();
    auto back = FORKVM_TRY(client.read_file_all(path, bytes + 1));
    get_ms += ms_since(t0);
    if (back != data) return make_error("{} read back differs from what was written", path);
  }
  double mib = static_cast<double>(bytes) * reps / (1 << 20);
  return Throughput{mib / (put_ms / 1000), mib / (get_ms / 1000)};
}

}  // namespace

int bench_agent(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"runs", "execs", "image", "mem", "cpus", "qemu"}, {"json", "help"});
  if (!args) return usage_error("bench agent", args.error());
  if (args->has("help")) {
    std::fputs(kAgentUsage, stdout);
    return 0;
  }
  auto runs = args->get_uint("runs", 3, 1, 100);
  auto execs = args->get_uint("execs", 1000, 1, 1000000);
  auto mem = args->get_uint("mem", 1024, 128, 65536);
  auto cpus = args->get_uint("cpus", 2, 1, 64);
  if (!runs || !execs || !mem || !cpus)
    return usage_error("bench agent", !runs ? runs.error() : !execs ? execs.error() : !mem ? mem.error() : cpus.error());
  auto image = engine::find_image(args->get("image").value_or("default"));
  if (!image) return usage_error("bench agent", image.error());
  const std::string qemu = args->get("qemu").value_or("qemu-system-x86_64");
  const std::string m = std::to_string(*mem), c = std::to_string(*cpus);

  // A local copy of the image first: per-run copies from it are cheap even
  // when the image sits on a slow share (the rig's 9p root).
  char tmpl[] = "/tmp/forkvm-bench-agent.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return usage_error("bench agent", errno_error("mkdtemp"));
  const std::string dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  const std::string base = dir + "/base.ext4", disk = dir + "/disk.ext4", sock = dir + "/vsock.sock";
  if (auto s = engine::copy_sparse(image->rootfs, base); !s) return usage_error("bench agent", s.error());
  auto fresh_disk = [&]() -> Status {
    ::unlink(disk.c_str());
    return engine::copy_sparse(base, disk);
  };
  const std::vector<std::string> forkvm_argv = {self_exe(), "run", "--kernel", image->kernel, "--disk", disk,
                                                "--mem", m, "--cpus", c, "--cmdline", image->cmdline,
                                                "--vsock", sock};
  const std::vector<std::string> qemu_argv = {
      qemu, "-enable-kvm", "-M", "microvm", "-cpu", "host", "-m", m, "-smp", c, "-nodefaults", "-no-user-config",
      "-nographic", "-serial", "stdio", "-no-reboot", "-kernel", image->kernel, "-append",
      "console=ttyS0 reboot=k panic=-1 " + image->cmdline, "-drive",
      "id=root,file=" + disk + ",format=raw,if=none", "-device", "virtio-blk-device,drive=root", "-device",
      "vhost-vsock-device,guest-cid=3"};

  Samples fk_ready, q_ready;
  const bool with_qemu = qemu != "none";
  for (uint64_t i = 0; i < *runs; ++i) {
    for (int which = 0; which < (with_qemu ? 2 : 1); ++which) {
      if (auto s = fresh_disk(); !s) return usage_error("bench agent", s.error());
      ::unlink(sock.c_str());
      auto r = run_timed(which == 0 ? forkvm_argv : qemu_argv, kMarker, std::chrono::minutes(10), true);
      if (!r || r->marker_ms < 0) {
        std::fprintf(stderr, "bench agent: %s boot %llu failed: %s\n", which == 0 ? "forkvm" : "qemu",
                     static_cast<unsigned long long>(i), r ? "no marker" : r.error().message.c_str());
        if (r) std::fprintf(stderr, "--- its output (tail) ---\n%s\n---\n",
                            r->output.substr(r->output.size() > 3000 ? r->output.size() - 3000 : 0).c_str());
        return 1;
      }
      (which == 0 ? fk_ready : q_ready).add(r->marker_ms);
    }
  }

  // One more forkvm boot that stays up for the agent's round trips.
  if (auto s = fresh_disk(); !s) return usage_error("bench agent", s.error());
  ::unlink(sock.c_str());
  auto vmm = engine::VmmProcess::spawn(forkvm_argv, dir + "/vmm.log");
  if (!vmm) return usage_error("bench agent", vmm.error());
  agent::ClientOptions o;
  o.socket_path = sock;
  o.vsock_mux = true;
  o.call_timeout_ms = 600000;
  agent::AgentClient client(o);
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (!(::access(sock.c_str(), F_OK) == 0 && client.ready().ok())) {
    if (!(*vmm)->running() || Clock::now() > deadline) {
      std::fprintf(stderr, "bench agent: the guest's agent never answered\n");
      (*vmm)->signal(SIGKILL);
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Samples exec_us;
  std::string failure;
  for (uint64_t i = 0; i < *execs && failure.empty(); ++i) {
    auto t0 = Clock::now();
    auto r = client.exec({.command = "true"});
    if (!r || r->exit_code != 0) failure = r ? "exec true did not exit 0" : r.error().message;
    exec_us.add(ms_since(t0) * 1000);
  }
  Result<Throughput> small = failure.empty() ? file_throughput(client, 1u << 20, 16) : make_error("skipped");
  Result<Throughput> large = failure.empty() && small ? file_throughput(client, 64u << 20, 2) : make_error("skipped");
  (*vmm)->signal(SIGTERM);
  (*vmm)->wait_for(std::chrono::seconds(20));
  if (!failure.empty() || !small || !large) {
    std::fprintf(stderr, "bench agent: %s\n",
                 !failure.empty() ? failure.c_str() : (!small ? small.error() : large.error()).message.c_str());
    return 1;
  }
  const double ratio = with_qemu ? fk_ready.median() / q_ready.median() : 0;
  if (args->has("json")) {
    std::printf("{\"bench\":\"agent\",\"runs\":%llu,\"ready_ms\":%s,\"qemu_ready_ms\":%s,\"ratio\":%.3f,"
                "\"exec_p50_us\":%.1f,\"exec_p99_us\":%.1f,\"put_mib_s\":%.1f,\"get_mib_s\":%.1f,"
                "\"put_1mib_mib_s\":%.1f,\"get_1mib_mib_s\":%.1f}\n",
                static_cast<unsigned long long>(*runs), fk_ready.json().c_str(),
                with_qemu ? q_ready.json().c_str() : "null", ratio, exec_us.percentile(50), exec_us.percentile(99),
                large->put_mib_s, large->get_mib_s, small->put_mib_s, small->get_mib_s);
  } else {
    std::printf("boot to agent-ready, %llu runs, %s MiB, %s vCPU(s)\n", static_cast<unsigned long long>(*runs),
                m.c_str(), c.c_str());
    std::printf("  forkvm         %s\n", fk_ready.text().c_str());
    if (with_qemu) {
      std::printf("  qemu microvm   %s\n", q_ready.text().c_str());
      std::printf("  ratio forkvm/qemu (median) %.3f\n", ratio);
    }
    std::printf("exec `true`, %llu round trips: p50 %.0f us, p99 %.0f us\n",
                static_cast<unsigned long long>(*execs), exec_us.percentile(50), exec_us.percentile(99));
    std::printf("files 1 MiB:  put %.1f MiB/s, get %.1f MiB/s\n", small->put_mib_s, small->get_mib_s);
    std::printf("files 64 MiB: put %.1f MiB/s, get %.1f MiB/s\n", large->put_mib_s, large->get_mib_s);
  }
  return 0;
}

}  // namespace forkvm::cli
