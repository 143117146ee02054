#include "devices/virtio/vsock_connection.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace forkvm::virtio::vsock {
namespace {

// sendmsg rather than writev: MSG_NOSIGNAL, so a host program that went away
// is an EPIPE here and not a SIGPIPE for the whole VMM.
ssize_t send_iov(int fd, const iovec* iov, size_t count) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);  // sendmsg does not write through it
  msg.msg_iovlen = count;
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return n;
}

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace

Connection::Connection(UniqueFd fd, uint32_t host_port, uint32_t guest_port, State state, uint32_t buf_alloc)
    : fd_(std::move(fd)),
      host_port_(host_port),
      guest_port_(guest_port),
      state_(state),
      buf_alloc_(buf_alloc) {}

void Connection::update_peer(uint32_t buf_alloc, uint32_t fwd_cnt) {
  peer_buf_alloc_ = buf_alloc;
  peer_fwd_cnt_ = fwd_cnt;
}

uint32_t Connection::peer_credit() const {
  // Wrapping subtraction: both counters are free-running u32s (5.10.6.3).
  const uint32_t in_flight = tx_cnt_ - peer_fwd_cnt_;
  return in_flight >= peer_buf_alloc_ ? 0 : peer_buf_alloc_ - in_flight;
}

Connection::ReadResult Connection::read_host(std::span<const iovec> iov, uint32_t max) {
  max = std::min(max, peer_credit());
  if (max == 0) return {Io::would_block, 0};
  // Clip the iovecs to max so we never read more than the guest has room for.
  std::vector<iovec> clipped;
  size_t left = max;
  for (const auto& v : iov) {
    if (left == 0) break;
    const size_t n = std::min(v.iov_len, left);
    clipped.push_back({v.iov_base, n});
    left -= n;
  }
  if (clipped.empty()) return {Io::would_block, 0};
  ssize_t n;
  do {
    n = ::readv(fd_.get(), clipped.data(), static_cast<int>(clipped.size()));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return {would_block(errno) ? Io::would_block : Io::error, 0};
  if (n == 0) return {Io::eof, 0};
  const auto got = static_cast<uint32_t>(n);
  tx_cnt_ += got;
  return {Io::ok, got};
}

Connection::Io Connection::push_guest(std::span<const iovec> payload, uint32_t len) {
  // The guest may have at most buf_alloc bytes unforwarded (its credit).
  if (uint64_t{rx_cnt_ - fwd_cnt_} + len > buf_alloc_) return Io::overrun;
  rx_cnt_ += len;
  size_t written = 0;
  if (buffered() == 0 && len > 0) {
    const ssize_t n = send_iov(fd_.get(), payload.data(), payload.size());
    if (n < 0 && !would_block(errno)) return Io::error;
    written = n > 0 ? static_cast<size_t>(n) : 0;
    fwd_cnt_ += static_cast<uint32_t>(written);
  }
  // Keep what the socket did not take, in order after anything buffered.
  size_t skip = written;
  for (const auto& v : payload) {
    if (skip >= v.iov_len) {
      skip -= v.iov_len;
      continue;
    }
    const auto* p = static_cast<const uint8_t*>(v.iov_base);
    if (buf_head_ > 0) {
      // Drop what was flushed so the vector stays within buf_alloc.
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(buf_head_));
      buf_head_ = 0;
    }
    buf_.insert(buf_.end(), p + skip, p + v.iov_len);
    skip = 0;
  }
  return Io::ok;
}

Connection::Io Connection::flush() {
  while (buffered() > 0) {
    const iovec v{buf_.data() + buf_head_, buffered()};
    const ssize_t n = send_iov(fd_.get(), &v, 1);
    if (n < 0) return would_block(errno) ? Io::would_block : Io::error;
    buf_head_ += static_cast<size_t>(n);
    fwd_cnt_ += static_cast<uint32_t>(n);
  }
  // Reclaim the space; the buffer never holds more than buf_alloc anyway.
  buf_.clear();
  buf_head_ = 0;
  return Io::ok;
}

bool Connection::write_line(std::string_view line) {
  const iovec v{const_cast<char*>(line.data()), line.size()};
  return send_iov(fd_.get(), &v, 1) == static_cast<ssize_t>(line.size());
}

bool Connection::credit_update_due() const {
  if (credit_requested_) return true;
  if (fwd_cnt_ == last_sent_fwd_cnt_) return false;
  // The free space the guest believes we have, from the last fwd_cnt it saw.
  const uint32_t seen_in_use = rx_cnt_ - last_sent_fwd_cnt_;
  const uint32_t seen_free = seen_in_use >= buf_alloc_ ? 0 : buf_alloc_ - seen_in_use;
  return seen_free < kCreditUpdateThreshold;
}

void Connection::stamp(Header& h) {
  h.buf_alloc = buf_alloc_;
  h.fwd_cnt = fwd_cnt_;
  last_sent_fwd_cnt_ = fwd_cnt_;
  credit_requested_ = false;
}

}  // namespace forkvm::virtio::vsock
