#include "snapshot/memory_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <vector>

#include "snapshot/format.hpp"
#include "vmm/le_bytes.hpp"
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

// Delta file v1 (little-endian): a header, a bitmap of the RAM's pages (bit
// set: the page is in the delta), then those pages packed in address order.
// It names its pages itself, so it does not rely on the filesystem keeping
// holes (9p and others report a sparse file as all data).
//   0 magic "FKVMMDLT" | 8 u32 version | 12 u32 page shift | 16 u64 RAM bytes
//  24 u64 pages in the delta | 32 u64 bitmap bytes | 40 u32 crc32c(bytes 0..39,
//  then the bitmap) | 44 u32 reserved (0) | 48 bitmap | pages
namespace {
constexpr char kDeltaMagic[8] = {'F', 'K', 'V', 'M', 'M', 'D', 'L', 'T'};
constexpr uint32_t kDeltaVersion = 1;
constexpr uint32_t kPageShift = 12;
constexpr size_t kDeltaHeader = 48;

uint32_t delta_crc(std::span<const uint8_t> header, std::span<const uint8_t> bitmap) {
  return crc32c(bitmap, crc32c(header.first(40)));
}

// The private pages of `memory`, one bit per page in RAM order.
Result<std::vector<uint8_t>> private_page_bitmap(const GuestMemory& memory, uint64_t& count) {
  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!pagemap.valid()) return errno_error("open /proc/self/pagemap");
  std::vector<uint8_t> bits((memory.size() / kPage + 7) / 8);
  constexpr uint64_t kBatch = 4096;  // pagemap entries read at once (16 MiB of RAM)
  std::vector<uint64_t> entries(kBatch);
  uint64_t ram_page = 0;
  count = 0;
  for (const MemoryRegion& r : memory.regions()) {
    const uint64_t pages = r.size / kPage;
    for (uint64_t first = 0; first < pages; first += kBatch) {
      const uint64_t n = std::min(kBatch, pages - first);
      const uint64_t vpn = reinterpret_cast<uintptr_t>(r.host) / kPage + first;
      const ssize_t got = ::pread(pagemap.get(), entries.data(), n * sizeof(uint64_t),
                                  static_cast<off_t>(vpn * sizeof(uint64_t)));
      if (got != static_cast<ssize_t>(n * sizeof(uint64_t))) return errno_error("read /proc/self/pagemap");
      for (uint64_t i = 0; i < n; ++i, ++ram_page) {
        if (!page_is_private(entries[i])) continue;
        bits[ram_page / 8] = static_cast<uint8_t>(bits[ram_page / 8] | (1U << (ram_page % 8)));
        ++count;
      }
    }
  }
  return bits;
}

// Calls fn(host address, RAM page index) for every page whose bit is set.
template <typename Fn>
Status for_each_delta_page(const GuestMemory& memory, std::span<const uint8_t> bits, Fn fn) {
  uint64_t ram_page = 0;
  for (const MemoryRegion& r : memory.regions()) {
    for (uint64_t off = 0; off < r.size; off += kPage, ++ram_page) {
      if ((bits[ram_page / 8] >> (ram_page % 8) & 1U) != 0) FORKVM_CHECK(fn(r.host + off));
    }
  }
  return {};
}

}  // namespace

Result<MemoryFileStats> write_memory_delta(const GuestMemory& memory, const std::string& path) {
  uint64_t count = 0;
  const std::vector<uint8_t> bits = FORKVM_TRY(private_page_bitmap(memory, count));
  std::vector<uint8_t> header(kDeltaHeader, 0);
  std::memcpy(header.data(), kDeltaMagic, sizeof kDeltaMagic);
  put_le<uint32_t>(header, 8, kDeltaVersion);
  put_le<uint32_t>(header, 12, kPageShift);
  put_le<uint64_t>(header, 16, memory.size());
  put_le<uint64_t>(header, 24, count);
  put_le<uint64_t>(header, 32, bits.size());
  put_le<uint32_t>(header, 40, delta_crc(header, bits));

  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create memory delta {}", path));
  FORKVM_CHECK(pwrite_all(fd.get(), header.data(), header.size(), 0, path));
  FORKVM_CHECK(pwrite_all(fd.get(), bits.data(), bits.size(), kDeltaHeader, path));
  uint64_t at = kDeltaHeader + bits.size();
  FORKVM_CHECK(for_each_delta_page(memory, bits, [&](const uint8_t* page) {
    Status written = pwrite_all(fd.get(), page, kPage, at, path);
    at += kPage;
    return written;
  }));
  return MemoryFileStats{memory.size(), count * kPage};
}

Status apply_memory_delta(const GuestMemory& memory, int fd, const std::string& path) {
  std::vector<uint8_t> header(kDeltaHeader);
  if (::pread(fd, header.data(), header.size(), 0) != static_cast<ssize_t>(header.size()))
    return make_error("memory delta {}: shorter than its {}-byte header", path, kDeltaHeader);
  if (std::memcmp(header.data(), kDeltaMagic, sizeof kDeltaMagic) != 0)
    return make_error("memory delta {}: not a forkvm memory delta (bad magic)", path);
  const auto version = get_le<uint32_t>(header, 8);
  if (version != kDeltaVersion)
    return make_error("memory delta {}: format version {}, this forkvm reads version {}", path, version, kDeltaVersion);
  const uint64_t pages = memory.size() / kPage;
  const auto count = get_le<uint64_t>(header, 24);
  const auto bitmap_bytes = get_le<uint64_t>(header, 32);
  if (get_le<uint32_t>(header, 12) != kPageShift || get_le<uint64_t>(header, 16) != memory.size() ||
      bitmap_bytes != (pages + 7) / 8 || count > pages || get_le<uint32_t>(header, 44) != 0) {
    return make_error("memory delta {}: made for {} bytes of RAM in 2^{}-byte pages, this VM has {} bytes", path,
                      get_le<uint64_t>(header, 16), get_le<uint32_t>(header, 12), memory.size());
  }
  std::vector<uint8_t> bits(bitmap_bytes);
  if (::pread(fd, bits.data(), bits.size(), kDeltaHeader) != static_cast<ssize_t>(bits.size()))
    return make_error("memory delta {}: truncated inside its page bitmap", path);
  if (get_le<uint32_t>(header, 40) != delta_crc(header, bits))
    return make_error("memory delta {}: header or page bitmap checksum mismatch", path);
  uint64_t set = 0;
  for (uint8_t b : bits) set += static_cast<uint64_t>(std::popcount(b));
  struct stat st {};
  if (set != count || ::fstat(fd, &st) != 0 ||
      static_cast<uint64_t>(st.st_size) != kDeltaHeader + bitmap_bytes + count * kPage) {
    return make_error("memory delta {}: {} bytes, its header promises {} pages (truncated or padded)", path,
                      st.st_size, count);
  }
  uint64_t at = kDeltaHeader + bitmap_bytes;
  return for_each_delta_page(memory, bits, [&](uint8_t* page) -> Status {
    uint64_t done = 0;
    while (done < kPage) {
      const ssize_t n = ::pread(fd, page + done, kPage - done, static_cast<off_t>(at + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errno_error(fmt::format("read memory delta {} at {:#x}", path, at + done));
      done += static_cast<uint64_t>(n);
    }
    at += kPage;
    return {};
  });
}

Status sync_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  if (::fsync(fd.get()) != 0) return errno_error(fmt::format("fsync {}", path));
  return {};
}

}  // namespace forkvm::snapshot
