#include <doctest/doctest.h>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/e820.hpp"

namespace forkvm::x86 {
namespace {

TEST_CASE("e820 for memory below the MMIO hole") {
  auto map = build_e820(512ULL << 20);
  REQUIRE(map.ok());
  REQUIRE(map->size() == 4);
  CHECK((*map)[0] == E820Entry{0, 0x9fc00, kE820Ram});
  CHECK((*map)[1] == E820Entry{0x9fc00, 0x400, kE820Reserved});
  CHECK((*map)[2] == E820Entry{0xe0000, 0x20000, kE820Reserved});
  CHECK((*map)[3] == E820Entry{0x100000, (512ULL << 20) - 0x100000, kE820Ram});
}

TEST_CASE("e820 splits RAM around the 3-4 GiB hole") {
  auto map = build_e820(6ULL << 30);
  REQUIRE(map.ok());
  REQUIRE(map->size() == 5);
  CHECK((*map)[3] == E820Entry{0x100000, layout::kMmioHoleStart - 0x100000, kE820Ram});
  CHECK((*map)[4] == E820Entry{layout::kMmioHoleEnd, 3ULL << 30, kE820Ram});
  uint64_t ram = 0;
  for (const auto& e : *map) ram += e.type == kE820Ram ? e.size : 0;
  CHECK(ram == (6ULL << 30) - 0x400 - 0x60000);  // everything but EBDA and the legacy hole
}

TEST_CASE("e820 at exactly 3 GiB has no high entry") {
  auto map = build_e820(3ULL << 30);
  REQUIRE(map.ok());
  CHECK(map->size() == 4);
  CHECK(map->back().addr + map->back().size == layout::kMmioHoleStart);
}

TEST_CASE("e820 refuses memory with nothing above 1 MiB") {
  CHECK_FALSE(build_e820(1ULL << 20).ok());
  CHECK_FALSE(build_e820(0).ok());
}

}  // namespace
}  // namespace forkvm::x86
