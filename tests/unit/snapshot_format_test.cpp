#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "snapshot/format.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm::snapshot {
namespace {

std::vector<uint8_t> sample_file() {
  StateFileWriter w;
  w.add(kMachine, 0, {1, 2, 3});
  w.add(kVcpu, 0, std::vector<uint8_t>(100, 0xaa));
  w.add(kVcpu, 1, std::vector<uint8_t>(100, 0xbb));
  w.add(kVirtio, 3, {});
  return w.encode();
}

std::string parse_error(std::span<const uint8_t> bytes) {
  auto f = StateFile::parse(bytes, "/snap/state");
  REQUIRE_FALSE(f.ok());
  return f.error().message;
}

void fix_header_crc(std::vector<uint8_t>& b) {
  const uint32_t c = crc32c({b.data(), kHeaderSize - 4});
  std::memcpy(b.data() + kHeaderSize - 4, &c, 4);
}

TEST_CASE("crc32c matches the standard check value") {
  const std::string s = "123456789";
  CHECK(crc32c({reinterpret_cast<const uint8_t*>(s.data()), s.size()}) == 0xE3069283U);
  CHECK(crc32c({}) == 0);
}

TEST_CASE("state file round trip keeps every section in order") {
  const auto bytes = sample_file();
  auto f = StateFile::parse(bytes, "x");
  REQUIRE(f.ok());
  CHECK(f->minor() == kFormatMinor);
  REQUIRE(f->sections().size() == 4);
  CHECK(f->find(kMachine)->payload == std::vector<uint8_t>{1, 2, 3});
  CHECK(f->find(kVcpu, 1)->payload == std::vector<uint8_t>(100, 0xbb));
  CHECK(f->find(kVirtio, 3)->payload.empty());
  CHECK(f->find(kVirtio, 0) == nullptr);
  auto missing = f->require(kMemory, 0, "memory");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("no memory section") != std::string::npos);
}

TEST_CASE("state file write and read through the file system") {
  char dir[] = "/tmp/forkvm-format-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/state";
  StateFileWriter w;
  w.add(kVm, 0, {9, 8, 7});
  REQUIRE(w.write(path).ok());
  auto f = StateFile::read(path);
  REQUIRE(f.ok());
  CHECK(f->find(kVm)->payload == std::vector<uint8_t>{9, 8, 7});
  CHECK(::unlink(path.c_str()) == 0);
  auto gone = StateFile::read(path);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().message.find(path) != std::string::npos);
  ::rmdir(dir);
}

// A disk that fills up mid-write, simulated with RLIMIT_FSIZE (EFBIG): the
// file already there stays as it was and no half-written file is left.
TEST_CASE("a state file write that runs out of space keeps the earlier file and leaves no partial one") {
  char dir[] = "/tmp/forkvm-format-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/state";
  const std::vector<uint8_t> earlier = {1, 2, 3};
  REQUIRE(write_file_atomic(path, earlier).ok());

  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  const auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  auto full = write_file_atomic(path, std::vector<uint8_t>(64 * 1024, 0xab));
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);

  REQUIRE_FALSE(full.ok());
  CHECK(full.error().message.find(path + ".tmp") != std::string::npos);
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(kept == earlier);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST_CASE("unknown section ids are skipped") {
  StateFileWriter w;
  w.add(0x7777, 0, {1, 2});
  w.add(kMachine, 0, {5});
  auto f = StateFile::parse(w.encode(), "x");
  REQUIRE(f.ok());
  CHECK(f->find(kMachine)->payload == std::vector<uint8_t>{5});
}

TEST_CASE("another major version is refused, a newer minor accepted") {
  auto bytes = sample_file();
  bytes[8] = 2;  // major 2
  fix_header_crc(bytes);
  CHECK(parse_error(bytes).find("format version 2.0") != std::string::npos);
  bytes = sample_file();
  bytes[10] = 9;  // minor 9
  fix_header_crc(bytes);
  auto f = StateFile::parse(bytes, "x");
  REQUIRE(f.ok());
  CHECK(f->minor() == 9);
}

