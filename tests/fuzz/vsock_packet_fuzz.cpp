// libFuzzer target: a hostile guest's tx queue in front of virtio-vsock.
// The input becomes the tx descriptor table, its available ring and the data
// area; the device processes tx, answers into a few fixed rx buffers, and
// services host events. A host listener on PATH_1 lets guest REQUESTs to
// port 1 succeed, so connected-state handling (RW, SHUTDOWN, credit) is
// reached too. Covers Queue::pop, DescriptorChain, SgList, parse_tx and the
// muxer's packet handling.
//
// Input layout: [0] log2 tx queue size (mod 9), [1] bit 0: EVENT_IDX,
// bit 1: process twice, then 16*size bytes of descriptors, 6+2*size bytes
// of available ring, the rest as data at 0x3000.
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "devices/virtio/vsock.hpp"
#include "tests/fuzz/fuzz_rings.hpp"
#include "tests/unit/virtio_test_queue.hpp"
#include "vmm/log.hpp"

namespace {

using forkvm::GuestMemory;
using forkvm::virtio::Vsock;

constexpr uint64_t kMemSize = 128 * 1024;
constexpr uint64_t kDescGpa = 0x0;
constexpr uint64_t kAvailGpa = 0x1000;
constexpr uint64_t kUsedGpa = 0x2000;
constexpr uint64_t kDataGpa = 0x3000;
constexpr uint64_t kDataEnd = 0x10000;
constexpr uint64_t kRxGpa = 0x10000;  // the rx queue and its buffers live above the fuzzed area
constexpr uint16_t kRxSize = 8;

struct World {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(kMemSize).value());
  forkvm::virtio::testing::CountingInterrupt irq;
  std::string dir;
  std::shared_ptr<Vsock> dev;
  int listener = -1;

  World() {
    forkvm::set_log_level(forkvm::LogLevel::error);
    char d[] = "/tmp/forkvm-fuzz-vsock-XXXXXX";
    if (::mkdtemp(d) == nullptr) std::abort();
    dir = d;
    auto v = Vsock::create({3, dir + "/v.sock"});
    if (!v.ok()) {
      std::fprintf(stderr, "%s\n", v.error().message.c_str());
      std::abort();
    }
    dev = *v;
    listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s/v.sock_1", dir.c_str());
    if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener, 1024) != 0) {
      std::abort();
    }
  }
  // Accept and drop whatever the device connected, so the backlog never fills.
  void drain_listener() const {
    for (int fd; (fd = ::accept(listener, nullptr, nullptr)) >= 0;) ::close(fd);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  if (size < 2) return 0;
  const auto queue_size = static_cast<uint16_t>(1u << (data[0] % 9));
  const uint8_t flags = data[1];
  data += 2;
  size -= 2;

  forkvm::fuzz::load_rings(w.mem, kMemSize, queue_size, kDescGpa, kAvailGpa, kDataGpa, kDataEnd, data, size);

  Vsock& dev = *w.dev;
  dev.reset();
  uint64_t features = dev.device_features();
  if ((flags & 1) == 0) features &= ~forkvm::virtio::feature_bit(forkvm::virtio::kFeatureEventIdx);
  dev.set_acked_features(features);
  auto& tx = dev.queue(Vsock::kTxQueue);
  tx.set_size(queue_size);
  tx.set_desc_table(kDescGpa);
  tx.set_avail_ring(kAvailGpa);
  tx.set_used_ring(kUsedGpa);
  tx.set_ready(true);
  forkvm::virtio::testing::TestQueue rxq(w.mem, kRxGpa, kRxSize);
  rxq.configure(dev.queue(Vsock::kRxQueue));
  if (!dev.activate(w.mem, w.irq).ok()) std::abort();  // the layout above is always valid
  for (int i = 0; i < kRxSize - 2; ++i) {
    const uint32_t len = i == 0 ? 20 : 44 + 512;  // one too small for a header
    rxq.add_chain({{rxq.alloc(len), len, true}});
  }

  const int rounds = (flags & 2) != 0 ? 2 : 1;
  for (int i = 0; i < rounds; ++i) {
    dev.process_queue(Vsock::kTxQueue);
    dev.process_queue(Vsock::kRxQueue);
    dev.process_event();
  }
  // Invariants: the device never published more than the guest gave it.
  if (rxq.used_idx() > kRxSize - 2) std::abort();
  for (uint16_t i = 0; i < rxq.used_idx(); ++i) {
    if (rxq.used(i).len > 44 + 512) std::abort();
  }
  if (dev.muxer().connection_count() > forkvm::virtio::vsock::kMaxConnections) std::abort();
  w.drain_listener();
  return 0;
}
