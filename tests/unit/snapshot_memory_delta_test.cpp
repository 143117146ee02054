// Memory deltas: the pages a restored guest changed, written over the file
// its RAM maps, and read back over a fresh mapping of that file.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "snapshot/memory_file.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::snapshot {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kSize = 8 << 20;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/forkvm-delta-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)!std::system(("rm -rf " + path).c_str()); }
};

// A base memory file whose page i starts with byte (i % 251) + 1.
std::string make_base(const TempDir& dir) {
  const std::string path = dir.path + "/base";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(fd.valid());
  REQUIRE(::ftruncate(fd.get(), kSize) == 0);
  for (uint64_t p = 0; p < kSize / kPage; p += 3) {
    const auto b = static_cast<uint8_t>(p % 251 + 1);
    REQUIRE(::pwrite(fd.get(), &b, 1, static_cast<off_t>(p * kPage)) == 1);
  }
  return path;
}

GuestMemory map(const std::string& path, UniqueFd& fd) {
  fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(fd.valid());
  auto m = GuestMemory::map_file_private(fd.get(), kSize);
  REQUIRE(m.ok());
  return std::move(*m);
}

TEST_CASE("a memory delta holds exactly the pages written since the mapping, and restores them") {
  TempDir dir;
  const std::string base = make_base(dir);
  UniqueFd base_fd;
  GuestMemory guest = map(base, base_fd);
  // Read every page (file pages, not private), then write a few: a zero
  // page among them must be carried too, or the base's content would show.
  std::vector<uint8_t> page(kPage);
  for (uint64_t gpa = 0; gpa < kSize; gpa += kPage) REQUIRE(guest.read(gpa, page));
  const std::vector<uint64_t> written = {0, 5 * kPage, 6 * kPage, 1000 * kPage};
  for (uint64_t gpa : written) {
    std::vector<uint8_t> data(kPage, gpa == 6 * kPage ? 0 : 0xAB);
    REQUIRE(guest.write(gpa, data));
  }
  const auto stats = write_memory_delta(guest, dir.path + "/delta");
  REQUIRE(stats.ok());
  CHECK(stats->size == kSize);
  CHECK(stats->data_bytes == written.size() * kPage);

  UniqueFd again_fd;
  GuestMemory restored = map(base, again_fd);
  UniqueFd delta(::open((dir.path + "/delta").c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(delta.valid());
  REQUIRE(apply_memory_delta(restored, delta.get(), dir.path + "/delta").ok());
  std::vector<uint8_t> a(kPage);
  std::vector<uint8_t> b(kPage);
  for (uint64_t gpa = 0; gpa < kSize; gpa += kPage) {
    REQUIRE(guest.read(gpa, a));
    REQUIRE(restored.read(gpa, b));
    INFO("page ", gpa / kPage);
    CHECK(a == b);
  }
}

TEST_CASE("a mapping nothing wrote to has an empty delta") {
  TempDir dir;
  const std::string base = make_base(dir);
  UniqueFd fd;
  GuestMemory guest = map(base, fd);
  std::vector<uint8_t> page(kPage);
  REQUIRE(guest.read(3 * kPage, page));
  const auto stats = write_memory_delta(guest, dir.path + "/delta");
  REQUIRE(stats.ok());
  CHECK(stats->data_bytes == 0);
}

}  // namespace
}  // namespace forkvm::snapshot
