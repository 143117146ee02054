// Device state through a snapshot: what save_state() writes, load_state()
// puts back into a fresh device, and a state from the wrong place is refused.
#include <doctest/doctest.h>

#include "devices/acpi_pm.hpp"
#include "devices/serial.hpp"
#include "devices/virtio/mmio.hpp"
#include "devices/virtio/rng.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;

struct Rig {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(1 << 20).value());
  CountingInterrupt irq;
  std::shared_ptr<Rng> rng = std::make_shared<Rng>();
  MmioTransport t{rng, mem, irq, layout::kVirtioMmioBase};

  uint32_t rd(uint64_t off) {
    uint32_t v = 0;
    t.read(off, {reinterpret_cast<uint8_t*>(&v), 4});
    return v;
  }
  void wr(uint64_t off, uint32_t v) { t.write(off, {reinterpret_cast<const uint8_t*>(&v), 4}); }
  void wr64(uint64_t low, uint64_t v) {
    wr(low, static_cast<uint32_t>(v));
    wr(low + 4, static_cast<uint32_t>(v >> 32));
  }
  // The Linux driver's sequence to DRIVER_OK with one queue of 16.
  void bring_up(TestQueue& tq) {
    wr(mmio::kStatus, kStatusAcknowledge);
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    wr(mmio::kDriverFeaturesSel, 1);
    wr(mmio::kDriverFeatures, 1);  // VERSION_1
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    wr(mmio::kQueueSel, 0);
    wr(mmio::kQueueNum, 16);
    wr64(mmio::kQueueDescLow, tq.desc_table());
    wr64(mmio::kQueueDriverLow, tq.avail_ring());
    wr64(mmio::kQueueDeviceLow, tq.used_ring());
    wr(mmio::kQueueReady, 1);
    wr(mmio::kStatus, rd(mmio::kStatus) | kStatusDriverOk);
  }
};

TEST_CASE("virtio-mmio transport and queue state survive save and load") {
  Rig a;
  TestQueue tq{a.mem, 0x1000, 16};
  a.bring_up(tq);
  StateWriter w;
  REQUIRE(a.t.save_state(w).ok());
  const auto bytes = w.take();

  Rig b;  // a fresh device on the same guest memory layout
  StateReader r(bytes, "virtio device 0");
  REQUIRE(b.t.load_state(r).ok());
  CHECK(b.rd(mmio::kStatus) == a.rd(mmio::kStatus));
  CHECK(b.rng->activated());
  CHECK(b.rng->acked_features() == a.rng->acked_features());
  Queue& q = b.rng->queue(0);
  CHECK(q.active());
  CHECK(q.size() == 16);
  CHECK(q.desc_table() == tq.desc_table());
  CHECK(q.used_ring() == tq.used_ring());
  CHECK(q.next_avail() == a.rng->queue(0).next_avail());
}

TEST_CASE("virtio state that is truncated or from another device type is refused") {
  Rig a;
  TestQueue tq{a.mem, 0x1000, 16};
  a.bring_up(tq);
  StateWriter w;
  REQUIRE(a.t.save_state(w).ok());
  auto bytes = w.take();

  for (size_t n : {size_t{0}, size_t{10}, bytes.size() / 2}) {
    Rig b;
    StateReader r(std::span<const uint8_t>(bytes).first(n), "virtio device 0");
    auto s = b.t.load_state(r);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find("truncated") != std::string::npos);
  }
  // The device id follows the 24 bytes of transport registers.
  bytes[24] = 2;  // virtio-blk
  Rig b;
  StateReader r(bytes, "virtio device 0");
  auto s = b.t.load_state(r);
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message.find("device type 2") != std::string::npos);
}

TEST_CASE("serial and ACPI PM registers survive save and load") {
  CountingInterrupt irq;
  Serial a(irq, [](std::span<const uint8_t>) {});
  const uint8_t scr = 0x5a, lcr = 0x1b;
  a.write(7, {&scr, 1});
  a.write(3, {&lcr, 1});
  StateWriter w;
  a.save_state(w);
  AcpiPm pm_a([] {});
  const uint8_t enable = 0x21;
  pm_a.write(2, {&enable, 1});
  pm_a.save_state(w);
  const auto bytes = w.take();

  Serial b(irq, [](std::span<const uint8_t>) {});
  AcpiPm pm_b([] {});
  StateReader r(bytes, "the legacy devices");
  REQUIRE(b.load_state(r).ok());
  REQUIRE(pm_b.load_state(r).ok());
  uint8_t v = 0;
  b.read(7, {&v, 1});
  CHECK(v == scr);
  b.read(3, {&v, 1});
  CHECK(v == lcr);
  pm_b.read(2, {&v, 1});
  CHECK(v == enable);
}

}  // namespace
}  // namespace forkvm::virtio
