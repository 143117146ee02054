// forkvm bench fork|restore|suspend: the snapshot machinery on the Debian
// image, with the host's own fork() of the same resident memory measured in
// the same run as the physical reference for the parent's pause.
#include <fmt/format.h>
#include <poll.h>
#include <rapidjson/document.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "api/cli/bench_vm.hpp"
#include "devices/storage/chain_ops.hpp"
#include "vmm/elapsed.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kBootLimit = std::chrono::minutes(10);
constexpr auto kReadyLimit = std::chrono::minutes(5);

constexpr const char* kUsage = R"(usage: forkvm bench fork|restore|suspend [options]

  fork      live fork of a running guest: the parent's pause (the VMM's own
            figure), the host's fork() of the same resident memory, the time
            until each child answers an exec, each idle child's private memory
  restore   a live snapshot (pause, time to complete), then restores of it,
            alternating a new VMM process with a standby one (its KVM VM
            made ahead, as `forkvm serve` keeps them): start (or claim) to the
            vCPUs ready and to the first exec answered, the VMM's own restore
            time, private memory
  suspend   suspend (snapshot + VMM exit) and resume (restore to first exec),
            the memory written each time: all of it, then only changed pages

  --mem MiB      memory the guest dirties before the fork/snapshot (default 256)
  --vm-mem MiB   guest RAM (default mem + 512)
  --count N      fork: children per fork (default 4)
  --runs N       forks, restores or suspend/resume cycles (default 3)
  --dirty MiB    suspend: memory dirtied between cycles (default 16)
  --cpus N       guest vCPUs (default 2, as the API's VMs)
  --settle S     seconds the booted guest idles before it is measured (default 10):
                 systemd releases boot-time caches seconds after "Startup finished";
                 in a fork taken before that, every child would redo it
  --image NAME   guest image (default: default, from tools/guest/artifacts image)
  --json         one JSON line
)";

struct Options {
  uint64_t mem = 256, vm_mem = 768, count = 4, runs = 3, dirty = 16, cpus = 2, settle_s = 10;
  engine::GuestImage image;
  bool json = false;
};

Result<Options> parse(const std::vector<std::string>& argv, const char* mode) {
  auto args = FORKVM_TRY(Args::parse(
      argv, {"mem", "vm-mem", "count", "runs", "dirty", "image", "cpus", "settle"}, {"json", "help"}));
  if (args.has("help")) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  Options o;
  o.mem = FORKVM_TRY(args.get_uint("mem", 256, 1, 65536));
  o.vm_mem = FORKVM_TRY(args.get_uint("vm-mem", o.mem + 512, 256, 131072));
  o.count = FORKVM_TRY(args.get_uint("count", 4, 1, 64));
  o.runs = FORKVM_TRY(args.get_uint("runs", 3, 1, 1000));
  o.dirty = FORKVM_TRY(args.get_uint("dirty", 16, 1, 65536));
  o.cpus = FORKVM_TRY(args.get_uint("cpus", 2, 1, 64));
  o.settle_s = FORKVM_TRY(args.get_uint("settle", 10, 0, 3600));
  o.json = args.has("json");
  o.image = FORKVM_TRY(engine::find_image(args.get("image").value_or("default")));
  if (o.mem + 256 > o.vm_mem) return make_error("bench {}: --vm-mem must leave 256 MiB beyond --mem", mode);
  return o;
}

// Fills a tmpfs of its own in the guest with `mib` MiB (page cache the guest
// cannot drop), so that much guest RAM is resident and written.
Status dirty_guest(BenchVm& vm, uint64_t mib, uint64_t room_mib, const std::string& file) {
  const std::string cmd = fmt::format(
      "mountpoint -q /run/fill || {{ mkdir -p /run/fill && mount -t tmpfs -o size={}m fill /run/fill; }} && "
      "head -c {}M /dev/urandom > /run/fill/{}",
      room_mib, mib, file);
  auto r = FORKVM_TRY(vm.exec(cmd));
  if (r.exit_code != 0) return make_error("dirtying guest memory failed: {}", r.stderr_data);
  return {};
}

