#include "api/engine/image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <vector>

#include "vmm/unique_fd.hpp"

namespace forkvm::engine {
namespace {

constexpr size_t kBlock = 4096;
constexpr size_t kChunk = 1 << 20;

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

bool is_zero(const char* p, size_t n) {
  return std::all_of(p, p + n, [](char c) { return c == 0; });
}

// Copies [off, end) from src to dst, skipping all-zero blocks. Zero
// detection matters where SEEK_DATA reports everything as data (9p, NFS).
Status copy_range(int src, int dst, off_t off, off_t end, std::vector<char>& buf, const std::string& from) {
  while (off < end) {
    size_t want = static_cast<size_t>(std::min<off_t>(end - off, static_cast<off_t>(buf.size())));
    ssize_t n = ::pread(src, buf.data(), want, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("read " + from);
    }
    if (n == 0) return make_error("{} shrank while being copied", from);
    auto got = static_cast<size_t>(n);
    for (size_t b = 0; b < got; b += kBlock) {
      size_t len = std::min(kBlock, got - b);
      if (is_zero(buf.data() + b, len)) continue;
      if (::pwrite(dst, buf.data() + b, len, off + static_cast<off_t>(b)) != static_cast<ssize_t>(len))
        return errno_error("write copy of " + from);
    }
    off += static_cast<off_t>(got);
  }
  return {};
}

Status copy_data(int src, int dst, off_t size, const std::string& from) {
  std::vector<char> buf(kChunk);
  off_t off = 0;
  while (off < size) {
    off_t data = ::lseek(src, off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno != EINVAL && errno != EOPNOTSUPP) return errno_error("seek data in " + from);
      return copy_range(src, dst, off, size, buf, from);  // no SEEK_DATA: scan it all
    }
    off_t hole = ::lseek(src, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    FORKVM_CHECK(copy_range(src, dst, data, std::min(hole, size), buf, from));
    off = hole;
  }
  return {};
}

}  // namespace

std::string images_root() {
  if (const char* d = std::getenv("FORKVM_IMAGES"); d != nullptr && *d != '\0') return d;
  const char* cache = std::getenv("FORKVM_CACHE");
  return std::string(cache != nullptr && *cache != '\0' ? cache : "/var/cache/forkvm") + "/images";
}

Result<GuestImage> find_image(const std::string& name) {
  std::string dir;
  if (name.find('/') != std::string::npos) {
    dir = name;
  } else if (valid_name(name)) {
    dir = images_root() + "/" + name;
  } else {
    return make_error("image name '{}' is not valid (letters, digits, '-', '_', '.')", name);
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error("image '{}' not found: no directory {} (tools/guest/artifacts image makes 'default')",
                      name, dir);
  GuestImage img;
  img.name = name;
  img.kernel = dir + "/vmlinux";
  img.rootfs = dir + "/rootfs.ext4";
  for (const auto& f : {img.kernel, img.rootfs}) {
    if (::access(f.c_str(), R_OK) != 0) return errno_error(fmt::format("image '{}': {}", name, f));
  }
  return img;
}

Status copy_sparse(const std::string& from, const std::string& to) {
  UniqueFd src(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src.valid()) return errno_error("open " + from);
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) return errno_error("stat " + from);
  UniqueFd dst(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!dst.valid()) return errno_error("create " + to);
  Status s = copy_data(src.get(), dst.get(), st.st_size, from);
  if (s.ok() && ::ftruncate(dst.get(), st.st_size) != 0) s = errno_error("size " + to);
  if (!s.ok()) ::unlink(to.c_str());
  return s;
}

}  // namespace forkvm::engine
