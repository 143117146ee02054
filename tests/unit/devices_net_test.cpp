#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "devices/virtio/net.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm::virtio {
namespace {

using testing::CountingInterrupt;
using testing::TestQueue;

const MacAddress kMac{0x06, 0x00, 0xAC, 0x10, 0x00, 0x02};

// A SOCK_DGRAM socketpair stands in for the TAP: one datagram, one frame.
struct Rig {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(4 << 20).value());
  CountingInterrupt irq;
  UniqueFd host;  // "the TAP's other side"
  std::shared_ptr<Net> dev;
  TestQueue rxq{mem, 0x10000, 16};
  TestQueue txq{mem, 0x200000, 16};

  Rig() {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    host.reset(sv[1]);
    auto d = Net::create(UniqueFd(sv[0]), kMac);
    REQUIRE(d.ok());
    dev = *d;
    rxq.configure(dev->queue(Net::kRxQueue));
    txq.configure(dev->queue(Net::kTxQueue));
    dev->set_acked_features(dev->device_features());
    REQUIRE(dev->activate(mem, irq).ok());
  }
  [[nodiscard]] bool event_fd_readable() const {
    pollfd p{dev->event_fd(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 1;
  }
};

std::vector<uint8_t> frame(size_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

TEST_CASE("net: config space holds the MAC and link up") {
  Rig r;
  std::array<uint8_t, 10> cfg{};
  r.dev->read_config(0, cfg);
  CHECK(std::memcmp(cfg.data(), kMac.data(), 6) == 0);
  CHECK(cfg[6] == kNetStatusLinkUp);
  CHECK((r.dev->device_features() & feature_bit(kNetFeatureMac)) != 0);
}

TEST_CASE("net: tx gathers the chain after the header and writes one frame") {
  Rig r;
  std::array<uint8_t, 12> hdr{};
  hdr[0] = 1;  // NEEDS_CSUM, which we never offered: must not reach the TAP
  hdr[1] = 4;  // GSO_TCPV6
  const auto f = frame(60, 7);
  // Header split over two descriptors, then the frame over two.
  const uint64_t h = r.txq.alloc_bytes(hdr);
  const uint64_t a = r.txq.alloc_bytes({f.data(), 20});
  const uint64_t b = r.txq.alloc_bytes({f.data() + 20, 40});
  r.txq.add_chain({{h, 5, false}, {h + 5, 7, false}, {a, 20, false}, {b, 40, false}});
  r.dev->process_queue(Net::kTxQueue);
  CHECK(r.txq.used_idx() == 1);
  std::array<uint8_t, 200> got{};
  REQUIRE(::recv(r.host.get(), got.data(), got.size(), 0) == 72);
  for (int i = 0; i < 12; ++i) CHECK(got[static_cast<size_t>(i)] == 0);
  CHECK(std::memcmp(got.data() + 12, f.data(), 60) == 0);
  CHECK(r.dev->stats().tx_bytes == 60);
  CHECK(r.dev->stats().tx_frames == 1);
  CHECK(r.irq.count == 1);

  // Malformed: a device-writable descriptor in tx, and a chain shorter than the header.
  r.txq.add_chain({{h, 12, false}, {a, 20, true}});
  r.txq.add_chain({{h, 8, false}});
  r.dev->process_queue(Net::kTxQueue);
  CHECK(r.txq.used_idx() == 3);
  CHECK(r.dev->stats().tx_dropped == 2);
  CHECK(::recv(r.host.get(), got.data(), got.size(), MSG_DONTWAIT) < 0);
}

TEST_CASE("net: rx waits for buffers without spinning, then delivers each frame once") {
  Rig r;
  std::vector<uint8_t> pkt(12, 0xEE);  // num_buffers garbage, as a TAP leaves it
  const auto f = frame(100, 1);
  pkt.insert(pkt.end(), f.begin(), f.end());
  REQUIRE(::send(r.host.get(), pkt.data(), pkt.size(), 0) == 112);
  REQUIRE(::send(r.host.get(), pkt.data(), pkt.size(), 0) == 112);
  r.dev->process_event();
  CHECK_FALSE(r.event_fd_readable());  // no rx buffers: the TAP is not watched
  CHECK(r.rxq.used_idx() == 0);

  const uint64_t b1 = r.rxq.alloc(1526);
  const uint64_t b2a = r.rxq.alloc(10);
  const uint64_t b2b = r.rxq.alloc(1516);
  r.rxq.add_chain({{b1, 1526, true}});
  r.rxq.add_chain({{b2a, 10, true}, {b2b, 1516, true}});  // header split: num_buffers in the 2nd
  r.rxq.add_chain({{r.rxq.alloc(1526), 1526, true}});
  r.dev->process_queue(Net::kRxQueue);
  CHECK(r.rxq.used_idx() == 2);
  CHECK(r.rxq.used(0).len == 112);
  CHECK(r.rxq.used(1).len == 112);
  CHECK(r.mem.read_obj<uint16_t>(b1 + 10).value() == 1);
  CHECK(r.mem.read_obj<uint16_t>(b2b).value() == 1);
  std::vector<uint8_t> got(100);
  REQUIRE(r.mem.read(b1 + 12, got));
  CHECK(got == f);
  CHECK(r.dev->stats().rx_bytes == 200);
  CHECK(r.dev->stats().rx_frames == 2);
  CHECK_FALSE(r.event_fd_readable());  // drained; the spare buffer waits

  // A frame arriving later is picked up through the event fd.
  REQUIRE(::send(r.host.get(), pkt.data(), pkt.size(), 0) == 112);
  CHECK(r.event_fd_readable());
  r.dev->process_event();
  CHECK(r.rxq.used_idx() == 3);
  CHECK_FALSE(r.event_fd_readable());
}

TEST_CASE("net: an rx buffer too small for the header is returned empty") {
  Rig r;
  r.rxq.add_chain({{r.rxq.alloc(8), 8, true}});
  r.rxq.add_chain({{r.rxq.alloc(64), 64, false}});  // read-only: unusable
  r.dev->process_queue(Net::kRxQueue);
  CHECK(r.rxq.used_idx() == 2);
  CHECK(r.rxq.used(0).len == 0);
  CHECK(r.rxq.used(1).len == 0);
}

}  // namespace
}  // namespace forkvm::virtio
