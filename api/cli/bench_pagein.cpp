// forkvm bench pagein: what a restored VM pays the first time it touches a
// page of its memory file, by the two ways a restore can load memory
// lazily (fork-and-snapshot.md):
//
//   map-private  the file mapped MAP_PRIVATE (what Machine::restore does): a
//                read maps the page-cache page, a write copies it, all in the
//                kernel's fault path
//   userfaultfd  anonymous memory registered for missing-page faults: a
//                handler thread reads each page from the file and installs
//                it with UFFDIO_COPY (a round trip to user space per page)
//
// and, as the eager reference, reading the whole file into anonymous memory
// up front. No KVM needed: a vCPU's first access to guest RAM takes the same
// host fault as the loop here. Pages are touched in a random order, as a
// guest's working set is.
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include "api/cli/args.hpp"
#include "api/cli/bench_common.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kPage = 4096;

constexpr const char* kUsage = R"(usage: forkvm bench pagein [--mem MiB] [--runs N] [--dir DIR] [--json]

First touch of every page of a memory file, in random order: MAP_PRIVATE
(read, then write), userfaultfd with a handler thread (UFFDIO_COPY from the
file), and reading the whole file into anonymous memory up front.

  --mem MiB   size of the memory file (default 256)
  --runs N    repetitions; medians are printed (default 3)
  --dir DIR   where the file is made (default /var/tmp); the page cache is warm,
              as for a pool of restores from one snapshot
  --json      one JSON line
)";

struct Mapping {
  void* addr = MAP_FAILED;
  size_t size = 0;
  Mapping(void* a, size_t s) : addr(a), size(s) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, size);
  }
  [[nodiscard]] uint8_t* bytes() const { return static_cast<uint8_t*>(addr); }
};

// Touches the pages in `order`; returns ns per page.
double touch(const Mapping& m, const std::vector<size_t>& order, bool write) {
  const auto t0 = Clock::now();
  for (size_t page : order) {
    volatile uint8_t* p = m.bytes() + page * kPage;  // volatile: every access happens
    const uint8_t v = *p;
    if (write) *p = static_cast<uint8_t>(v + 1);
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  return ns / static_cast<double>(order.size());
}

Result<double> map_private(int fd, size_t size, const std::vector<size_t>& order, bool write) {
  Mapping m(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), size);
  if (m.addr == MAP_FAILED) return errno_error("bench pagein: mmap the memory file");
  return touch(m, order, write);
}

Result<double> eager_copy(int fd, size_t size, const std::vector<size_t>& order) {
  Mapping m(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), size);
  if (m.addr == MAP_FAILED) return errno_error("bench pagein: mmap anonymous memory");
  const auto t0 = Clock::now();
  for (size_t done = 0; done < size;) {
    const ssize_t n = ::pread(fd, m.bytes() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) return errno_error("bench pagein: read the memory file");
    done += static_cast<size_t>(n);
  }
  const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
  (void)touch(m, order, false);
  return ns / static_cast<double>(size / kPage);
}

// The handler a userfaultfd restore would run: every missing page read
// from the file at the same offset and copied in.
void serve_faults(int uffd, int fd, const Mapping& m, std::atomic<bool>& stop, std::atomic<int>& failed) {
  std::vector<uint8_t> page(kPage);
  while (!stop.load()) {
    pollfd p{uffd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    uffd_msg msg{};
    if (::read(uffd, &msg, sizeof msg) != sizeof msg) continue;
    if (msg.event != UFFD_EVENT_PAGEFAULT) continue;
    const uint64_t at =
        (msg.arg.pagefault.address & ~uint64_t{kPage - 1}) - reinterpret_cast<uint64_t>(m.addr);
    if (::pread(fd, page.data(), kPage, static_cast<off_t>(at)) != static_cast<ssize_t>(kPage)) {
      failed.store(errno);
      return;
    }
    uffdio_copy copy{};
    copy.dst = reinterpret_cast<uint64_t>(m.addr) + at;
    copy.src = reinterpret_cast<uint64_t>(page.data());
    copy.len = kPage;
    if (::ioctl(uffd, UFFDIO_COPY, &copy) != 0 && errno != EEXIST) {
      failed.store(errno);
      return;
    }
  }
}

Result<double> userfault(int fd, size_t size, const std::vector<size_t>& order) {
  UniqueFd uffd(static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK)));
  if (!uffd.valid())
    return errno_error("bench pagein: userfaultfd (needs root or vm.unprivileged_userfaultfd=1)");
  uffdio_api api{};
  api.api = UFFD_API;
  if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) return errno_error("bench pagein: UFFDIO_API");
  Mapping m(::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), size);
  if (m.addr == MAP_FAILED) return errno_error("bench pagein: mmap anonymous memory");
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<uint64_t>(m.addr);
  reg.range.len = size;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING;
  if (::ioctl(uffd.get(), UFFDIO_REGISTER, &reg) != 0) return errno_error("bench pagein: UFFDIO_REGISTER");
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::thread handler(serve_faults, uffd.get(), fd, std::cref(m), std::ref(stop), std::ref(failed));
  const double ns = touch(m, order, false);
  stop.store(true);
  handler.join();
  if (failed.load() != 0) return errno_error("bench pagein: the fault handler", failed.load());
  return ns;
}

