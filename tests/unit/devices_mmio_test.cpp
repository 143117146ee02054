#include <doctest/doctest.h>

#include "devices/virtio/mmio.hpp"
#include "devices/virtio/rng.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;

struct MmioFixture {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(1 << 20).value());
  CountingInterrupt irq;
  std::shared_ptr<Rng> rng = std::make_shared<Rng>();
  MmioTransport t{rng, mem, irq, layout::kVirtioMmioBase};
  TestQueue tq{mem, 0x1000, 16};

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

  // The Linux driver's sequence up to FEATURES_OK.
  void negotiate(uint64_t features) {
    wr(mmio::kStatus, 0);
    wr(mmio::kStatus, kStatusAcknowledge);
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
    wr(mmio::kDriverFeaturesSel, 0);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features));
    wr(mmio::kDriverFeaturesSel, 1);
    wr(mmio::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  }
  void setup_queue(uint32_t num) {
    wr(mmio::kQueueSel, 0);
    wr(mmio::kQueueNum, num);
    wr64(mmio::kQueueDescLow, tq.desc_table());
    wr64(mmio::kQueueDriverLow, tq.avail_ring());
    wr64(mmio::kQueueDeviceLow, tq.used_ring());
    wr(mmio::kQueueReady, 1);
  }
  void driver_ok() { wr(mmio::kStatus, rd(mmio::kStatus) | kStatusDriverOk); }
};

constexpr uint32_t kSetup = kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk;

TEST_CASE("mmio: identification registers") {
  MmioFixture f;
  CHECK(f.rd(mmio::kMagicValue) == 0x74726976);
  CHECK(f.rd(mmio::kVersion) == 2);
  CHECK(f.rd(mmio::kDeviceId) == kRngDeviceId);
  CHECK(f.rd(mmio::kVendorId) == mmio::kVendor);
  f.wr(mmio::kDeviceFeaturesSel, 1);
  CHECK((f.rd(mmio::kDeviceFeatures) & 1) == 1);  // VERSION_1 is bit 32
  f.wr(mmio::kDeviceFeaturesSel, 0);
  CHECK(f.rd(mmio::kDeviceFeatures) == static_cast<uint32_t>(f.rng->device_features()));
  f.wr(mmio::kDeviceFeaturesSel, 2);
  CHECK(f.rd(mmio::kDeviceFeatures) == 0);
  CHECK(f.rd(mmio::kQueueNumMax) == Rng::kQueueMaxSize);
  f.wr(mmio::kQueueSel, 1);
  CHECK(f.rd(mmio::kQueueNumMax) == 0);  // no such queue
  CHECK(f.t.notify_address() == layout::kVirtioMmioBase + 0x50);
}

TEST_CASE("mmio: only 32-bit register accesses count") {
  MmioFixture f;
  uint8_t b[2] = {0xaa, 0xaa};
  f.t.read(mmio::kMagicValue, b);
  CHECK(b[0] == 0);
  uint8_t one[1] = {kStatusAcknowledge};
  f.t.write(mmio::kStatus, one);
  CHECK(f.rd(mmio::kStatus) == 0);
}

TEST_CASE("mmio: the full status sequence activates the device and notify processes the queue") {
  MmioFixture f;
  f.negotiate(f.rng->device_features());
  CHECK(f.rd(mmio::kStatus) == kSetup);
  CHECK(f.rng->acked_features() == f.rng->device_features());
  f.setup_queue(16);
  CHECK(f.rd(mmio::kQueueReady) == 1);
  f.driver_ok();
  CHECK(f.rd(mmio::kStatus) == (kSetup | kStatusDriverOk));
  CHECK(f.rng->activated());

  // Queue writes after DRIVER_OK are ignored.
  f.wr(mmio::kQueueNum, 4);
  CHECK(f.rng->queue(0).size() == 16);

  const uint64_t buf = f.tq.alloc(64);
  f.tq.add_chain({{buf, 64, true}});
  f.wr(mmio::kQueueNotify, 0);
  CHECK(f.tq.used_idx() == 1);
  CHECK(f.tq.used(0).len == 64);
  CHECK(f.irq.count == 1);
  CHECK(f.rd(mmio::kInterruptStatus) == kInterruptUsedBuffer);
  f.wr(mmio::kInterruptAck, kInterruptUsedBuffer);
  CHECK(f.rd(mmio::kInterruptStatus) == 0);

  // The ioeventfd path does the same.
  f.tq.add_chain({{buf, 32, true}});
  f.t.process_queue(0);
  CHECK(f.tq.used_idx() == 2);

  // Writing 0 resets everything.
  f.wr(mmio::kStatus, 0);
  CHECK(f.rd(mmio::kStatus) == 0);
  CHECK_FALSE(f.rng->activated());
  CHECK(f.rd(mmio::kQueueReady) == 0);
  CHECK(f.rng->acked_features() == 0);
}

