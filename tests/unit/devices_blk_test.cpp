#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "devices/virtio/blk.hpp"
#include "devices/virtio/blk_request.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;

// ---- the pure parser -------------------------------------------------------

struct Chain {
  std::array<uint8_t, 16> header{};
  std::vector<uint8_t> data = std::vector<uint8_t>(1024);
  std::array<uint8_t, 4> status{0xff, 0xff, 0xff, 0xff};
  std::vector<Descriptor> descs;

  Chain(uint32_t type, uint64_t sector, size_t data_len, bool data_writable) {
    std::memcpy(header.data(), &type, 4);
    std::memcpy(header.data() + 8, &sector, 8);
    descs.push_back({header, false});
    if (data_len > 0) descs.push_back({{data.data(), data_len}, data_writable});
    descs.push_back({{status.data(), 1}, true});
  }
};

const blk::DiskLimits kDisk{100, false, 4, 4096};

TEST_CASE("blk parser: reads, writes, flush and get-id in range are accepted") {
  for (auto [type, writable] : {std::pair{blk::kTypeIn, true}, std::pair{blk::kTypeOut, false}}) {
    Chain c(type, 98, 1024, writable);
    auto r = blk::parse_request(c.descs, kDisk);
    REQUIRE(r.ok());
    CHECK(r->early_status == blk::kStatusOk);
    CHECK(r->type == type);
    CHECK(r->sector == 98);
    CHECK(r->data_len == 1024);
    CHECK(r->data.size() == 1);
    CHECK(r->status == c.status.data());
  }
  Chain flush(blk::kTypeFlush, 0, 0, false);
  CHECK(blk::parse_request(flush.descs, kDisk)->early_status == blk::kStatusOk);
  Chain id(blk::kTypeGetId, 0, 20, true);
  auto r = blk::parse_request(id.descs, kDisk);
  REQUIRE(r.ok());
  CHECK(r->early_status == blk::kStatusOk);
  std::array<uint8_t, blk::kIdBytes> want{};
  std::memcpy(want.data(), "disk0", 5);
  CHECK(blk::write_id(*r, want) == 20);
  CHECK(std::memcmp(id.data.data(), want.data(), 20) == 0);
}

TEST_CASE("blk parser: refusals carry the right status") {
  auto status_of = [](Chain& c, const blk::DiskLimits& d = kDisk) {
    auto r = blk::parse_request(c.descs, d);
    REQUIRE(r.ok());
    return r->early_status;
  };
  Chain past_end(blk::kTypeIn, 99, 1024, true);  // sectors 99..100, capacity 100
  CHECK(status_of(past_end) == blk::kStatusIoErr);
  Chain overflow(blk::kTypeIn, ~uint64_t{0} - 1, 1024, true);
  CHECK(status_of(overflow) == blk::kStatusIoErr);
  Chain partial(blk::kTypeIn, 0, 100, true);  // not whole sectors
  CHECK(status_of(partial) == blk::kStatusIoErr);
  Chain wrong_dir_in(blk::kTypeIn, 0, 512, false);
  CHECK(status_of(wrong_dir_in) == blk::kStatusIoErr);
  Chain wrong_dir_out(blk::kTypeOut, 0, 512, true);
  CHECK(status_of(wrong_dir_out) == blk::kStatusIoErr);
  Chain ro(blk::kTypeOut, 0, 512, false);
  CHECK(status_of(ro, {100, true, 4, 4096}) == blk::kStatusIoErr);
  Chain ro_read(blk::kTypeIn, 0, 512, true);
  CHECK(status_of(ro_read, {100, true, 4, 4096}) == blk::kStatusOk);
  Chain no_data(blk::kTypeIn, 0, 0, true);
  CHECK(status_of(no_data) == blk::kStatusIoErr);
  Chain unknown(77, 0, 0, false);
  CHECK(status_of(unknown) == blk::kStatusUnsupp);
  Chain flush_with_data(blk::kTypeFlush, 0, 512, false);
  CHECK(status_of(flush_with_data) == blk::kStatusIoErr);
  Chain getid_readonly_buf(blk::kTypeGetId, 0, 20, false);
  CHECK(status_of(getid_readonly_buf) == blk::kStatusIoErr);
  Chain too_big_seg(blk::kTypeIn, 0, 1024, true);
  CHECK(status_of(too_big_seg, {100, false, 4, 512}) == blk::kStatusIoErr);

  Chain short_header(blk::kTypeIn, 0, 512, true);
  short_header.descs[0].data = short_header.descs[0].data.first(8);
  CHECK(status_of(short_header) == blk::kStatusIoErr);
  Chain writable_header(blk::kTypeIn, 0, 512, true);
  writable_header.descs[0].writable = true;
  CHECK(status_of(writable_header) == blk::kStatusIoErr);
  Chain long_status(blk::kTypeIn, 0, 512, true);
  long_status.descs.back().data = {long_status.status.data(), 4};
  CHECK(status_of(long_status) == blk::kStatusIoErr);
}

