// The copy-on-write layered disk (devices/storage/): map format, chain
// fall-through, copy-up, freeze/fork, flatten, refcounts and gc, and the
// virtio-blk device over a layered backend. No KVM; files under /tmp.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "devices/storage/chain_ops.hpp"
#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_map.hpp"
#include "devices/storage/layer_store.hpp"
#include "devices/storage/layered_blk_backend.hpp"
#include "devices/storage/layered_disk.hpp"
#include "devices/virtio/blk.hpp"
#include "tests/unit/storage_test_world.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::storage {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace): the shared fixtures

// ---- the map file -----------------------------------------------------------

TEST_CASE("layer map: encode and parse round-trip") {
  auto m = LayerMap::create(kBaseBytes, 16).value();
  CHECK(m.cluster_count() == 17);
  m.set(0);
  m.set(16);
  m.set(99);  // past the end: ignored
  auto bytes = m.encode();
  CHECK(bytes.size() == kMapHeaderBytes + 3);
  auto back = LayerMap::parse(bytes, "m");
  REQUIRE(back.ok());
  CHECK(back->test(0));
  CHECK(back->test(16));
  CHECK_FALSE(back->test(1));
  CHECK(back->allocated() == 2);
}

TEST_CASE("layer map: a corrupt, foreign or truncated file is refused, naming the file") {
  auto m = LayerMap::create(kBaseBytes, 16).value();
  m.set(3);
  const auto good = m.encode();
  auto refused = [](std::vector<uint8_t> b, const char* want) {
    auto r = LayerMap::parse(b, "/x/layers/abc/map");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("/x/layers/abc/map") != std::string::npos);
    CHECK(r.error().message.find(want) != std::string::npos);
  };
  auto flip_bitmap = good;
  flip_bitmap[kMapHeaderBytes] ^= 0x10;
  refused(flip_bitmap, "bitmap checksum");
  auto flip_header = good;
  flip_header[30] ^= 1;
  refused(flip_header, "header checksum");
  auto version = good;
  version[8] = 2;
  refused(version, "format version 2");
  refused(std::vector<uint8_t>(good.begin(), good.end() - 1), "lengths disagree");
  refused(std::vector<uint8_t>(good.begin(), good.begin() + 20), "shorter than its header");
  auto longer = good;
  longer.push_back(0);
  refused(longer, "lengths disagree");
  auto magic = good;
  magic[0] = 'X';
  refused(magic, "not a forkvm layer map");

  // A map file on disk that was tampered with is refused when the chain opens.
  World w;
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 0, pattern(4096, 1));
  }
  const auto c = load_chain(w.chain).value();
  const std::string map = layer_map_path(c.layers_root, c.layers[0]);
  auto bytes = slurp(map);
  bytes[kMapHeaderBytes] ^= 0x80;
  write_file(map, bytes);
  auto opened = LayeredDisk::open(w.chain, false);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.error().message.find(map) != std::string::npos);
}

TEST_CASE("chain descriptor: strict parsing") {
  const std::string good =
      "forkvm-chain 1\nsize 1048576\ncluster-shift 16\nbase /b.img\nbase-size 1048576\nlayers-root /l\n"
      "layer 0123456789abcdef\n";
  auto c = parse_chain(good, "c");
  REQUIRE(c.ok());
  CHECK(c->layers.size() == 1);
  CHECK(parse_chain(encode_chain(*c), "c")->base == "/b.img");
  CHECK_FALSE(parse_chain("forkvm-chain 2\n", "c").ok());
  CHECK_FALSE(parse_chain("qcow2\n", "c").ok());
  CHECK_FALSE(parse_chain(good + "layer ../../etc\n", "c").ok());
  CHECK_FALSE(parse_chain(good + "colour blue\n", "c").ok());
  std::string no_layers = good.substr(0, good.find("layer 0"));
  CHECK_FALSE(parse_chain(no_layers, "c").ok());
  CHECK(parse_chain("forkvm-chain 1\nsize 12x\n", "my-chain").error().message.find("my-chain") !=
        std::string::npos);
}

