#include "devices/virtio/rng.hpp"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_chain{false};
std::atomic<bool> g_logged_random{false};
}  // namespace

uint64_t Rng::device_features() const {
  return feature_bit(kFeatureVersion1) | feature_bit(kFeatureEventIdx) | feature_bit(kFeatureIndirectDesc);
}

Result<uint32_t> Rng::fill(DescriptorChain& chain) {
  size_t total = 0;
  for (;;) {
    auto d = FORKVM_TRY(chain.next());
    if (!d.has_value()) break;
    if (!d->writable) continue;  // the driver only offers writable buffers; skip anything else
    size_t want = std::min(d->data.size(), kMaxBytesPerRequest - total);
    size_t got = 0;
    while (got < want) {
      const ssize_t n = ::getrandom(d->data.data() + got, want - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        log_once(g_logged_random, "virtio-rng: getrandom failed: {}", std::strerror(errno));
        break;
      }
      got += static_cast<size_t>(n);
    }
    total += got;
    if (got < want || total == kMaxBytesPerRequest) break;
  }
  return static_cast<uint32_t>(total);
}

void Rng::process_queue(uint16_t index) {
  if (index != 0) return;
  Queue& q = queue(0);
  bool added = false;
  for (;;) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-rng queue"));
      break;
    }
    if (!popped->has_value()) break;
    DescriptorChain& chain = **popped;
    auto bytes = fill(chain);
    if (!bytes.ok())
      log_once(g_logged_chain, "virtio-rng: refused a descriptor chain: {}", bytes.error().message);
    if (auto s = q.add_used(chain.head(), bytes.ok() ? *bytes : 0); !s.ok()) {
      set_needs_reset(s.error().context("virtio-rng used ring"));
      break;
    }
    added = true;
  }
  if (added && q.needs_notification()) signal_used_queue();
}

}  // namespace forkvm::virtio