TEST_CASE("blk parser: a chain without a writable status byte cannot be answered") {
  Chain c(blk::kTypeIn, 0, 512, true);
  c.descs.back().writable = false;
  CHECK_FALSE(blk::parse_request(c.descs, kDisk).ok());
  CHECK_FALSE(blk::parse_request({}, kDisk).ok());
}

// ---- the device end to end over a temp file ---------------------------------

constexpr uint64_t kDiskBytes = 64 * 1024;

struct BlkFixture {
  std::string path;
  GuestMemory mem = std::move(GuestMemory::create_anonymous(1 << 20).value());
  TestQueue tq{mem, 0x1000, 64};
  CountingInterrupt irq;
  std::shared_ptr<Blk> blk;

  explicit BlkFixture(bool read_only = false) {
    char tmpl[] = "/tmp/forkvm-blk-test-XXXXXX";
    int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    path = tmpl;
    REQUIRE(::ftruncate(fd, kDiskBytes) == 0);
    ::close(fd);
    activate(Blk::create({path, read_only, "test-disk"}));
  }
  // Over a backend without a direct fd: the device's worker thread runs it.
  explicit BlkFixture(std::unique_ptr<BlkBackend> backend) { activate(Blk::create(std::move(backend), "")); }
  ~BlkFixture() {
    if (!path.empty()) ::unlink(path.c_str());
  }
  void activate(Result<std::shared_ptr<Blk>> b) {
    REQUIRE(b.ok());
    blk = *b;
    blk->set_acked_features(blk->device_features());
    tq.configure(blk->queue(0));
    REQUIRE(blk->activate(mem, irq).ok());
  }

  // Queues one request; returns (head, status gpa, data gpa).
  struct Sent {
    uint16_t head;
    uint64_t status;
    uint64_t data;
  };
  Sent send(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    uint8_t header[16] = {};
    std::memcpy(header, &type, 4);
    std::memcpy(header + 8, &sector, 8);
    const uint64_t h = tq.alloc_bytes(header);
    const uint64_t st = tq.alloc(1);
    (void)mem.write_obj<uint8_t>(st, 0xff);
    const uint64_t data = tq.alloc(data_len == 0 ? 1 : data_len);
    uint16_t head;
    if (data_len > 0) {
      head = tq.add_chain({{h, 16, false}, {data, data_len, data_writable}, {st, 1, true}});
    } else {
      head = tq.add_chain({{h, 16, false}, {st, 1, true}});
    }
    return {head, st, data};
  }
  uint8_t status(const Sent& s) { return mem.read_obj<uint8_t>(s.status).value(); }
  void run() {
    blk->process_queue(0);
    REQUIRE(blk->wait_idle().ok());
  }
};

TEST_CASE("blk: config space and features") {
  BlkFixture f;
  uint64_t capacity = 0;
  f.blk->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
  CHECK(capacity == kDiskBytes / 512);
  uint8_t past[4] = {1, 2, 3, 4};
  f.blk->read_config(4096, past);
  CHECK(past[0] == 0);
  CHECK((f.blk->device_features() & feature_bit(kBlkFeatureFlush)) != 0);
  CHECK((f.blk->device_features() & feature_bit(kBlkFeatureRo)) == 0);
  CHECK((f.blk->device_features() & feature_bit(kFeatureVersion1)) != 0);
}