// ---- reads, writes, copy-up -------------------------------------------------

TEST_CASE("layered disk: reads fall through to the base; past the end is refused") {
  World w;
  auto d = LayeredDisk::open(w.chain, false).value();
  CHECK(d->size() == kBaseBytes);
  CHECK(read_disk(*d, 0, kBaseBytes) == w.base_bytes);
  std::vector<uint8_t> buf(512);
  const iovec v{buf.data(), buf.size()};
  CHECK_FALSE(d->read(kBaseBytes - 511, {&v, 1}).ok());
  CHECK_FALSE(d->write(kBaseBytes, {&v, 1}).ok());
  CHECK_FALSE(d->read(~uint64_t{0} - 10, {&v, 1}).ok());
}

TEST_CASE("layered disk: a partial-cluster write copies the cluster up; the base never changes") {
  World w;
  const auto data = pattern(4096, 99);
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, kCluster + 4096, data);  // inside cluster 1
    std::vector<uint8_t> want = w.base_bytes;
    std::memcpy(want.data() + kCluster + 4096, data.data(), data.size());
    CHECK(read_disk(*d, 0, kBaseBytes) == want);
    CHECK(d->allocated_per_layer() == std::vector<uint64_t>{1});
    REQUIRE(d->flush().ok());
  }
  CHECK(slurp(w.base) == w.base_bytes);
  // The top's data file holds the whole cluster: base bytes around the new ones.
  const auto c = load_chain(w.chain).value();
  const auto top = slurp(layer_data_path(c.layers_root, c.layers[0]));
  REQUIRE(top.size() == kBaseBytes);
  CHECK(std::memcmp(top.data() + kCluster, w.base_bytes.data() + kCluster, 4096) == 0);
  CHECK(std::memcmp(top.data() + kCluster + 4096, data.data(), 4096) == 0);
  CHECK(std::memcmp(top.data() + kCluster + 8192, w.base_bytes.data() + kCluster + 8192, kCluster - 8192) ==
        0);
  // And the map on disk names exactly that cluster.
  const auto map = LayerMap::load(layer_map_path(c.layers_root, c.layers[0])).value();
  CHECK(map.test(1));
  CHECK(map.allocated() == 1);
}

TEST_CASE("layered disk: writes spanning clusters, the partial last cluster, and scattered iovecs") {
  World w;
  auto d = LayeredDisk::open(w.chain, false).value();
  std::vector<uint8_t> want = w.base_bytes;
  // From the middle of cluster 2 to the middle of cluster 5: two partial ends, two whole.
  const auto big = pattern(3 * kCluster, 3);
  const uint64_t at = 2 * kCluster + kCluster / 2;
  // Three iovecs of odd sizes, one request.
  iovec v[3] = {{const_cast<uint8_t*>(big.data()), 512 * 3},
                {const_cast<uint8_t*>(big.data()) + 1536, 4096 * 5},
                {const_cast<uint8_t*>(big.data()) + 1536 + 4096 * 5, big.size() - 1536 - 4096 * 5}};
  REQUIRE(d->write(at, v).ok());
  std::memcpy(want.data() + at, big.data(), big.size());
  // The last, partial cluster (4096 bytes long).
  const auto tail = pattern(512, 5);
  write_disk(*d, kBaseBytes - 1024, tail);
  std::memcpy(want.data() + kBaseBytes - 1024, tail.data(), tail.size());
  CHECK(read_disk(*d, 0, kBaseBytes) == want);
  CHECK(d->allocated_per_layer() == std::vector<uint64_t>{5});
  // Scattered read iovecs see the same bytes.
  std::vector<uint8_t> r1(700 * 512), r2(kBaseBytes - 700 * 512);
  iovec rv[2] = {{r1.data(), r1.size()}, {r2.data(), r2.size()}};
  REQUIRE(d->read(0, rv).ok());
  r1.insert(r1.end(), r2.begin(), r2.end());
  CHECK(r1 == want);
}