TEST_CASE("bad magic and short files are refused with the file name") {
  auto bytes = sample_file();
  bytes[0] = 'X';
  const auto e = parse_error(bytes);
  CHECK(e.find("/snap/state") != std::string::npos);
  CHECK(e.find("bad magic") != std::string::npos);
  CHECK(parse_error(std::span(bytes).first(10)).find("truncated") != std::string::npos);
  CHECK(parse_error({}).find("truncated") != std::string::npos);
}

TEST_CASE("every truncation point is refused") {
  const auto bytes = sample_file();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto f = StateFile::parse(std::span(bytes).first(n), "t");
    CHECK_FALSE(f.ok());
    if (!f.ok()) CHECK(f.error().message.find("truncated") != std::string::npos);
  }
}

TEST_CASE("every single-byte flip is refused") {
  const auto good = sample_file();
  for (size_t i = 0; i < good.size(); ++i) {
    auto bytes = good;
    bytes[i] ^= 0x10;
    auto f = StateFile::parse(bytes, "t");
    CHECK_FALSE(f.ok());
    if (!f.ok() && i >= 8) {
      // Past the magic, a flip is always caught by a checksum.
      CHECK(f.error().message.find("checksum mismatch") != std::string::npos);
    }
  }
}

TEST_CASE("trailing data, dropped sections and forged lengths are refused") {
  auto bytes = sample_file();
  bytes.push_back(0);
  CHECK(parse_error(bytes).find("trailing data") != std::string::npos);

  // Drop the second section entirely: every checksum still holds, the end
  // marker's count does not.
  const auto good = sample_file();
  const size_t first = kHeaderSize + kSectionHeaderSize + 3;
  const size_t second = kSectionHeaderSize + 100;
  std::vector<uint8_t> cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(first));
  cut.insert(cut.end(), good.begin() + static_cast<std::ptrdiff_t>(first + second), good.end());
  CHECK(parse_error(cut).find("end marker") != std::string::npos);

  // A consistent header that claims more payload than there is.
  bytes = sample_file();
  const uint64_t huge = ~0ULL;
  std::memcpy(bytes.data() + kHeaderSize + 8, &huge, 8);
  const uint32_t c = crc32c({bytes.data() + kHeaderSize, kSectionHeaderSize - 4});
  std::memcpy(bytes.data() + kHeaderSize + kSectionHeaderSize - 4, &c, 4);
  CHECK(parse_error(bytes).find("claims") != std::string::npos);
}

TEST_CASE("state codec round trip and bounds") {
  StateWriter w;
  w.u8(1);
  w.u16(0x1234);
  w.u32(0xdeadbeef);
  w.u64(1ULL << 40);
  w.boolean(true);
  w.str("hello");
  struct P {
    uint32_t a;
    uint16_t b;
  };
  w.pod(P{7, 8});
  const std::vector<uint32_t> arr{1, 2, 3};
  w.pod_array(std::span<const uint32_t>(arr));
  const auto data = w.take();

  StateReader r(data, "test");
  CHECK(*r.u8() == 1);
  CHECK(*r.u16() == 0x1234);
  CHECK(*r.u32() == 0xdeadbeef);
  CHECK(*r.u64() == 1ULL << 40);
  CHECK(*r.boolean());
  CHECK_FALSE(r.str(3).ok());  // longer than the caller allows
  StateReader r2(data, "test");
  (void)r2.u8(), (void)r2.u16(), (void)r2.u32(), (void)r2.u64(), (void)r2.boolean();
  CHECK(*r2.str(16) == "hello");
  auto p = r2.pod<P>();
  REQUIRE(p.ok());
  CHECK(p->a == 7);
  CHECK(*r2.pod_array<uint32_t>(8) == arr);
  CHECK(r2.remaining() == 0);
  auto past = r2.u8();
  REQUIRE_FALSE(past.ok());
  CHECK(past.error().message.find("state of test: truncated") != std::string::npos);

  StateReader r3(data, "test");
  (void)r3.u8();
  CHECK_FALSE(r3.pod<uint64_t>().ok());  // wrong record size
}

}  // namespace
}  // namespace forkvm::snapshot