TEST_CASE("blk: write a pattern, flush, read it back") {
  BlkFixture f;
  auto w = f.send(blk::kTypeOut, 8, 4096, false);
  std::vector<uint8_t> pattern(4096);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7 + 3);
  REQUIRE(f.mem.write(w.data, pattern));
  auto fl = f.send(blk::kTypeFlush, 0, 0, false);
  f.run();
  CHECK(f.status(w) == blk::kStatusOk);
  CHECK(f.status(fl) == blk::kStatusOk);
  CHECK(f.tq.used_idx() == 2);
  CHECK(f.tq.used(0).len == 1);
  CHECK(f.irq.count >= 1);

  auto r = f.send(blk::kTypeIn, 8, 4096, true);
  f.run();
  CHECK(f.status(r) == blk::kStatusOk);
  std::vector<uint8_t> back(4096);
  REQUIRE(f.mem.read(r.data, back));
  CHECK(back == pattern);
  CHECK(f.tq.used(2).id == r.head);
  CHECK(f.tq.used(2).len == 4097);  // data plus the status byte
}

TEST_CASE("blk: out-of-range I/O is refused without touching the disk") {
  BlkFixture f;
  auto w = f.send(blk::kTypeOut, kDiskBytes / 512 - 1, 1024, false);  // last sector + 1 past the end
  std::vector<uint8_t> ones(1024, 0xee);
  REQUIRE(f.mem.write(w.data, ones));
  auto r = f.send(blk::kTypeIn, kDiskBytes / 512, 512, true);
  f.run();
  CHECK(f.status(w) == blk::kStatusIoErr);
  CHECK(f.status(r) == blk::kStatusIoErr);
  CHECK(f.tq.used_idx() == 2);
  // The disk's last sector is still zeros.
  auto check = f.send(blk::kTypeIn, kDiskBytes / 512 - 1, 512, true);
  f.run();
  std::vector<uint8_t> back(512, 0x55);
  REQUIRE(f.mem.read(check.data, back));
  CHECK(back == std::vector<uint8_t>(512, 0));
}

TEST_CASE("blk: get-id, unsupported types and read-only disks") {
  BlkFixture f(true);
  CHECK((f.blk->device_features() & feature_bit(kBlkFeatureRo)) != 0);
  auto id = f.send(blk::kTypeGetId, 0, 20, true);
  auto w = f.send(blk::kTypeOut, 0, 512, false);
  auto u = f.send(42, 0, 0, false);
  f.run();
  CHECK(f.status(id) == blk::kStatusOk);
  char got[21] = {};
  REQUIRE(f.mem.read(id.data, {reinterpret_cast<uint8_t*>(got), 20}));
  CHECK(std::string(got) == "test-disk");
  CHECK(f.tq.used(0).len == 21);
  CHECK(f.status(w) == blk::kStatusIoErr);
  CHECK(f.status(u) == blk::kStatusUnsupp);
}

TEST_CASE("blk: a malformed chain completes with length 0 and a broken ring needs reset") {
  BlkFixture f;
  const uint64_t buf = f.tq.alloc(16);
  f.tq.set_desc(60, buf, 16, kDescFlagNext, 60);  // a self-loop
  f.tq.publish(60);
  f.run();
  CHECK(f.tq.used_idx() == 1);
  CHECK(f.tq.used(0).len == 0);
  CHECK_FALSE(f.blk->needs_reset());

  f.tq.publish(64);  // head outside the queue
  f.run();
  CHECK(f.blk->needs_reset());
  CHECK((f.blk->interrupt_status() & kInterruptConfigChange) != 0);
  f.blk->reset();
  CHECK_FALSE(f.blk->needs_reset());
  CHECK_FALSE(f.blk->activated());
}

// ---- a backend without a direct fd, on the device's worker thread ------------