TEST_CASE("layered disk: unflushed map bits never reach disk; flush makes them durable") {
  World w;
  const auto c = load_chain(w.chain).value();
  const std::string map = layer_map_path(c.layers_root, c.layers[0]);
  auto d = LayeredDisk::open(w.chain, false).value();
  write_disk(*d, 0, pattern(kCluster, 1));
  CHECK(LayerMap::load(map)->allocated() == 0);  // data written, map not yet
  REQUIRE(d->flush().ok());
  CHECK(LayerMap::load(map)->allocated() == 1);
}

TEST_CASE("layered disk: the top is exclusive; read-only opens refuse writes") {
  World w;
  auto d = LayeredDisk::open(w.chain, false).value();
  auto second = LayeredDisk::open(w.chain, false);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().message.find("in use") != std::string::npos);
  d.reset();
  auto ro = LayeredDisk::open(w.chain, true).value();
  std::vector<uint8_t> buf(512);
  const iovec v{buf.data(), buf.size()};
  CHECK_FALSE(ro->write(0, {&v, 1}).ok());
  CHECK(ro->read(0, {&v, 1}).ok());
}

// ---- freeze, fork, flatten ----------------------------------------------------

TEST_CASE("layered disk: freeze starts a new top; lower layers stay as they were") {
  World w;
  const auto one = pattern(kCluster, 11);
  const auto two = pattern(4096, 22);
  auto d = LayeredDisk::open(w.chain, false).value();
  write_disk(*d, 0, one);
  const auto frozen = d->freeze().value();
  CHECK(frozen.layers.size() == 1);
  CHECK(d->chain().layers.size() == 2);
  CHECK(load_chain(w.chain)->layers.size() == 2);
  const std::string frozen_data = layer_data_path(frozen.layers_root, frozen.layers[0]);
  const auto frozen_before = slurp(frozen_data);
  write_disk(*d, 2048, two);  // over the frozen cluster: copied up into the new top
  write_disk(*d, 5 * kCluster, two);
  CHECK(slurp(frozen_data) == frozen_before);
  std::vector<uint8_t> want = w.base_bytes;
  std::memcpy(want.data(), one.data(), one.size());
  std::memcpy(want.data() + 2048, two.data(), two.size());
  std::memcpy(want.data() + 5 * kCluster, two.data(), two.size());
  CHECK(read_disk(*d, 0, kBaseBytes) == want);
  CHECK(d->allocated_per_layer() == std::vector<uint64_t>{1, 2});
  d.reset();
  // Reopened, the owner index is rebuilt from the maps.
  auto again = LayeredDisk::open(w.chain, false).value();
  CHECK(read_disk(*again, 0, kBaseBytes) == want);
}

TEST_CASE("fork: both sides diverge over the shared frozen layer; flatten merges a chain") {
  World w;
  const auto shared = pattern(4096, 1);
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 4096, shared);
  }
  const std::string child = fork_chain(w.chain, w.tmp.path + "/child").value();
  CHECK(load_chain(child)->layers.size() == 2);
  CHECK(load_chain(w.chain)->layers[0] == load_chain(child)->layers[0]);
  CHECK(load_chain(w.chain)->layers[1] != load_chain(child)->layers[1]);
  const auto mine = pattern(512, 2);
  const auto theirs = pattern(512, 3);
  {
    auto p = LayeredDisk::open(w.chain, false).value();
    auto c = LayeredDisk::open(child, false).value();  // both open at once: separate tops
    write_disk(*p, 8192, mine);
    write_disk(*c, 8192, theirs);
    CHECK(read_disk(*p, 4096, 4096) == shared);
    CHECK(read_disk(*c, 4096, 4096) == shared);
    CHECK(read_disk(*p, 8192, 512) == mine);
    CHECK(read_disk(*c, 8192, 512) == theirs);
  }
  // Flatten the child: one layer, same bytes as the child's chain.
  const std::string flat = flatten_chain(child, w.tmp.path + "/flat").value();
  CHECK(load_chain(flat)->layers.size() == 1);
  CHECK(load_chain(flat)->base == w.base);
  REQUIRE(export_raw(child, w.tmp.path + "/child.raw").ok());
  REQUIRE(export_raw(flat, w.tmp.path + "/flat.raw").ok());
  const auto child_raw = slurp(w.tmp.path + "/child.raw");
  CHECK(child_raw == slurp(w.tmp.path + "/flat.raw"));
  CHECK(std::memcmp(child_raw.data() + 8192, theirs.data(), 512) == 0);
  auto f = LayeredDisk::open(flat, true).value();
  CHECK(f->allocated_per_layer() == std::vector<uint64_t>{1});  // both writes are in cluster 0
  CHECK(slurp(w.base) == w.base_bytes);
}

