// libFuzzer target: a hostile guest's virtqueue in front of virtio-blk.
// The input becomes the descriptor table, the available ring and the data
// area of a small guest memory; the device then processes the queue against
// a 64 KiB temp-file disk. Every address, index and length is the guest's,
// so this covers Queue::pop, DescriptorChain (indirect tables included),
// the blk request parser and the io_uring submission/completion path.
//
// Input layout: [0] log2 queue size (mod 9), [1] feature bits (bit 0:
// EVENT_IDX, bit 1: process the queue twice), then 16*size bytes of
// descriptors, 6+2*size bytes of available ring, the rest as data at 0x3000.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "devices/virtio/blk.hpp"
#include "tests/fuzz/fuzz_rings.hpp"
#include "tests/unit/virtio_test_queue.hpp"
#include "vmm/log.hpp"

namespace {

using forkvm::GuestMemory;
using forkvm::virtio::Blk;

constexpr uint64_t kMemSize = 64 * 1024;
constexpr uint64_t kDescGpa = 0x0;
constexpr uint64_t kAvailGpa = 0x1000;
constexpr uint64_t kUsedGpa = 0x2000;
constexpr uint64_t kDataGpa = 0x3000;
constexpr uint64_t kDiskBytes = 64 * 1024;

struct World {
  GuestMemory mem = std::move(GuestMemory::create_anonymous(kMemSize).value());
  forkvm::virtio::testing::CountingInterrupt irq;
  std::shared_ptr<Blk> blk;

  World() {
    forkvm::set_log_level(forkvm::LogLevel::error);
    char path[] = "/tmp/forkvm-fuzz-disk-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0 || ::ftruncate(fd, kDiskBytes) != 0) std::abort();
    ::close(fd);
    auto b = Blk::create({path, false, "fuzz"});
    ::unlink(path);  // the device keeps its descriptor; nothing is left behind
    if (!b.ok()) {
      std::fprintf(stderr, "%s\n", b.error().message.c_str());
      std::abort();
    }
    blk = *b;
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

  forkvm::fuzz::load_rings(w.mem, kMemSize, queue_size, kDescGpa, kAvailGpa, kDataGpa, kMemSize, data, size);

  Blk& blk = *w.blk;
  blk.reset();
  uint64_t features = blk.device_features();
  if ((flags & 1) == 0) features &= ~forkvm::virtio::feature_bit(forkvm::virtio::kFeatureEventIdx);
  blk.set_acked_features(features);
  auto& q = blk.queue(0);
  q.set_size(queue_size);
  q.set_desc_table(kDescGpa);
  q.set_avail_ring(kAvailGpa);
  q.set_used_ring(kUsedGpa);
  q.set_ready(true);
  if (!blk.activate(w.mem, w.irq).ok()) std::abort();  // the layout above is always valid

  const int rounds = (flags & 2) != 0 ? 2 : 1;
  for (int i = 0; i < rounds; ++i) {
    blk.process_queue(0);
    if (!blk.wait_idle().ok()) std::abort();
  }
  if (blk.in_flight() != 0) std::abort();
  // FORKVM_FUZZ_DEBUG=1 prints what reached the used ring (for checking seeds).
  static const bool debug = std::getenv("FORKVM_FUZZ_DEBUG") != nullptr;
  if (debug) {
    const auto used = w.mem.read_obj<uint16_t>(kUsedGpa + 2).value_or(0);
    for (uint16_t i = 0; i < used && i < queue_size; ++i) {
      const auto len = w.mem.read_obj<uint32_t>(kUsedGpa + 8 + uint64_t{8} * i).value_or(0);
      std::fprintf(stderr, "used[%u] len %u\n", i, len);
    }
  }
  return 0;
}