TEST_CASE("mmio: status transitions out of order are refused") {
  MmioFixture f;
  f.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);  // skipped ACKNOWLEDGE alone
  CHECK(f.rd(mmio::kStatus) == 0);
  f.wr(mmio::kStatus, kStatusAcknowledge);
  f.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);  // two steps at once
  CHECK(f.rd(mmio::kStatus) == kStatusAcknowledge);
  f.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
  f.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);  // DRIVER_OK before FEATURES_OK
  CHECK(f.rd(mmio::kStatus) == (kStatusAcknowledge | kStatusDriver));
  f.wr(mmio::kStatus, kStatusAcknowledge);  // clearing a bit
  CHECK(f.rd(mmio::kStatus) == (kStatusAcknowledge | kStatusDriver));
  f.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFailed);
  CHECK(f.rd(mmio::kStatus) == (kStatusAcknowledge | kStatusDriver | kStatusFailed));
}

TEST_CASE("mmio: a legacy driver (no VERSION_1) does not get FEATURES_OK") {
  MmioFixture f;
  f.negotiate(f.rng->device_features() & ~feature_bit(kFeatureVersion1));
  CHECK(f.rd(mmio::kStatus) == (kStatusAcknowledge | kStatusDriver));
  f.wr(mmio::kLegacyGuestPageSize, 4096);  // ignored, logged once
  f.wr(mmio::kLegacyQueuePfn, 1);
  CHECK(f.rd(mmio::kStatus) == (kStatusAcknowledge | kStatusDriver));
}

TEST_CASE("mmio: unoffered feature bits are dropped") {
  MmioFixture f;
  f.negotiate(f.rng->device_features() | feature_bit(3) | feature_bit(40));
  CHECK(f.rd(mmio::kStatus) == kSetup);
  CHECK(f.rng->acked_features() == f.rng->device_features());
}

TEST_CASE("mmio: a bad queue size is refused and DRIVER_OK then needs reset") {
  MmioFixture f;
  f.negotiate(f.rng->device_features());
  f.setup_queue(12);  // not a power of two
  f.driver_ok();
  CHECK_FALSE(f.rng->activated());
  CHECK((f.rd(mmio::kStatus) & kStatusNeedsReset) != 0);
  CHECK((f.rd(mmio::kInterruptStatus) & kInterruptConfigChange) != 0);
  CHECK(f.irq.count == 1);
  // Notifies are dropped; a reset recovers.
  f.wr(mmio::kQueueNotify, 0);
  f.wr(mmio::kStatus, 0);
  CHECK(f.rd(mmio::kStatus) == 0);
  f.negotiate(f.rng->device_features());
  f.setup_queue(16);
  f.driver_ok();
  CHECK(f.rng->activated());
  CHECK((f.rd(mmio::kStatus) & kStatusNeedsReset) == 0);
}

TEST_CASE("mmio: queue sizes above the maximum, rings outside memory") {
  MmioFixture f;
  f.negotiate(f.rng->device_features());
  f.setup_queue(512);
  f.driver_ok();
  CHECK((f.rd(mmio::kStatus) & kStatusNeedsReset) != 0);

  f.negotiate(f.rng->device_features());
  f.setup_queue(16);
  f.wr64(mmio::kQueueDeviceLow, uint64_t{1} << 40);
  f.driver_ok();
  CHECK_FALSE(f.rng->activated());
  CHECK((f.rd(mmio::kStatus) & kStatusNeedsReset) != 0);
}

TEST_CASE("mmio: config space reads past the end are zeros at any width") {
  MmioFixture f;
  uint8_t b[8];
  std::fill(std::begin(b), std::end(b), uint8_t{0x77});
  f.t.read(mmio::kConfig, b);
  CHECK(b[0] == 0);
  CHECK(f.rd(mmio::kConfigGeneration) == 0);
  CHECK(f.rd(mmio::kShmLenLow) == 0xffffffff);
}

}  // namespace
}  // namespace forkvm::virtio
