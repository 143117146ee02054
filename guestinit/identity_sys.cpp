// The identity op's syscalls: entropy, clock, hostname, files in /etc.
#include "guestinit/identity_sys.hpp"

#include <fcntl.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <vector>

#include "guestinit/fs_util.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

Status LinuxIdentitySystem::reseed(std::string_view seed) {
  UniqueFd fd(::open("/dev/urandom", O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error("open /dev/urandom");
  // rand_pool_info ends in a flexible array of u32: build it in u32 words.
  std::vector<uint32_t> words(sizeof(rand_pool_info) / sizeof(uint32_t) + (seed.size() + 3) / 4, 0);
  auto* info = reinterpret_cast<rand_pool_info*>(words.data());
  info->entropy_count = static_cast<int>(seed.size() * 8);  // the host's seed is real randomness: credit it
  info->buf_size = static_cast<int>(seed.size());
  std::memcpy(info->buf, seed.data(), seed.size());
  if (::ioctl(fd.get(), RNDADDENTROPY, info) != 0) return errno_error("RNDADDENTROPY on /dev/urandom");
  // Adding input alone leaves the CRNG on its old key until its next
  // scheduled reseed (up to a minute): force it now, so the very next
  // getrandom() in every copy differs.
  if (::ioctl(fd.get(), RNDRESEEDCRNG) != 0) return errno_error("RNDRESEEDCRNG on /dev/urandom");
  return {};
}

Result<int64_t> LinuxIdentitySystem::realtime_ns() {
  timespec ts{};
  if (::clock_gettime(CLOCK_REALTIME, &ts) != 0) return errno_error("clock_gettime(CLOCK_REALTIME)");
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Status LinuxIdentitySystem::set_realtime_ns(int64_t ns) {
  timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) return errno_error("clock_settime(CLOCK_REALTIME)");
  return {};
}

Result<std::string> LinuxIdentitySystem::random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error("getrandom");
    got += static_cast<size_t>(r);
  }
  return out;
}

Status LinuxIdentitySystem::write_file(std::string_view path, std::string_view content, unsigned mode) {
  return write_file_atomic(std::string(path), content, static_cast<mode_t>(mode));
}

Status LinuxIdentitySystem::set_hostname(std::string_view name) {
  if (::sethostname(name.data(), name.size()) != 0) return errno_error("sethostname");
  return {};
}

}  // namespace forkvm::agent
