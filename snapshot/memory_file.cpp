#include "snapshot/memory_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "vmm/unique_fd.hpp"

namespace forkvm::snapshot {
namespace {

constexpr uint64_t kPage = 4096;

bool page_is_zero(const uint8_t* p) {
  // Word-wise OR: the compiler vectorises it, and most pages of an idle
  // guest are either zero or differ from zero in the first few words.
  uint64_t acc = 0;
  for (uint64_t i = 0; i < kPage; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, sizeof w);
    for (uint64_t v : w) acc |= v;
    if (acc != 0) return false;
  }
  return true;
}

Status pwrite_all(int fd, const uint8_t* data, uint64_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    const ssize_t n = ::pwrite(fd, data, len, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("write memory file {} at {:#x}", path, offset));
    data += n;
    len -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

}  // namespace

Result<MemoryFileStats> write_memory_file(const GuestMemory& memory, const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create memory file {}", path));
  MemoryFileStats stats;
  stats.size = memory.size();
  // The length first: everything not written below stays a hole.
  if (::ftruncate(fd.get(), static_cast<off_t>(stats.size)) != 0) {
    return errno_error(fmt::format("size memory file {} to {} bytes", path, stats.size));
  }
  uint64_t file_offset = 0;
  for (const MemoryRegion& r : memory.regions()) {
    uint64_t run_start = 0;
    uint64_t run_len = 0;  // a run of non-zero pages, written with one pwrite
    for (uint64_t off = 0; off < r.size; off += kPage) {
      if (!page_is_zero(r.host + off)) {
        if (run_len == 0) run_start = off;
        run_len += kPage;
        continue;
      }
      if (run_len > 0) {
        FORKVM_CHECK(pwrite_all(fd.get(), r.host + run_start, run_len, file_offset + run_start, path));
        stats.data_bytes += run_len;
        run_len = 0;
      }
    }
    if (run_len > 0) {
      FORKVM_CHECK(pwrite_all(fd.get(), r.host + run_start, run_len, file_offset + run_start, path));
      stats.data_bytes += run_len;
    }
    file_offset += r.size;
  }
  return stats;
}

Status sync_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  if (::fsync(fd.get()) != 0) return errno_error(fmt::format("fsync {}", path));
  return {};
}

}  // namespace forkvm::snapshot
