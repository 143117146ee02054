#include <doctest/doctest.h>

#include "devices/virtio/queue.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::Buf;
using testing::TestQueue;

constexpr uint64_t kMemSize = 1 << 20;

struct Fixture {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(kMemSize).value());
  TestQueue tq{mem, 0x1000, 16};
  Queue q{256};

  Fixture() {
    tq.configure(q);
    REQUIRE(q.activate(mem).ok());
  }

  // Pops one chain and collects it; the error message when the chain is bad.
  Result<std::vector<Descriptor>> pop_chain() {
    auto popped = q.pop();
    if (!popped.ok()) return popped.error();
    if (!popped->has_value()) return make_error("queue empty");
    std::vector<Descriptor> out;
    auto s = (*popped)->collect(out);
    if (!s.ok()) return s.error();
    return out;
  }
};

TEST_CASE("queue: a good chain yields bounds-checked host views in order") {
  Fixture f;
  const uint64_t a = f.tq.alloc(100), b = f.tq.alloc(200);
  const uint16_t head = f.tq.add_chain({{a, 100, false}, {b, 200, true}});
  auto popped = f.q.pop();
  REQUIRE(popped.ok());
  REQUIRE(popped->has_value());
  CHECK((*popped)->head() == head);
  std::vector<Descriptor> d;
  REQUIRE((*popped)->collect(d).ok());
  REQUIRE(d.size() == 2);
  CHECK(d[0].data.data() == f.mem.host_ptr(a, 100));
  CHECK(d[0].data.size() == 100);
  CHECK_FALSE(d[0].writable);
  CHECK(d[1].data.size() == 200);
  CHECK(d[1].writable);
  // Empty now.
  auto again = f.q.pop();
  REQUIRE(again.ok());
  CHECK_FALSE(again->has_value());
}

TEST_CASE("queue: add_used publishes id and length") {
  Fixture f;
  const uint16_t head = f.tq.add_chain({{f.tq.alloc(8), 8, true}});
  REQUIRE(f.pop_chain().ok());
  REQUIRE(f.q.add_used(head, 8).ok());
  CHECK(f.tq.used_idx() == 1);
  CHECK(f.tq.used(0).id == head);
  CHECK(f.tq.used(0).len == 8);
  CHECK_FALSE(f.q.add_used(16, 1).ok());  // head outside the queue
}

TEST_CASE("queue: indirect tables are walked") {
  Fixture f;
  const Buf bufs[] = {{f.tq.alloc(16), 16, false}, {f.tq.alloc(512), 512, true}, {f.tq.alloc(1), 1, true}};
  f.tq.add_indirect_chain(bufs);
  auto d = f.pop_chain();
  REQUIRE(d.ok());
  REQUIRE(d->size() == 3);
  CHECK((*d)[1].data.size() == 512);
  CHECK((*d)[2].writable);
}

