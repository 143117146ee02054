#include "snapshot/memory_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

namespace {

// /proc/self/pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
constexpr uint64_t kPagePresent = 1ULL << 63;
constexpr uint64_t kPageSwapped = 1ULL << 62;
constexpr uint64_t kPageFileOrShared = 1ULL << 61;

// A page no longer backed by the mapped file: present or swapped, and anonymous.
bool page_is_private(uint64_t entry) {
  return (entry & (kPagePresent | kPageSwapped)) != 0 && (entry & kPageFileOrShared) == 0;
}

}  // namespace

Result<MemoryFileStats> write_memory_delta(const GuestMemory& memory, const std::string& path) {
  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap.valid()) return errno_error("open /proc/self/pagemap");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create memory delta {}", path));
  MemoryFileStats stats;
  stats.size = memory.size();
  if (::ftruncate(fd.get(), static_cast<off_t>(stats.size)) != 0) {
    return errno_error(fmt::format("size memory delta {} to {} bytes", path, stats.size));
  }
  constexpr uint64_t kBatch = 4096;  // pagemap entries read at once (16 MiB of RAM)
  std::vector<uint64_t> entries(kBatch);
  uint64_t file_offset = 0;
  for (const MemoryRegion& r : memory.regions()) {
    const uint64_t pages = r.size / kPage;
    uint64_t run_start = 0;
    uint64_t run_len = 0;
    auto flush_run = [&]() -> Status {
      if (run_len == 0) return {};
      FORKVM_CHECK(pwrite_all(fd.get(), r.host + run_start, run_len, file_offset + run_start, path));
      stats.data_bytes += run_len;
      run_len = 0;
      return {};
    };
    for (uint64_t first = 0; first < pages; first += kBatch) {
      const uint64_t n = std::min(kBatch, pages - first);
      const uint64_t vpn = reinterpret_cast<uintptr_t>(r.host) / kPage + first;
      const ssize_t got = ::pread(pagemap.get(), entries.data(), n * sizeof(uint64_t),
                                  static_cast<off_t>(vpn * sizeof(uint64_t)));
      if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) return errno_error("read /proc/self/pagemap");
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t off = (first + i) * kPage;
        if (page_is_private(entries[i])) {
          if (run_len == 0) run_start = off;
          run_len += kPage;
        } else {
          FORKVM_CHECK(flush_run());
        }
      }
    }
    FORKVM_CHECK(flush_run());
    file_offset += r.size;
  }
  return stats;
}

Status apply_memory_delta(const GuestMemory& memory, int fd, const std::string& path) {
  uint64_t region_start = 0;
  for (const MemoryRegion& r : memory.regions()) {
    const uint64_t region_end = region_start + r.size;
    off_t at = static_cast<off_t>(region_start);
    for (;;) {
      const off_t data = ::lseek(fd, at, SEEK_DATA);
      if (data < 0 && errno == ENXIO) break;  // no data past `at`
      if (data < 0) return errno_error(fmt::format("seek data in memory delta {}", path));
      if (static_cast<uint64_t>(data) >= region_end) break;
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0) return errno_error(fmt::format("seek hole in memory delta {}", path));
      const uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), region_end);
      uint64_t pos = static_cast<uint64_t>(data);
      while (pos < end) {
        const ssize_t n = ::pread(fd, r.host + (pos - region_start), end - pos, static_cast<off_t>(pos));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return errno_error(fmt::format("read memory delta {} at {:#x}", path, pos));
        pos += static_cast<uint64_t>(n);
      }
      at = static_cast<off_t>(end);
      if (end >= region_end) break;
    }
    region_start = region_end;
  }
  return {};
}

Status sync_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  if (::fsync(fd.get()) != 0) return errno_error(fmt::format("fsync {}", path));
  return {};
}

}  // namespace forkvm::snapshot