Result<UniqueFd> make_memory_file(const std::string& dir, size_t size) {
  std::string path = dir + "/forkvm-pagein.XXXXXX";
  UniqueFd fd(::mkstemp(path.data()));
  if (!fd.valid()) return errno_error(fmt::format("bench pagein: create a file in {}", dir));
  ::unlink(path.c_str());
  std::vector<uint8_t> chunk(1 << 20);
  std::mt19937_64 rng(42);
  for (size_t done = 0; done < size; done += chunk.size()) {
    for (size_t i = 0; i < chunk.size(); i += 8) {
      const uint64_t v = rng();
      std::memcpy(chunk.data() + i, &v, 8);
    }
    if (::pwrite(fd.get(), chunk.data(), chunk.size(), static_cast<off_t>(done)) !=
        static_cast<ssize_t>(chunk.size()))
      return errno_error(fmt::format("bench pagein: write {}", path));
  }
  return fd;
}

}  // namespace

int bench_pagein(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"mem", "runs", "dir"}, {"json", "help"});
  if (!args.ok()) return usage_error("bench pagein", args.error());
  if (args->has("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  auto mem = args->get_uint("mem", 256, 1, 65536);
  auto runs = args->get_uint("runs", 3, 1, 100);
  if (!mem.ok()) return usage_error("bench pagein", mem.error());
  if (!runs.ok()) return usage_error("bench pagein", runs.error());
  const size_t size = *mem << 20;
  auto fd = make_memory_file(args->get("dir").value_or("/var/tmp"), size);
  if (!fd.ok()) return usage_error("bench pagein", fd.error());

  std::vector<size_t> order(size / kPage);
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
  Samples read_ns, write_ns, uffd_ns, eager_ns;
  for (uint64_t i = 0; i < *runs; ++i) {
    auto r = map_private(fd->get(), size, order, false);
    auto w = r.ok() ? map_private(fd->get(), size, order, true) : r;
    auto u = w.ok() ? userfault(fd->get(), size, order) : w;
    auto e = u.ok() ? eager_copy(fd->get(), size, order) : u;
    if (!e.ok()) {
      std::fprintf(stderr, "forkvm %s\n", e.error().message.c_str());
      return 1;
    }
    read_ns.add(*r);
    write_ns.add(*w);
    uffd_ns.add(*u);
    eager_ns.add(*e);
  }
  const double ratio = uffd_ns.median() / read_ns.median();
  if (args->has("json")) {
    fmt::print(
        R"({{"bench":"pagein","mem_mib":{},"runs":{},"map_private_read_ns":{},"map_private_write_ns":{},)"
        R"("userfaultfd_ns":{},"eager_read_ns_per_page":{},"uffd_vs_map_private":{:.2f}}})"
        "\n",
        *mem, *runs, read_ns.json(), write_ns.json(), uffd_ns.json(), eager_ns.json(), ratio);
    return 0;
  }
  fmt::print("first touch of a page, {} MiB file, warm page cache, {} runs (per page):\n", *mem, *runs);
  fmt::print("  MAP_PRIVATE read      {}\n", read_ns.text("ns"));
  fmt::print("  MAP_PRIVATE write     {}\n", write_ns.text("ns"));
  fmt::print("  userfaultfd + copy    {}\n", uffd_ns.text("ns"));
  fmt::print("  eager read, per page  {}\n", eager_ns.text("ns"));
  fmt::print("userfaultfd / MAP_PRIVATE read: {:.2f}x\n", ratio);
  return 0;
}

}  // namespace forkvm::cli
