#include "devices/storage/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "vmm/unique_fd.hpp"

namespace forkvm::storage {

Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  std::vector<uint8_t> out;
  uint8_t chunk[65536];
  // Read to EOF instead of trusting st_size: the file may change under us.
  for (;;) {
    const ssize_t n = ::read(fd.get(), chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(fmt::format("read {}", path));
    }
    if (n == 0) break;
    if (out.size() + static_cast<uint64_t>(n) > max_bytes) {
      return make_error("{} is larger than {} bytes: not a file forkvm wrote", path, max_bytes);
    }
    out.insert(out.end(), chunk, chunk + n);
  }
  return out;
}

Status fsync_dir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open directory {}", dir));
  if (::fsync(fd.get()) != 0) return errno_error(fmt::format("fsync directory {}", dir));
  return {};
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  const std::string tmp = path + ".tmp";
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return errno_error(fmt::format("create {}", tmp));
    FORKVM_CHECK(pwrite_full(fd.get(), bytes.data(), bytes.size(), 0).context(tmp));
    if (::fdatasync(fd.get()) != 0) return errno_error(fmt::format("fdatasync {}", tmp));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error(fmt::format("rename {} to {}", tmp, path));
  std::string dir = std::filesystem::path(path).parent_path().string();
  return fsync_dir(dir.empty() ? "." : dir);
}

uint64_t iov_bytes(std::span<const iovec> iov) {
  uint64_t n = 0;
  for (const iovec& v : iov) n += v.iov_len;
  return n;
}

void iov_slice(std::span<const iovec> iov, uint64_t offset, uint64_t len, std::vector<iovec>& out) {
  out.clear();
  for (const iovec& v : iov) {
    if (len == 0) break;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(v.iov_len - offset, len);
    out.push_back({static_cast<uint8_t*>(v.iov_base) + offset, n});
    offset = 0;
    len -= n;
  }
}

void iov_to_buf(std::span<const iovec> iov, uint64_t offset, uint8_t* dst, uint64_t len) {
  std::vector<iovec> parts;
  iov_slice(iov, offset, len, parts);
  for (const iovec& v : parts) {
    std::memcpy(dst, v.iov_base, v.iov_len);
    dst += v.iov_len;
  }
}

void iov_zero(std::span<const iovec> iov, uint64_t offset, uint64_t len) {
  std::vector<iovec> parts;
  iov_slice(iov, offset, len, parts);
  for (const iovec& v : parts) std::memset(v.iov_base, 0, v.iov_len);
}

namespace {

// preadv/pwritev may transfer less than asked (signals, large requests);
// advance through the iovecs until all of it is done.
template <typename Op>
Status transfer_full(std::span<const iovec> iov_in, uint64_t offset, const char* what, Op op) {
  std::vector<iovec> iov(iov_in.begin(), iov_in.end());
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = op(iov.data() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(fmt::format("{} at offset {}", what, offset));
    }
    if (n == 0) return make_error("{} at offset {}: unexpected end of file", what, offset);
    auto left = static_cast<uint64_t>(n);
    offset += left;
    while (first < iov.size() && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      ++first;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
  }
  return {};
}

}  // namespace

Status preadv_full(int fd, std::span<const iovec> iov, uint64_t offset) {
  return transfer_full(iov, offset, "read",
                       [fd](const iovec* v, int c, off_t o) { return ::preadv(fd, v, c, o); });
}

Status pwritev_full(int fd, std::span<const iovec> iov, uint64_t offset) {
  return transfer_full(iov, offset, "write",
                       [fd](const iovec* v, int c, off_t o) { return ::pwritev(fd, v, c, o); });
}

Status pread_full(int fd, void* buf, uint64_t len, uint64_t offset) {
  const iovec v{buf, len};
  return preadv_full(fd, {&v, 1}, offset);
}

Status pwrite_full(int fd, const void* buf, uint64_t len, uint64_t offset) {
  const iovec v{const_cast<void*>(buf), len};  // pwritev does not write through it
  return pwritev_full(fd, {&v, 1}, offset);
}

}  // namespace forkvm::storage
