#include "devices/virtio/net.hpp"

#include <sys/epoll.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "vmm/log.hpp"

namespace forkvm::virtio {
namespace {
std::atomic<bool> g_logged_tx{false};
std::atomic<bool> g_logged_rx{false};
std::atomic<bool> g_logged_tap{false};

// Largest chain we turn into iovecs: Linux sends a frame in at most
// MAX_SKB_FRAGS + 2 descriptors; this leaves room and stays under IOV_MAX.
constexpr size_t kMaxSegments = 256;

// Appends the descriptors of a chain as iovecs, all of one direction; false
// for a broken chain, a wrong-direction descriptor or too many segments.
bool gather(DescriptorChain& chain, bool writable, std::vector<iovec>& out, size_t& total) {
  total = 0;
  for (;;) {
    auto d = chain.next();
    if (!d.ok()) return false;
    if (!d->has_value()) return true;
    if ((*d)->writable != writable || out.size() == kMaxSegments) return false;
    if ((*d)->data.empty()) continue;
    out.push_back({(*d)->data.data(), (*d)->data.size()});
    total += (*d)->data.size();
  }
}

// Drops `n` bytes of an iovec list from index `from` on (the guest's virtio header).
void skip_front(std::vector<iovec>& iov, size_t from, size_t n) {
  size_t i = from;
  while (i < iov.size() && n >= iov[i].iov_len) n -= iov[i++].iov_len;
  iov.erase(iov.begin() + static_cast<std::ptrdiff_t>(from), iov.begin() + static_cast<std::ptrdiff_t>(i));
  const size_t first = from;
  if (n > 0 && iov.size() > first) {
    iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + n;
    iov[first].iov_len -= n;
  }
}

// Writes `bytes` at the start of the iovec list (which holds at least that many).
void write_front(const std::vector<iovec>& iov, size_t offset, std::span<const uint8_t> bytes) {
  for (const auto& v : iov) {
    if (bytes.empty()) return;
    if (offset >= v.iov_len) {
      offset -= v.iov_len;
      continue;
    }
    const size_t n = std::min(v.iov_len - offset, bytes.size());
    std::memcpy(static_cast<uint8_t*>(v.iov_base) + offset, bytes.data(), n);
    bytes = bytes.subspan(n);
    offset = 0;
  }
}

}  // namespace

Result<std::shared_ptr<Net>> Net::create(UniqueFd tap, const MacAddress& mac) {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep.valid()) return errno_error("epoll_create1 for virtio-net");
  return std::shared_ptr<Net>(new Net(std::move(tap), std::move(ep), mac));
}

Net::Net(UniqueFd tap, UniqueFd epoll, const MacAddress& mac)
    : Device(2, kQueueMaxSize), tap_(std::move(tap)), epoll_(std::move(epoll)) {
  std::memcpy(config_.data(), mac.data(), mac.size());
  const uint16_t status = kNetStatusLinkUp;
  const uint16_t pairs = 1;
  std::memcpy(config_.data() + 6, &status, 2);
  std::memcpy(config_.data() + 8, &pairs, 2);
}

uint64_t Net::device_features() const {
  return feature_bit(kFeatureVersion1) | feature_bit(kFeatureEventIdx) | feature_bit(kFeatureIndirectDesc) |
         feature_bit(kNetFeatureMac) | feature_bit(kNetFeatureStatus);
}

NetStats Net::stats() const {
  return {rx_bytes_.load(std::memory_order_relaxed), rx_frames_.load(std::memory_order_relaxed),
          tx_bytes_.load(std::memory_order_relaxed), tx_frames_.load(std::memory_order_relaxed),
          tx_dropped_.load(std::memory_order_relaxed)};
}

Status Net::do_activate() {
  process_rx();  // arms EPOLLIN if the driver already posted buffers
  return {};
}

void Net::do_reset() { set_interest(false, false); }

void Net::set_interest(bool want_in, bool want_out) {
  want_in_ = want_in;
  want_out_ = want_out;
  const uint32_t events = (want_in ? EPOLLIN : 0U) | (want_out ? EPOLLOUT : 0U);
  // Not registered at all when idle: EPOLLERR/EPOLLHUP cannot be masked.
  if (events == 0) {
    if (registered_) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, tap_.get(), nullptr);
    registered_ = false;
    return;
  }
  epoll_event ev{};
  ev.events = events;
  if (::epoll_ctl(epoll_.get(), registered_ ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, tap_.get(), &ev) != 0) {
    log_once(g_logged_tap, "virtio-net: epoll_ctl on the TAP: {}", std::strerror(errno));
    return;
  }
  registered_ = true;
}

void Net::process_queue(uint16_t index) {
  if (index == kTxQueue) process_tx();
  if (index == kRxQueue) process_rx();
}

