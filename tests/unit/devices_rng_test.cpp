#include <doctest/doctest.h>

#include <algorithm>
#include <array>

#include "devices/virtio/rng.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;

TEST_CASE("rng: fills writable buffers, bounded per request") {
  auto mem = GuestMemory::create_anonymous(1 << 20);
  REQUIRE(mem.ok());
  CountingInterrupt irq;
  Rng rng;
  TestQueue tq(*mem, 0x1000, 16);
  tq.configure(rng.queue(0));
  REQUIRE(rng.activate(*mem, irq).ok());

  const uint64_t small = tq.alloc(64);
  const uint64_t big = tq.alloc(Rng::kMaxBytesPerRequest + 4096);
  tq.add_chain({{small, 64, true}});
  tq.add_chain({{big, static_cast<uint32_t>(Rng::kMaxBytesPerRequest + 4096), true}});
  rng.process_queue(0);
  CHECK(tq.used_idx() == 2);
  CHECK(tq.used(0).len == 64);
  CHECK(tq.used(1).len == Rng::kMaxBytesPerRequest);
  CHECK(irq.count == 1);
  // 64 random bytes are not all zero (probability 2^-512).
  std::array<uint8_t, 64> got{};
  REQUIRE(mem->read(small, got));
  CHECK(std::any_of(got.begin(), got.end(), [](uint8_t b) { return b != 0; }));
}

}  // namespace
}  // namespace forkvm::virtio
