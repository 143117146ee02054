#include <doctest/doctest.h>

#include "vmm/bus.hpp"

namespace forkvm {
namespace {

struct Recorder : BusDevice {
  uint64_t last_offset = ~0ULL;
  uint8_t fill = 0;
  void read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    for (auto& b : data) b = fill;
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    fill = data[0];
  }
};

TEST_CASE("bus dispatches by range and passes the offset") {
  Bus bus;
  auto a = std::make_shared<Recorder>();
  auto b = std::make_shared<Recorder>();
  REQUIRE(bus.add(0x1000, 0x100, a).ok());
  REQUIRE(bus.add(0x2000, 0x10, b).ok());
  uint8_t v = 7;
  CHECK(bus.write(0x2004, {&v, 1}));
  CHECK(b->last_offset == 4);
  uint8_t out[4]{};
  CHECK(bus.read(0x2004, out));
  CHECK(out[3] == 7);
  CHECK(bus.read(0x10ff, {out, 1}));
  CHECK(a->last_offset == 0xff);
}

TEST_CASE("bus refuses accesses that are not wholly inside one device") {
  Bus bus;
  REQUIRE(bus.add(0x1000, 0x10, std::make_shared<Recorder>()).ok());
  uint8_t out[4]{};
  CHECK_FALSE(bus.read(0x100e, out));  // straddles the end
  CHECK_FALSE(bus.read(0xfff, {out, 1}));
  CHECK_FALSE(bus.read(0x1010, {out, 1}));
  CHECK_FALSE(bus.read(~0ULL, out));
}

TEST_CASE("bus refuses bad ranges") {
  Bus bus;
  REQUIRE(bus.add(0x1000, 0x100, std::make_shared<Recorder>()).ok());
  CHECK_FALSE(bus.add(0x1080, 0x100, std::make_shared<Recorder>()).ok());
  CHECK_FALSE(bus.add(0xf80, 0x100, std::make_shared<Recorder>()).ok());
  CHECK_FALSE(bus.add(0x5000, 0, std::make_shared<Recorder>()).ok());
  CHECK_FALSE(bus.add(~0ULL - 4, 0x100, std::make_shared<Recorder>()).ok());
  CHECK(bus.add(0x1100, 0x100, std::make_shared<Recorder>()).ok());  // adjacent is fine
}

}  // namespace
}  // namespace forkvm
