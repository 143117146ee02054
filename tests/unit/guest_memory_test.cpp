#include <doctest/doctest.h>

#include "vmm/guest_memory.hpp"

namespace forkvm {
namespace {

TEST_CASE("guest memory below the MMIO hole is one region") {
  auto mem = GuestMemory::create_anonymous(16 << 20);
  REQUIRE(mem.ok());
  REQUIRE(mem->regions().size() == 1);
  CHECK(mem->host_ptr(0, 16 << 20) != nullptr);
  CHECK(mem->host_ptr((16 << 20) - 1, 1) != nullptr);
  CHECK(mem->host_ptr((16 << 20) - 1, 2) == nullptr);
  CHECK(mem->host_ptr(16 << 20, 0) == nullptr);
  CHECK(mem->host_ptr(~0ULL, 2) == nullptr);      // would wrap
  CHECK(mem->host_ptr(8, ~0ULL - 4) == nullptr);  // length overflows
}

TEST_CASE("guest memory round-trips objects and refuses out-of-range ones") {
  auto mem = GuestMemory::create_anonymous(1 << 20);
  REQUIRE(mem.ok());
  CHECK(mem->write_obj<uint32_t>(0x100, 0xdeadbeef));
  CHECK(mem->read_obj<uint32_t>(0x100).value() == 0xdeadbeef);
  CHECK_FALSE(mem->write_obj<uint64_t>((1 << 20) - 4, 1));
  CHECK_FALSE(mem->read_obj<uint64_t>((1 << 20) - 4).has_value());
}

TEST_CASE("guest memory above 3 GiB continues at 4 GiB") {
  const uint64_t size = 3ULL << 30 | 64ULL << 20;  // 3 GiB + 64 MiB, never touched
  auto mem = GuestMemory::create_anonymous(size);
  REQUIRE(mem.ok());
  REQUIRE(mem->regions().size() == 2);
  CHECK(mem->regions()[1].guest_addr == layout::kMmioHoleEnd);
  CHECK(mem->regions()[1].size == 64ULL << 20);
  CHECK(mem->host_ptr(layout::kMmioHoleStart, 1) == nullptr);
  CHECK(mem->host_ptr(layout::kMmioHoleStart - 1, 2) == nullptr);
  CHECK(mem->host_ptr(layout::kMmioHoleEnd, 4096) != nullptr);
  CHECK(mem->size() == size);
}

}  // namespace
}  // namespace forkvm