// ---- references and gc ----------------------------------------------------------

TEST_CASE("refcounts: gc removes only layers nobody holds and nobody has open") {
  World w;
  const std::string child = fork_chain(w.chain, w.tmp.path + "/child").value();
  const auto pc = load_chain(w.chain).value();
  const auto cc = load_chain(child).value();
  const std::string shared = pc.layers[0];
  CHECK(holders(w.root(), shared)->size() == 2);
  CHECK(gc(w.root())->empty());

  // A snapshot holds the frozen layer too.
  REQUIRE(retain(w.root(), shared, "snapshot:s1").ok());
  REQUIRE(retain(w.root(), shared, "snapshot:s1").ok());  // idempotent
  CHECK(holders(w.root(), shared)->size() == 3);

  REQUIRE(delete_chain(child).ok());
  CHECK_FALSE(fs::exists(child));
  auto removed = gc(w.root()).value();
  CHECK(removed == std::vector<std::string>{cc.layers[1]});
  CHECK(fs::exists(layer_dir(w.root(), shared)));

  // Open layers survive gc even without holders.
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    REQUIRE(delete_chain(w.chain).ok());
    CHECK(gc(w.root())->empty());
  }
  removed = gc(w.root()).value();
  CHECK(removed == std::vector<std::string>{pc.layers[1]});
  CHECK(fs::exists(layer_dir(w.root(), shared)));  // the snapshot still holds it
  REQUIRE(release(w.root(), shared, "snapshot:s1").ok());
  CHECK(gc(w.root()).value() == std::vector<std::string>{shared});
  CHECK_FALSE(retain(w.root(), shared, "x").ok());  // gone
}

TEST_CASE("offline freeze is refused while a VM has the chain open") {
  World w;
  auto d = LayeredDisk::open(w.chain, false).value();
  auto f = freeze_chain(w.chain);
  REQUIRE_FALSE(f.ok());
  CHECK(f.error().message.find("in use") != std::string::npos);
  d.reset();
  CHECK(freeze_chain(w.chain).ok());
}

TEST_CASE("discard top: the top's writes are gone, the layers below read as before") {
  World w;
  const auto frozen_bytes = pattern(kCluster, 41);
  const auto lost_bytes = pattern(kCluster, 42);
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 0, frozen_bytes);
  }
  const auto frozen = freeze_chain(w.chain).value();
  const std::string old_top = load_chain(w.chain)->layers.back();
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 0, lost_bytes);
    write_disk(*d, 3 * kCluster, lost_bytes);
    auto refused = discard_top(w.chain);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("in use") != std::string::npos);
  }
  REQUIRE(discard_top(w.chain).ok());
  const auto after = load_chain(w.chain).value();
  REQUIRE(after.layers.size() == 2);
  CHECK(after.layers[0] == frozen.layers[0]);
  CHECK(after.layers[1] != old_top);
  CHECK(gc(w.root()).value() == std::vector<std::string>{old_top});
  auto d = LayeredDisk::open(w.chain, false).value();
  CHECK(read_disk(*d, 0, kCluster) == frozen_bytes);
  const std::vector<uint8_t> base_part(w.base_bytes.begin() + 3 * kCluster,
                                       w.base_bytes.begin() + 4 * kCluster);
  CHECK(read_disk(*d, 3 * kCluster, kCluster) == base_part);
}