TEST_CASE("queue: hostile chains are refused") {
  Fixture f;
  const uint64_t buf = f.tq.alloc(64);

  SUBCASE("a loop") {
    f.tq.set_desc(0, buf, 8, kDescFlagNext, 1);
    f.tq.set_desc(1, buf, 8, kDescFlagNext, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("a chain longer than the queue") {
    for (uint16_t i = 0; i < 16; ++i)
      f.tq.set_desc(i, buf, 8, kDescFlagNext, static_cast<uint16_t>((i + 1) % 16));
    f.tq.publish(3);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("next outside the table") {
    f.tq.set_desc(0, buf, 8, kDescFlagNext, 16);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("a buffer outside guest memory") {
    f.tq.add_chain({{kMemSize - 4, 8, false}});
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("addr + len overflows") {
    f.tq.add_chain({{~uint64_t{0} - 2, 8, false}});
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("zero length") {
    f.tq.add_chain({{buf, 0, false}});
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("indirect length not a multiple of 16") {
    f.tq.set_desc(0, buf, 24, kDescFlagIndirect, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("indirect table too long") {
    const uint64_t big = f.tq.alloc(16 * (kMaxIndirectEntries + 1));
    f.tq.set_desc(0, big, 16 * (kMaxIndirectEntries + 1), kDescFlagIndirect, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("indirect table outside memory") {
    f.tq.set_desc(0, kMemSize - 16, 32, kDescFlagIndirect, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("nested indirect") {
    const RawDescriptor inner{buf, 16, kDescFlagIndirect, 0};
    const uint64_t table = f.tq.alloc_bytes({reinterpret_cast<const uint8_t*>(&inner), sizeof inner});
    f.tq.set_desc(0, table, 16, kDescFlagIndirect, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("indirect with NEXT") {
    const RawDescriptor inner{buf, 16, 0, 0};
    const uint64_t table = f.tq.alloc_bytes({reinterpret_cast<const uint8_t*>(&inner), sizeof inner});
    f.tq.set_desc(0, table, 16, kDescFlagIndirect | kDescFlagNext, 1);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  SUBCASE("a loop inside an indirect table") {
    const RawDescriptor inner[2] = {{buf, 8, kDescFlagNext, 1}, {buf, 8, kDescFlagNext, 0}};
    const uint64_t table = f.tq.alloc_bytes({reinterpret_cast<const uint8_t*>(inner), sizeof inner});
    f.tq.set_desc(0, table, 32, kDescFlagIndirect, 0);
    f.tq.publish(0);
    CHECK_FALSE(f.pop_chain().ok());
  }
  // A bad chain does not break the queue: the next one is fine.
  f.tq.set_desc(5, buf, 8, 0, 0);
  f.tq.publish(5);
  auto next = f.pop_chain();
  REQUIRE(next.ok());
  CHECK(next->size() == 1);
}

TEST_CASE("queue: a broken available ring stops the queue") {
  Fixture f;
  SUBCASE("avail idx more than the queue size ahead") { f.tq.set_avail_idx(17); }
  SUBCASE("head outside the queue") { f.tq.publish(16); }
  CHECK_FALSE(f.q.pop().ok());
  CHECK_FALSE(f.q.pop().ok());  // and stays broken until reset
}

TEST_CASE("queue: activation checks size, alignment and placement") {
  auto mem = GuestMemory::create_anonymous(kMemSize);
  REQUIRE(mem.ok());
  TestQueue tq(*mem, 0x1000, 16);
  auto check = [&](auto&& mutate) {
    Queue q(256);
    tq.configure(q);
    mutate(q);
    return q.activate(*mem).ok();
  };
  CHECK(check([](Queue&) {}));
  CHECK_FALSE(check([](Queue& q) { q.set_ready(false); }));
  CHECK_FALSE(check([](Queue& q) { q.set_size(0); }));
  CHECK_FALSE(check([](Queue& q) { q.set_size(12); }));
  CHECK_FALSE(check([](Queue& q) { q.set_size(512); }));
  CHECK_FALSE(check([&](Queue& q) { q.set_desc_table(tq.desc_table() + 8); }));
  CHECK_FALSE(check([&](Queue& q) { q.set_avail_ring(tq.avail_ring() + 1); }));
  CHECK_FALSE(check([&](Queue& q) { q.set_used_ring(tq.used_ring() + 2); }));
  CHECK_FALSE(check([](Queue& q) { q.set_used_ring(kMemSize - 64); }));            // runs off the end
  CHECK_FALSE(check([](Queue& q) { q.set_desc_table(layout::kMmioHoleStart); }));  // not RAM
}

TEST_CASE("queue: notification without EVENT_IDX follows NO_INTERRUPT") {
  Fixture f;
  const uint16_t head = f.tq.add_chain({{f.tq.alloc(8), 8, true}});
  REQUIRE(f.pop_chain().ok());
  CHECK_FALSE(f.q.needs_notification());  // nothing added yet
  REQUIRE(f.q.add_used(head, 0).ok());
  CHECK(f.q.needs_notification());
  f.tq.set_avail_flags(kAvailFlagNoInterrupt);
  REQUIRE(f.q.add_used(head, 0).ok());
  CHECK_FALSE(f.q.needs_notification());
}

TEST_CASE("queue: EVENT_IDX notifies exactly when used_event is crossed") {
  auto mem = GuestMemory::create_anonymous(kMemSize);
  REQUIRE(mem.ok());
  TestQueue tq(*mem, 0x1000, 16);
  Queue q(256);
  tq.configure(q);
  q.set_event_idx(true);
  REQUIRE(q.activate(*mem).ok());

  for (int i = 0; i < 4; ++i) tq.add_chain({{tq.alloc(8), 8, true}});
  for (int i = 0; i < 4; ++i) REQUIRE(q.pop()->has_value());

  tq.set_used_event(2);            // the driver wants an interrupt once entry 2 is used
  REQUIRE(q.add_used(0, 0).ok());  // used idx -> 1
  CHECK_FALSE(q.needs_notification());
  REQUIRE(q.add_used(1, 0).ok());  // -> 2
  CHECK_FALSE(q.needs_notification());
  REQUIRE(q.add_used(2, 0).ok());  // -> 3: entry 2 published
  CHECK(q.needs_notification());
  REQUIRE(q.add_used(3, 0).ok());  // -> 4: already past used_event
  CHECK_FALSE(q.needs_notification());

  // Going idle writes avail_event = next slot, asking for a kick on the next buffer.
  auto empty = q.pop();
  REQUIRE(empty.ok());
  CHECK_FALSE(empty->has_value());
  CHECK(tq.avail_event() == 4);
}

TEST_CASE("queue: EVENT_IDX batch crossing used_event notifies once") {
  auto mem = GuestMemory::create_anonymous(kMemSize);
  REQUIRE(mem.ok());
  TestQueue tq(*mem, 0x1000, 16);
  Queue q(256);
  tq.configure(q);
  q.set_event_idx(true);
  REQUIRE(q.activate(*mem).ok());
  for (int i = 0; i < 3; ++i) tq.add_chain({{tq.alloc(8), 8, true}});
  for (int i = 0; i < 3; ++i) REQUIRE(q.pop()->has_value());
  tq.set_used_event(1);
  for (uint16_t i = 0; i < 3; ++i) REQUIRE(q.add_used(i, 0).ok());
  CHECK(q.needs_notification());
}

TEST_CASE("queue: used index wraps around the ring") {
  Fixture f;
  const uint64_t buf = f.tq.alloc(8);
  for (int round = 0; round < 40; ++round) {
    const uint16_t head = f.tq.add_chain({{buf, 8, true}});
    auto d = f.pop_chain();
    REQUIRE(d.ok());
    REQUIRE(f.q.add_used(head, 8).ok());
  }
  CHECK(f.tq.used_idx() == 40);
  CHECK(f.tq.used(39).len == 8);
}

}  // namespace
}  // namespace forkvm::virtio