// The host's fork() of `kib` KiB of resident anonymous memory (huge pages
// advised, like guest RAM), `runs` times.
Result<Samples> host_fork_ms(uint64_t kib, uint64_t runs) {
  const size_t len = kib << 10;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return errno_error(fmt::format("mmap {} KiB", kib));
  ::madvise(p, len, MADV_HUGEPAGE);
  auto* bytes = static_cast<uint8_t*>(p);
  for (size_t i = 0; i < len; i += 4096) bytes[i] = static_cast<uint8_t>(i >> 12);
  Samples s;
  for (uint64_t r = 0; r < runs; ++r) {
    const auto t0 = Clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    s.add(ms_since(t0));
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
  ::munmap(p, len);
  return s;
}

double json_number(const std::string& json, const char* key) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember(key) || !d[key].IsNumber()) return -1;
  return d[key].GetDouble();
}

// The "forkvm restore: restored in X ms" line of a VMM's log: from its main() to the vCPUs ready.
Result<double> logged_restore_ms(const std::string& log_path) {
  std::ifstream in(log_path);
  constexpr std::string_view kMark = "restored in ";
  for (std::string line; std::getline(in, line);) {
    if (const size_t at = line.find(kMark); at != std::string::npos)
      return std::strtod(line.c_str() + at + kMark.size(), nullptr);
  }
  return make_error("no restore time in {}", log_path);
}

Result<BenchVm> boot_ready(const Options& o, const std::string& dir, const std::string& name) {
  auto vm = FORKVM_TRY(BenchVm::boot(o.image, dir, name, o.vm_mem, static_cast<uint32_t>(o.cpus)));
  if (auto s = vm.wait_booted(kBootLimit); !s.ok()) {
    vm.stop();
    return s.error();
  }
  std::this_thread::sleep_for(std::chrono::seconds(o.settle_s));
  return vm;
}

int fail(const char* mode, const Error& e) {
  std::fprintf(stderr, "forkvm bench %s: %s\n", mode, e.message.c_str());
  return 1;
}

// ---- fork ----

struct ForkRun {
  double pause_ms = 0, save_ms = 0, freeze_ms = 0, fork_ms = 0;
  std::vector<double> ready_ms;
  std::vector<BenchVm::PrivateSplit> private_kib;
};

Result<ForkRun> fork_once(BenchVm& parent, const std::string& dir, uint64_t run, uint64_t count,
                          uint64_t vm_mem_mib) {
  const std::string prefix = fmt::format("{}/r{}", dir, run);
  const auto t0 = Clock::now();
  const std::string reply = FORKVM_TRY(
      parent.control(fmt::format(R"({{"op":"fork","count":{},"prefix":"{}"}})", count, prefix)));
  // The parent rests while the children are measured: a page it wrote after the
  // fork would leave the original to the child alone and count as the child's.
  const bool parent_paused = parent.control(R"({"op":"pause"})").ok();
  ForkRun out;
  out.pause_ms = json_number(reply, "pause_ms");
  out.save_ms = json_number(reply, "save_ms");
  out.freeze_ms = json_number(reply, "freeze_ms");
  out.fork_ms = json_number(reply, "fork_ms");
  rapidjson::Document d;
  d.Parse(reply.c_str());
  std::vector<BenchVm> children;
  if (!d.HasParseError() && d.HasMember("children") && d["children"].IsArray()) {
    uint64_t i = 1;
    for (const auto& c : d["children"].GetArray()) {
      if (c.HasMember("pid") && c["pid"].IsInt())
        children.push_back(FORKVM_TRY(BenchVm::adopt(c["pid"].GetInt(), dir, fmt::format("r{}-{}", run, i))));
      ++i;
    }
  }
  if (children.size() != count) return make_error("fork: {} children in the reply, asked for {}", children.size(), count);
  // Each child polled on its own thread: the figure is when it answered.
  std::vector<std::future<Result<double>>> ready;
  for (auto& c : children) {
    ready.push_back(std::async(std::launch::async, [&c, t0]() -> Result<double> {
      FORKVM_CHECK(c.wait_ready(kReadyLimit));
      return ms_since(t0);
    }));
  }
  std::optional<Error> error;
  for (auto& f : ready) {
    auto r = f.get();
    if (r.ok()) out.ready_ms.push_back(*r);
    else if (!error) error = r.error();
  }
  // Idle for a moment, then what each child costs beyond what it shares.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  for (auto& c : children) {
    if (auto k = c.private_split(vm_mem_mib); k.ok()) out.private_kib.push_back(*k);
  }
  for (auto& c : children) c.stop();
  if (parent_paused) FORKVM_CHECK(parent.control(R"({"op":"resume"})"));
  if (error) return *error;
  return out;
}