// Every call waits at a gate the test opens, and is recorded in order. The
// gate outlives the backend (the device owns that), so a test can still
// read it after the device is gone.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::string calls;
  std::atomic<bool> fail_writes{false};

  void let_through() {
    std::lock_guard lk(mu);
    open = true;
    cv.notify_all();
  }
  std::string seen() {
    std::lock_guard lk(mu);
    return calls;
  }
  Status pass(char op) {
    std::unique_lock lk(mu);
    cv.wait(lk, [this] { return open; });
    calls += op;
    if (op == 'w' && fail_writes) return make_error("injected write error");
    return {};
  }
};

class GatedBackend final : public BlkBackend {
 public:
  explicit GatedBackend(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  [[nodiscard]] uint64_t size_bytes() const override { return kDiskBytes; }
  [[nodiscard]] bool read_only() const override { return false; }
  [[nodiscard]] std::string name() const override { return "gated"; }
  [[nodiscard]] Status read(uint64_t /*offset*/, std::span<const iovec> iov) override {
    FORKVM_CHECK(gate_->pass('r'));
    for (const iovec& v : iov) std::memset(v.iov_base, 0xab, v.iov_len);
    return {};
  }
  [[nodiscard]] Status write(uint64_t /*offset*/, std::span<const iovec> /*iov*/) override {
    return gate_->pass('w');
  }
  [[nodiscard]] Status flush() override { return gate_->pass('f'); }

 private:
  std::shared_ptr<Gate> gate_;
};

TEST_CASE("blk worker: a backend call that blocks does not hold up the event thread") {
  auto gate = std::make_shared<Gate>();
  BlkFixture f(std::make_unique<GatedBackend>(gate));
  auto w = f.send(blk::kTypeOut, 8, 4096, false);
  auto fl = f.send(blk::kTypeFlush, 0, 0, false);
  auto r = f.send(blk::kTypeIn, 8, 4096, true);
  f.blk->process_queue(0);  // returns with every call still waiting at the gate
  CHECK(f.blk->in_flight() == 3);
  CHECK(f.tq.used_idx() == 0);
  CHECK(f.status(w) == 0xff);

  gate->let_through();
  REQUIRE(f.blk->wait_idle().ok());
  CHECK(gate->seen() == "wfr");  // one at a time, in order: the flush follows the write
  CHECK(f.tq.used_idx() == 3);
  CHECK(f.status(w) == blk::kStatusOk);
  CHECK(f.status(fl) == blk::kStatusOk);
  CHECK(f.status(r) == blk::kStatusOk);
  std::vector<uint8_t> back(4096);
  REQUIRE(f.mem.read(r.data, back));
  CHECK(std::all_of(back.begin(), back.end(), [](uint8_t b) { return b == 0xab; }));
  CHECK(f.irq.count >= 1);
}

TEST_CASE("blk worker: a failed backend call completes as an I/O error, and the next one works") {
  auto gate = std::make_shared<Gate>();
  gate->let_through();
  gate->fail_writes = true;
  BlkFixture f(std::make_unique<GatedBackend>(gate));
  auto w = f.send(blk::kTypeOut, 8, 4096, false);
  f.run();
  CHECK(f.status(w) == blk::kStatusIoErr);
  CHECK(f.tq.used(0).len == 1);
  gate->fail_writes = false;
  auto w2 = f.send(blk::kTypeOut, 8, 4096, false);
  f.run();
  CHECK(f.status(w2) == blk::kStatusOk);
}

TEST_CASE("blk worker: the device waits for in-flight calls before it goes away") {
  auto gate = std::make_shared<Gate>();
  BlkFixture f(std::make_unique<GatedBackend>(gate));
  (void)f.send(blk::kTypeIn, 8, 4096, true);
  (void)f.send(blk::kTypeIn, 16, 4096, true);
  f.blk->process_queue(0);
  std::thread opener([gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    gate->let_through();
  });
  f.blk.reset();  // blocks until both reads are done: they write guest memory
  CHECK(gate->seen() == "rr");
  opener.join();
}

}  // namespace
}  // namespace forkvm::virtio