TEST_CASE("flatten in place: one merged layer, same bytes; layers a fork still holds survive gc") {
  World w;
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 0, pattern(kCluster, 1));
    REQUIRE(d->freeze().ok());
    write_disk(*d, 4096, pattern(512, 2));
    write_disk(*d, 9 * kCluster, pattern(kCluster, 3));
  }
  const std::string child = fork_chain(w.chain, w.tmp.path + "/child").value();  // shares the frozen layers
  {
    auto d = LayeredDisk::open(w.chain, false).value();
    write_disk(*d, 3 * kCluster, pattern(100 * 512, 4));
    auto busy = flatten_chain_in_place(w.chain);
    REQUIRE_FALSE(busy.ok());
  }
  REQUIRE(export_raw(w.chain, w.tmp.path + "/before.raw").ok());
  const auto old = load_chain(w.chain).value();
  CHECK(old.layers.size() == 3);
  CHECK(flatten_chain_in_place(w.chain).value() == 3);
  const auto flat = load_chain(w.chain).value();
  REQUIRE(flat.layers.size() == 1);
  REQUIRE(export_raw(w.chain, w.tmp.path + "/after.raw").ok());
  CHECK(slurp(w.tmp.path + "/before.raw") == slurp(w.tmp.path + "/after.raw"));
  CHECK(flatten_chain_in_place(w.chain).value() == 1);  // nothing left to merge
  const auto removed = gc(w.root()).value();
  CHECK(removed == std::vector<std::string>{old.layers[2]});  // the fork holds the other two
  CHECK(holders(w.root(), flat.layers[0]).value() == std::vector<std::string>{chain_file(w.chain)});
  auto c = LayeredDisk::open(child, false).value();
  const auto first = pattern(kCluster, 1);
  CHECK(read_disk(*c, 0, 4096) == std::vector<uint8_t>(first.begin(), first.begin() + 4096));
  CHECK(read_disk(*c, 4096, 512) == pattern(512, 2));
  auto d = LayeredDisk::open(w.chain, false).value();
  write_disk(*d, 0, pattern(512, 5));  // the merged layer is the writable top
  CHECK(read_disk(*d, 4096, 512) == pattern(512, 2));
}

constexpr uint64_t kMiB = 1024 * 1024;

// ---- virtio-blk over the layered backend ------------------------------------------

struct LayeredBlk {
  World w;
  GuestMemory mem = std::move(GuestMemory::create_anonymous(1 << 20).value());
  virtio::testing::TestQueue tq{mem, 0x1000, 64};
  virtio::testing::CountingInterrupt irq;
  std::shared_ptr<LayeredDisk> disk;
  std::shared_ptr<virtio::Blk> blk;

  // size 0: the world's chain; else a chain of that many bytes.
  explicit LayeredBlk(uint64_t size = 0) {
    disk = LayeredDisk::open(size == 0 ? w.chain : w.sized_chain("sized", size), false).value();
    blk = virtio::Blk::create(std::make_unique<LayeredBlkBackend>(disk), "").value();
    blk->set_acked_features(blk->device_features());
    tq.configure(blk->queue(0));
    REQUIRE(blk->activate(mem, irq).ok());
  }
  struct Sent {
    uint16_t head;
    uint64_t status;
    uint64_t data;
  };
  Sent send(uint32_t type, uint64_t sector, uint32_t len, bool writable) {
    uint8_t header[16] = {};
    std::memcpy(header, &type, 4);
    std::memcpy(header + 8, &sector, 8);
    const uint64_t h = tq.alloc_bytes(header);
    const uint64_t st = tq.alloc(1);
    (void)mem.write_obj<uint8_t>(st, 0xff);
    const uint64_t data = tq.alloc(len == 0 ? 1 : len);
    const uint16_t head = len > 0 ? tq.add_chain({{h, 16, false}, {data, len, writable}, {st, 1, true}})
                                  : tq.add_chain({{h, 16, false}, {st, 1, true}});
    return {head, st, data};
  }
  uint8_t status(const Sent& s) { return mem.read_obj<uint8_t>(s.status).value(); }
  void run() {
    blk->process_queue(0);
    REQUIRE(blk->wait_idle().ok());
  }
};