void Net::process_event() {
  // Level-triggered and nothing stays registered that we do not consume, so
  // draining the set once is enough.
  epoll_event evs[2];
  (void)::epoll_wait(epoll_.get(), evs, 2, 0);
  if (!activated() || needs_reset()) return set_interest(false, false);
  if (want_out_) process_tx();
  process_rx();
}

void Net::process_tx() {
  if (!activated() || needs_reset() || !queue(kTxQueue).active()) return;
  Queue& q = queue(kTxQueue);
  bool added = false;
  bool blocked = false;
  std::vector<iovec> iov;
  // The guest's header is replaced by an all-zero one: we offered no
  // offloads, so no checksum or GSO request of the guest's reaches the TAP.
  static const std::array<uint8_t, kNetHdrSize> kZeroHdr{};
  for (;;) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-net tx queue"));
      return;
    }
    if (!popped->has_value()) break;
    DescriptorChain& chain = **popped;
    size_t total = 0;
    iov.assign(
        1, iovec{const_cast<uint8_t*>(kZeroHdr.data()), kZeroHdr.size()});  // sent in place of the guest's
    if (!gather(chain, false, iov, total) || total < kNetHdrSize || total - kNetHdrSize > kNetMaxFrame) {
      log_once(g_logged_tx, "virtio-net: dropped a malformed tx chain ({} bytes)", total);
      tx_dropped_.fetch_add(1, std::memory_order_relaxed);
    } else {
      skip_front(iov, 1, kNetHdrSize);
      ssize_t n;
      do {
        n = ::writev(tap_.get(), iov.data(), static_cast<int>(iov.size()));
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        q.undo_pop();  // the TAP is full: retry this frame when it is writable
        blocked = true;
        break;
      }
      if (n < 0) {
        log_once(g_logged_tx, "virtio-net: TAP refused a frame: {}", std::strerror(errno));
        tx_dropped_.fetch_add(1, std::memory_order_relaxed);
      } else {
        tx_bytes_.fetch_add(total - kNetHdrSize, std::memory_order_relaxed);
        tx_frames_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    if (auto s = q.add_used(chain.head(), 0); !s.ok()) {
      set_needs_reset(s.error().context("virtio-net tx used ring"));
      return;
    }
    added = true;
  }
  if (blocked != want_out_) set_interest(want_in_, blocked);
  if (added && q.needs_notification()) signal_used_queue();
}

void Net::process_rx() {
  if (!activated() || needs_reset() || !queue(kRxQueue).active()) return;
  Queue& q = queue(kRxQueue);
  bool added = false;
  bool have_buffers = true;
  std::vector<iovec> iov;
  for (;;) {
    auto popped = q.pop();
    if (!popped.ok()) {
      set_needs_reset(popped.error().context("virtio-net rx queue"));
      return;
    }
    if (!popped->has_value()) {
      have_buffers = false;  // stop watching the TAP until the guest posts more
      break;
    }
    DescriptorChain& chain = **popped;
    size_t total = 0;
    iov.clear();
    if (!gather(chain, true, iov, total) || total < kNetHdrSize) {
      log_once(g_logged_rx, "virtio-net: unusable rx chain ({} bytes)", total);
      if (auto s = q.add_used(chain.head(), 0); !s.ok()) return set_needs_reset(s.error());
      added = true;
      continue;
    }
    ssize_t n;
    do {
      n = ::readv(tap_.get(), iov.data(), static_cast<int>(iov.size()));
    } while (n < 0 && errno == EINTR);
    if (n < static_cast<ssize_t>(kNetHdrSize)) {
      q.undo_pop();  // EAGAIN (drained), or nothing usable: keep the buffer
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        log_once(g_logged_tap, "virtio-net: TAP read gave {} ({})", n,
                 n < 0 ? std::strerror(errno) : "short");
      }
      break;
    }
    // The TAP leaves num_buffers alone; without MRG_RXBUF it must read 1.
    const uint16_t one = 1;
    write_front(iov, 10, {reinterpret_cast<const uint8_t*>(&one), 2});
    const auto len = static_cast<size_t>(n);
    rx_bytes_.fetch_add(len - kNetHdrSize, std::memory_order_relaxed);
    rx_frames_.fetch_add(1, std::memory_order_relaxed);
    if (auto s = q.add_used(chain.head(), static_cast<uint32_t>(len)); !s.ok()) {
      return set_needs_reset(s.error().context("virtio-net rx used ring"));
    }
    added = true;
  }
  if (have_buffers != want_in_) set_interest(have_buffers, want_out_);
  if (added && q.needs_notification()) signal_used_queue();
}

}  // namespace forkvm::virtio
