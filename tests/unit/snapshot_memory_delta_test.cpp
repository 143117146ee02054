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

// A delta of pages 0 and 5 of `guest`, in DIR/delta; returns its bytes.
std::vector<uint8_t> small_delta(const TempDir& dir, GuestMemory& guest) {
  std::vector<uint8_t> data(kPage, 0x5A);
  REQUIRE(guest.write(0, data));
  REQUIRE(guest.write(5 * kPage, data));
  REQUIRE(write_memory_delta(guest, dir.path + "/delta").ok());
  UniqueFd fd(::open((dir.path + "/delta").c_str(), O_RDONLY | O_CLOEXEC));
  std::vector<uint8_t> bytes(64 << 10);
  const ssize_t n = ::read(fd.get(), bytes.data(), bytes.size());
  REQUIRE(n > 0);
  bytes.resize(static_cast<size_t>(n));
  return bytes;
}

// Applies `bytes` as a delta over a fresh mapping of `base`; the error, or "".
std::string apply_bytes(const TempDir& dir, const std::string& base, const std::vector<uint8_t>& bytes,
                        uint64_t size = kSize) {
  const std::string path = dir.path + "/edited";
  UniqueFd out(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  REQUIRE(::write(out.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  UniqueFd base_fd(::open(base.c_str(), O_RDONLY | O_CLOEXEC));
  auto m = GuestMemory::map_file_private(base_fd.get(), size);
  REQUIRE(m.ok());
  std::vector<uint8_t> before(kPage);
  REQUIRE(m->read(0, before));
  const auto s = apply_memory_delta(*m, out.get(), path);
  if (s.ok()) return "";
  // A refused delta copies nothing.
  std::vector<uint8_t> after(kPage);
  REQUIRE(m->read(0, after));
  CHECK(after == before);
  return s.error().message;
}

TEST_CASE("a memory delta is refused when truncated, corrupt, foreign or for other RAM, naming the file") {
  TempDir dir;
  const std::string base = make_base(dir);
  UniqueFd fd;
  GuestMemory guest = map(base, fd);
  const std::vector<uint8_t> good = small_delta(dir, guest);
  CHECK(good.size() == 48 + kSize / kPage / 8 + 2 * kPage);
  CHECK(apply_bytes(dir, base, good).empty());

  auto truncated = good;
  truncated.resize(good.size() - 100);
  CHECK(apply_bytes(dir, base, truncated).find("truncated") != std::string::npos);
  CHECK(apply_bytes(dir, base, {good.begin(), good.begin() + 20}).find("header") != std::string::npos);
  auto flipped = good;
  flipped[48] ^= 0x80;  // a page bit: the checksum no longer matches
  CHECK(apply_bytes(dir, base, flipped).find("checksum") != std::string::npos);
  auto magic = good;
  magic[0] = 'X';
  CHECK(apply_bytes(dir, base, magic).find("not a forkvm memory delta") != std::string::npos);
  auto version = good;
  version[8] = 9;
  CHECK(apply_bytes(dir, base, version).find("version 9") != std::string::npos);
  const std::string other = apply_bytes(dir, base, good, kSize / 2);
  CHECK(other.find("this VM has") != std::string::npos);
  CHECK(other.find(dir.path + "/edited") != std::string::npos);
}

}  // namespace
}  // namespace forkvm::snapshot