TEST_CASE("blk over a layered disk: write, flush, read back; past the end is IOERR") {
  LayeredBlk f;
  uint64_t capacity = 0;
  f.blk->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
  CHECK(capacity == kBaseBytes / 512);
  auto w = f.send(virtio::blk::kTypeOut, 8, 4096, false);
  const auto data = pattern(4096, 42);
  REQUIRE(f.mem.write(w.data, data));
  auto fl = f.send(virtio::blk::kTypeFlush, 0, 0, false);
  auto past = f.send(virtio::blk::kTypeIn, kBaseBytes / 512, 512, true);
  auto id = f.send(virtio::blk::kTypeGetId, 0, 20, true);
  f.run();
  CHECK(f.status(w) == virtio::blk::kStatusOk);
  CHECK(f.status(fl) == virtio::blk::kStatusOk);
  CHECK(f.status(past) == virtio::blk::kStatusIoErr);
  CHECK(f.status(id) == virtio::blk::kStatusOk);
  CHECK(f.tq.used_idx() == 4);
  CHECK(f.irq.count >= 1);
  // Durable after the flush: the map on disk has the cluster.
  const auto c = f.disk->chain();
  CHECK(LayerMap::load(layer_map_path(c.layers_root, c.layers.back()))->test(0));

  auto r = f.send(virtio::blk::kTypeIn, 0, 3 * 4096, true);
  f.run();
  CHECK(f.status(r) == virtio::blk::kStatusOk);
  CHECK(f.tq.used(4).len == 3 * 4096 + 1);
  std::vector<uint8_t> back(3 * 4096);
  REQUIRE(f.mem.read(r.data, back));
  std::vector<uint8_t> want(f.w.base_bytes.begin(), f.w.base_bytes.begin() + 3 * 4096);
  std::memcpy(want.data() + 4096, data.data(), 4096);
  CHECK(back == want);
  CHECK(slurp(f.w.base) == f.w.base_bytes);
}

TEST_CASE("blk over a layered disk: a grown disk is announced and its new sectors are addressable") {
  LayeredBlk f(2 * kMiB);
  const uint32_t generation = f.blk->config_generation();
  const int irqs = f.irq.count;
  auto past = f.send(virtio::blk::kTypeIn, 3 * kMiB / 512, 512, true);
  f.run();
  CHECK(f.status(past) == virtio::blk::kStatusIoErr);

  REQUIRE(f.disk->grow(4 * kMiB).ok());
  f.blk->capacity_changed();
  uint64_t capacity = 0;
  f.blk->read_config(0, {reinterpret_cast<uint8_t*>(&capacity), 8});
  CHECK(capacity == 4 * kMiB / 512);
  CHECK(f.blk->config_generation() == generation + 1);
  CHECK((f.blk->interrupt_status() & virtio::kInterruptConfigChange) != 0);
  CHECK(f.irq.count > irqs);
  auto inside = f.send(virtio::blk::kTypeIn, 3 * kMiB / 512, 512, true);
  f.run();
  CHECK(f.status(inside) == virtio::blk::kStatusOk);
}

// ---- throughput (not run by default: `unit-storage --no-skip -tc='*throughput*'`) ----