int fork_mode(const std::vector<std::string>& argv) {
  auto o = parse(argv, "fork");
  if (!o.ok()) return usage_error("bench fork", o.error());
  auto dir = BenchDir::create();
  if (!dir.ok()) return fail("fork", dir.error());
  auto parent = boot_ready(*o, dir->path(), "p");
  if (!parent.ok()) return fail("fork", parent.error());
  if (auto s = dirty_guest(*parent, o->mem, o->mem + 8, "fill"); !s.ok()) {
    parent->stop();
    return fail("fork", s.error());
  }
  const auto rss = parent->rss_kib();
  Samples pause, save, freeze, forks, ready, priv, priv_guest, priv_own;
  uint64_t ok = 0;
  std::optional<Error> error;
  for (uint64_t r = 1; r <= o->runs && !error; ++r) {
    auto run = fork_once(*parent, dir->path(), r, o->count, o->vm_mem);
    if (!run.ok()) {
      error = run.error();
      break;
    }
    pause.add(run->pause_ms);
    save.add(run->save_ms);
    freeze.add(run->freeze_ms);
    forks.add(run->fork_ms);
    for (double v : run->ready_ms) ready.add(v);
    for (const auto& k : run->private_kib) {
      priv.add(static_cast<double>(k.guest_kib + k.own_kib));
      priv_guest.add(static_cast<double>(k.guest_kib));
      priv_own.add(static_cast<double>(k.own_kib));
    }
    ok += run->ready_ms.size();
  }
  parent->stop();
  if (error) return fail("fork", *error);
  if (!rss.ok()) return fail("fork", rss.error());
  auto host = host_fork_ms(*rss, std::max<uint64_t>(o->runs, 5));
  if (!host.ok()) return fail("fork", host.error());
  const double ratio = pause.median() / host->median();
  if (o->json) {
    std::printf(
        "{\"bench\":\"fork\",\"mem_mib\":%llu,\"vm_mem_mib\":%llu,\"count\":%llu,\"runs\":%llu,"
        "\"parent_rss_mib\":%.0f,\"parent_pause_ms\":%s,\"pause_save_ms\":%.2f,\"pause_freeze_ms\":%.2f,"
        "\"pause_fork_ms\":%.2f,\"host_fork_ms\":%s,\"pause_ratio\":%.2f,"
        "\"child_ready_ms\":%s,\"child_ready_p99_ms\":%.1f,\"children_ok\":%llu,\"child_private_kib\":%.0f,"
        "\"child_private_guest_kib\":%.0f,\"child_private_vmm_kib\":%.0f}\n",
        static_cast<unsigned long long>(o->mem), static_cast<unsigned long long>(o->vm_mem),
        static_cast<unsigned long long>(o->count), static_cast<unsigned long long>(o->runs),
        static_cast<double>(*rss) / 1024, pause.json().c_str(), save.median(), freeze.median(),
        forks.median(), host->json().c_str(), ratio, ready.json().c_str(), ready.percentile(99),
        static_cast<unsigned long long>(ok), priv.median(), priv_guest.median(), priv_own.median());
    return 0;
  }
  std::printf("live fork, %llu x %llu children, guest %llu MiB with %llu MiB dirtied (VMM resident %.0f MiB)\n",
              static_cast<unsigned long long>(o->runs), static_cast<unsigned long long>(o->count),
              static_cast<unsigned long long>(o->vm_mem), static_cast<unsigned long long>(o->mem),
              static_cast<double>(*rss) / 1024);
  std::printf("  parent pause         %s\n", pause.text().c_str());
  std::printf(
      "    of which (medians): state %.2f ms, disk freeze %.2f ms, fork() %.2f ms (one, whatever the "
      "count)\n",
      save.median(), freeze.median(), forks.median());
  std::printf("  host fork() of same  %s\n", host->text().c_str());
  std::printf("  ratio pause/fork()   %.2f (median)\n", ratio);
  std::printf("  child answers exec   %s after the fork call; p99 %.1f ms; %llu of %llu ok\n", ready.text().c_str(),
              ready.percentile(99), static_cast<unsigned long long>(ok),
              static_cast<unsigned long long>(o->runs * o->count));
  std::printf(
      "  private per idle child  %.0f KiB (median): %.0f KiB of guest RAM, %.0f KiB the VMM's own "
      "(the parent paused meanwhile)\n",
      priv.median(), priv_guest.median(), priv_own.median());
  return 0;
}

// ---- restore ----

// One way of restoring (a new VMM process, or a standby claimed) and its figures.
struct RestoreArm {
  Samples to_restored;  // start (spawn or claim) until the VMM restored the machine
  Samples vmm_restore;  // the VMM's own figure: from main() (new) or the claim (standby)
  Samples to_exec;      // start until the guest's agent answers an exec
  // One restore of `snap` on `disk`, in a standby VMM when `in_standby`.
  // Returns the restored VMM's private memory: guest RAM it wrote, and its own.
  Result<BenchVm::PrivateSplit> run(const std::string& snap, const std::string& disk, const std::string& dir,
                                    const std::string& name, bool in_standby, uint64_t vm_mem_mib) {
    Result<BenchVm> vm = make_error("not started");
    Clock::time_point t0;
    if (in_standby) {
      vm = FORKVM_TRY(BenchVm::standby(dir, name));
      t0 = Clock::now();
      vmm_restore.add(FORKVM_TRY(vm->claim(snap, disk)));
      to_restored.add(ms_since(t0));
    } else {
      t0 = Clock::now();
      vm = FORKVM_TRY(BenchVm::restore(snap, disk, dir, name));
      // The VMM logs its restore once done: an inotify wake-up on that write is when
      // it happened (a busy poll of the file froze the nested rig's L1 twice of two).
      UniqueFd watch(::inotify_init1(IN_CLOEXEC));
      if (!watch.valid() || ::inotify_add_watch(watch.get(), vm->path(".log").c_str(), IN_MODIFY) < 0)
        return errno_error("inotify on " + vm->path(".log"));
      Result<double> logged = make_error("not yet");
      while (!(logged = logged_restore_ms(vm->path(".log"))).ok() && vm->running() && ms_since(t0) < 60000) {
        pollfd p{watch.get(), POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) {
          char events[4096];
          (void)!::read(watch.get(), events, sizeof events);
        }
      }
      if (logged.ok()) {
        to_restored.add(ms_since(t0));
        vmm_restore.add(*logged);
      }
    }
    auto ready = vm->wait_ready(kReadyLimit);
    const double ms = ms_since(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto k = vm->private_split(vm_mem_mib);
    vm->stop();
    FORKVM_CHECK(ready);
    to_exec.add(ms);
    return k;
  }
};

int restore_mode(const std::vector<std::string>& argv) {
  auto o = parse(argv, "restore");
  if (!o.ok()) return usage_error("bench restore", o.error());
  auto dir = BenchDir::create();
  if (!dir.ok()) return fail("restore", dir.error());
  auto vm = boot_ready(*o, dir->path(), "p");
  if (!vm.ok()) return fail("restore", vm.error());
  if (auto s = dirty_guest(*vm, o->mem, o->mem + 8, "fill"); !s.ok()) {
    vm->stop();
    return fail("restore", s.error());
  }
  const std::string snap = dir->path() + "/snap";
  auto reply = vm->control(fmt::format(R"({{"op":"snapshot","dir":"{}"}})", snap));
  vm->stop();
  if (!reply.ok()) return fail("restore", reply.error());
  auto frozen = storage::load_chain(snap + "/chain");
  if (!frozen.ok()) return fail("restore", frozen.error());
  Samples priv, priv_guest, priv_own;
  RestoreArm fresh, standby;
  for (uint64_t r = 1; r <= o->runs * 2; ++r) {
    const std::string name = fmt::format("r{}", r);
    const std::string disk = fmt::format("{}/{}.disk", dir->path(), name);
    if (auto made = storage::fork_chain_from(*frozen, disk); !made.ok()) return fail("restore", made.error());
    auto k = r % 2 == 0 ? standby.run(snap, disk, dir->path(), name, true, o->vm_mem)
                        : fresh.run(snap, disk, dir->path(), name, false, o->vm_mem);
    if (!k.ok()) return fail("restore", k.error());
    priv.add(static_cast<double>(k->guest_kib + k->own_kib));
    priv_guest.add(static_cast<double>(k->guest_kib));
    priv_own.add(static_cast<double>(k->own_kib));
  }
  const double pause_ms = json_number(*reply, "pause_ms"), total_ms = json_number(*reply, "total_ms");
  const double written = json_number(*reply, "memory_data_bytes") / (1 << 20);
  if (o->json) {
    std::printf(
        "{\"bench\":\"restore\",\"mem_mib\":%llu,\"vm_mem_mib\":%llu,\"runs\":%llu,"
        "\"snapshot_pause_ms\":%.2f,\"snapshot_total_ms\":%.1f,\"memory_written_mib\":%.1f,"
        "\"restore_to_exec_ms\":%s,\"standby_restore_to_exec_ms\":%s,"
        "\"start_to_restored_ms\":%s,\"standby_start_to_restored_ms\":%s,"
        "\"vmm_restore_ms\":%s,\"standby_vmm_restore_ms\":%s,\"restored_private_kib\":%.0f,"
        "\"restored_private_guest_kib\":%.0f,\"restored_private_vmm_kib\":%.0f}\n",
        static_cast<unsigned long long>(o->mem), static_cast<unsigned long long>(o->vm_mem),
        static_cast<unsigned long long>(o->runs), pause_ms, total_ms, written, fresh.to_exec.json().c_str(),
        standby.to_exec.json().c_str(), fresh.to_restored.json().c_str(), standby.to_restored.json().c_str(),
        fresh.vmm_restore.json().c_str(), standby.vmm_restore.json().c_str(), priv.median(),
        priv_guest.median(), priv_own.median());
    return 0;
  }
  std::printf("live snapshot of a guest of %llu MiB with %llu MiB dirtied: paused %.2f ms, complete after %.0f ms, "
              "%.1f MiB of memory written\n",
              static_cast<unsigned long long>(o->vm_mem), static_cast<unsigned long long>(o->mem), pause_ms, total_ms,
              written);
  auto ratio = [](const Samples& a, const Samples& b) {
    return b.median() > 0 ? a.median() / b.median() : 0.0;
  };
  std::printf("%llu restores each in a new VMM process / in a standby VMM (its KVM VM made ahead)\n",
              static_cast<unsigned long long>(o->runs));
  std::printf("start (or claim) to the guest's vCPUs ready\n  new      %s\n  standby  %s (ratio %.2f)\n",
              fresh.to_restored.text().c_str(), standby.to_restored.text().c_str(),
              ratio(standby.to_restored, fresh.to_restored));
  std::printf("  of which the VMM's restore after main() / after the claim: %.1f / %.1f ms (medians)\n",
              fresh.vmm_restore.median(), standby.vmm_restore.median());
  std::printf("start (or claim) to the first exec answered\n  new      %s\n  standby  %s (ratio %.2f)\n",
              fresh.to_exec.text().c_str(), standby.to_exec.text().c_str(),
              ratio(standby.to_exec, fresh.to_exec));
  std::printf("private memory per restored VMM  %.0f KiB (median): %.0f KiB of guest RAM, %.0f KiB its own\n",
              priv.median(), priv_guest.median(), priv_own.median());
  return 0;
}

// ---- suspend ----

int suspend_mode(const std::vector<std::string>& argv) {
  auto o = parse(argv, "suspend");
  if (!o.ok()) return usage_error("bench suspend", o.error());
  auto dir = BenchDir::create();
  if (!dir.ok()) return fail("suspend", dir.error());
  const uint64_t room = o->mem + o->dirty * o->runs + 8;
  auto first = boot_ready(*o, dir->path(), "v0");
  if (!first.ok()) return fail("suspend", first.error());
  std::optional<BenchVm> vm(std::move(*first));
  if (auto s = dirty_guest(*vm, o->mem, room, "fill"); !s.ok()) {
    vm->stop();
    return fail("suspend", s.error());
  }
  // Every generation runs on the chain of the first: suspend froze it and
  // gave it a new top, as the API engine does.
  const std::string disk = dir->path() + "/v0.disk";
  Samples suspend_ms, resume_ms, delta_mib;
  double full_mib = 0;
  bool deltas = true;
  for (uint64_t r = 1; r <= o->runs; ++r) {
    const std::string snap = fmt::format("{}/s{}", dir->path(), r);
    const auto t0 = Clock::now();
    auto reply = vm->control(fmt::format(R"({{"op":"snapshot","dir":"{}","stop":true}})", snap));
    if (!reply.ok()) {
      vm->stop();
      return fail("suspend", reply.error());
    }
    vm->vmm().wait_for(std::chrono::seconds(60));
    suspend_ms.add(ms_since(t0));
    const double mib = json_number(*reply, "memory_data_bytes") / (1 << 20);
    if (r == 1) full_mib = mib;
    else delta_mib.add(mib);
    if (r > 1 && reply->find("\"memory_delta\":true") == std::string::npos) deltas = false;

    const auto t1 = Clock::now();
    auto next = BenchVm::restore(snap, disk, dir->path(), fmt::format("v{}", r));
    if (!next.ok()) return fail("suspend", next.error());
    vm.emplace(std::move(*next));
    if (auto s = vm->wait_ready(kReadyLimit); !s.ok()) {
      vm->stop();
      return fail("suspend", s.error());
    }
    resume_ms.add(ms_since(t1));
    if (auto s = dirty_guest(*vm, o->dirty, room, fmt::format("d{}", r)); !s.ok()) {
      vm->stop();
      return fail("suspend", s.error());
    }
  }
  vm->stop();
  if (o->json) {
    std::printf("{\"bench\":\"suspend\",\"mem_mib\":%llu,\"vm_mem_mib\":%llu,\"runs\":%llu,\"dirty_mib\":%llu,"
                "\"suspend_ms\":%s,\"resume_to_exec_ms\":%s,\"first_written_mib\":%.1f,\"delta_written_mib\":%s,"
                "\"deltas\":%s}\n",
                static_cast<unsigned long long>(o->mem), static_cast<unsigned long long>(o->vm_mem),
                static_cast<unsigned long long>(o->runs), static_cast<unsigned long long>(o->dirty),
                suspend_ms.json().c_str(), resume_ms.json().c_str(), full_mib,
                o->runs > 1 ? delta_mib.json().c_str() : "null", deltas ? "true" : "false");
    return 0;
  }
  std::printf("suspend/resume, %llu cycles, guest %llu MiB with %llu MiB dirtied, then %llu MiB more per cycle\n",
              static_cast<unsigned long long>(o->runs), static_cast<unsigned long long>(o->vm_mem),
              static_cast<unsigned long long>(o->mem), static_cast<unsigned long long>(o->dirty));
  std::printf("  suspend (save + VMM exit)     %s\n", suspend_ms.text().c_str());
  std::printf("  resume to first exec          %s\n", resume_ms.text().c_str());
  std::printf("  memory written: first %.1f MiB (whole RAM, zero pages skipped)", full_mib);
  if (o->runs > 1)
    std::printf(", then %s per suspend (%s)", delta_mib.text("MiB").c_str(),
                deltas ? "deltas" : "not all deltas");
  std::printf("\n");
  return 0;
}

}  // namespace

int bench_fork(const std::vector<std::string>& argv) { return fork_mode(argv); }
int bench_restore(const std::vector<std::string>& argv) { return restore_mode(argv); }
int bench_suspend(const std::vector<std::string>& argv) { return suspend_mode(argv); }

}  // namespace forkvm::cli