double mib_per_s(uint64_t bytes, std::chrono::steady_clock::duration d) {
  return static_cast<double>(bytes) / 1048576.0 / std::chrono::duration<double>(d).count();
}

TEST_CASE("throughput: raw file backend vs layered disk, 1 MiB requests" * doctest::skip()) {
  TempDir tmp;
  constexpr uint64_t kBytes = 256ULL << 20;
  constexpr uint64_t kReq = 1 << 20;
  const std::string base = tmp.path + "/base.img";
  {
    std::vector<uint8_t> chunk = pattern(kReq, 9);
    int fd = ::open(base.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    for (uint64_t at = 0; at < kBytes; at += kReq) REQUIRE(pwrite_full(fd, chunk.data(), kReq, at).ok());
    ::fsync(fd);
    ::close(fd);
  }
  std::vector<uint8_t> buf = pattern(kReq, 4);
  // 4 KiB writes scattered one per 64 KiB: the copy-up worst case.
  auto run = [&](virtio::BlkBackend& b, const std::string& name) {
    const iovec v{buf.data(), kReq};
    const iovec small{buf.data(), 4096};
    auto t0 = std::chrono::steady_clock::now();
    for (uint64_t at = 0; at < kBytes; at += kReq) REQUIRE(b.read(at, {&v, 1}).ok());
    // 4 KiB writes, one per 64 KiB cluster, into the first half: each one a
    // copy-up on a fresh layer (the worst case), an overwrite on raw.
    auto t1 = std::chrono::steady_clock::now();
    uint64_t n = 0;
    for (uint64_t at = 4096; at < kBytes / 2; at += kCluster, ++n) REQUIRE(b.write(at, {&small, 1}).ok());
    REQUIRE(b.flush().ok());
    auto t2 = std::chrono::steady_clock::now();
    for (uint64_t at = 0; at < kBytes; at += kReq) REQUIRE(b.write(at, {&v, 1}).ok());
    REQUIRE(b.flush().ok());
    auto t3 = std::chrono::steady_clock::now();
    for (uint64_t at = 0; at < kBytes; at += kReq) REQUIRE(b.read(at, {&v, 1}).ok());
    auto t4 = std::chrono::steady_clock::now();
    MESSAGE(name << ": read " << mib_per_s(kBytes, t1 - t0) << " MiB/s, 4 KiB writes one per 64 KiB "
                 << static_cast<double>(n) / std::chrono::duration<double>(t2 - t1).count()
                 << " IOPS, seq write+flush " << mib_per_s(kBytes, t3 - t2) << " MiB/s, re-read "
                 << mib_per_s(kBytes, t4 - t3) << " MiB/s");
  };

  {
    // Raw: a copy of the base, as a VM would get it without layers.
    const std::string raw = tmp.path + "/raw.img";
    fs::copy_file(base, raw);
    auto b = virtio::RawFileBackend::open(raw, false).value();
    run(*b, "raw");
  }
  {
    CreateOptions o;
    o.base = base;
    const std::string chain = create_chain(tmp.path + "/vm", o).value();
    LayeredBlkBackend b(LayeredDisk::open(chain, false).value());
    run(b, "layered (fresh top over the base)");
  }
  {
    // Eight layers deep, every other cluster in a different layer.
    CreateOptions o;
    o.base = base;
    const std::string chain = create_chain(tmp.path + "/deep", o).value();
    for (int layer = 0; layer < 8; ++layer) {
      auto d = LayeredDisk::open(chain, false).value();
      const iovec v{buf.data(), kCluster};
      for (uint64_t at = static_cast<uint64_t>(layer) * kCluster; at < kBytes; at += 8 * kCluster) {
        REQUIRE(d->write(at, {&v, 1}).ok());
      }
      REQUIRE(d->freeze().ok());
    }
    LayeredBlkBackend b(LayeredDisk::open(chain, false).value());
    run(b, "layered (9 layers, clusters spread over 8)");
  }
}

}  // namespace
}  // namespace forkvm::storage
