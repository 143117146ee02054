// Muxer, guest side: packets from the guest (tx) and the packets we owe it
// (rx), per connection, with the credit rules of vsock_connection.hpp.
#include <sys/epoll.h>
#include <sys/socket.h>

#include "devices/virtio/vsock_muxer.hpp"
#include "vmm/log.hpp"

namespace forkvm::virtio::vsock {
namespace {
std::atomic<bool> g_logged_overrun{false};
std::atomic<bool> g_logged_protocol{false};
}  // namespace

void Muxer::reply_reset(const Header& to) {
  if (to.operation() == Op::rst) return;   // an RST answering an RST could ping-pong forever
  if (stray_ >= kMaxStrayReplies) return;  // the device stops taking tx before this
  control_.push_back({reset_reply(to), true});
  ++stray_;
}

void Muxer::reset(Connection& c) {
  // Bounded without a cap: at most one per connection, and connections are capped.
  control_.push_back({header_for(c, Op::rst), false});
  remove(c);
}

void Muxer::on_guest_packet(const Header& h, const SgList& sg) {
  auto it = by_ports_.find({h.dst_port, h.src_port});
  if (it == by_ports_.end()) {
    if (h.operation() == Op::request) return guest_connect(h);
    return reply_reset(h);  // includes RW to a connection we already closed
  }
  const uint64_t id = it->second;
  Connection& c = *find(id);
  c.update_peer(h.buf_alloc, h.fwd_cnt);
  switch (h.operation()) {
    case Op::request:  // a second REQUEST for a live connection: the guest lost track
      log_once(g_logged_protocol, "vsock: REQUEST for a connected port {}; reset", h.dst_port);
      return reset(c);
    case Op::response:
      if (c.state() != Connection::State::connecting || c.request_owed) return reset(c);
      c.set_state(Connection::State::established);
      set_deadline(c, std::nullopt);
      // The host program learns its local port, as in Firecracker's protocol.
      if (!c.write_line(fmt::format("OK {}\n", c.host_port()))) return reset(c);
      break;
    case Op::rst:
      if (c.state() == Connection::State::connecting) {
        // One line per host connect at most: the guest cannot make more of these.
        log(LogLevel::info,
            "vsock: the guest refused a host connect from port {} to port {} (nothing listening there)",
            c.host_port(), c.guest_port());
      }
      return remove(c);
    case Op::shutdown:
      c.guest_shutdown |= h.flags & (kShutdownRcv | kShutdownSend);
      after_flush(c);
      if (find(id) == nullptr) return;  // after_flush finished the close
      break;
    case Op::rw: {
      if (c.state() != Connection::State::established || (c.guest_shutdown & kShutdownSend) != 0) {
        log_once(g_logged_protocol, "vsock: data on port {} before connect or after shutdown; reset",
                 h.dst_port);
        return reset(c);
      }
      std::vector<iovec> iov;
      sg.iovecs(kHeaderSize, h.len, iov);
      const auto io = c.push_guest(iov, h.len);
      if (io == Connection::Io::overrun) {
        log_once(g_logged_overrun, "vsock: guest overran the credit of port {}; reset", h.dst_port);
        return reset(c);
      }
      if (io == Connection::Io::error) return reset(c);  // the host program went away
      break;
    }
    case Op::credit_update:
      break;  // update_peer() above was the point
    case Op::credit_request:
      c.request_credit_update();
      break;
    case Op::invalid:
      return reset(c);
  }
  mark_ready(c);
  update_interest(c);
  rearm_timer();
}

// Guest shutdown bits take effect once its buffered data reached the host.
void Muxer::after_flush(Connection& c) {
  if (c.buffered() > 0) {
    if (c.guest_shutdown == (kShutdownRcv | kShutdownSend) && !c.deadline) {
      set_deadline(c, Connection::Clock::now() + kCloseLinger);  // bounded wait for a slow reader
    }
    return;
  }
  if ((c.guest_shutdown & kShutdownSend) != 0 && !c.host_write_shut) {
    ::shutdown(c.fd(), SHUT_WR);  // the host program reads EOF
    c.host_write_shut = true;
  }
  // Both directions closed by the guest: the clean end of a stream is our RST (5.10.6.6).
  if (c.guest_shutdown == (kShutdownRcv | kShutdownSend)) reset(c);
}

void Muxer::on_connection_event(uint64_t id, uint32_t events) {
  Connection* c = find(id);
  if (c == nullptr) return;
  const bool hangup = (events & (EPOLLHUP | EPOLLERR)) != 0;
  if ((c->epoll_mask & EPOLLIN) != 0 && ((events & EPOLLIN) != 0 || hangup)) {
    // Read when the guest can take it (fill_rx); until EAGAIN, no more EPOLLIN.
    c->host_readable = true;
  }
  if ((c->epoll_mask & EPOLLOUT) != 0 && ((events & EPOLLOUT) != 0 || hangup)) {
    if (c->flush() == Connection::Io::error) return reset(*c);
    after_flush(*c);
    if ((c = find(id)) == nullptr) return;
  }
  mark_ready(*c);
  update_interest(*c);
}

bool Muxer::wants_rx(Connection& c) const {
  if (c.request_owed || c.response_owed || c.shutdown_owed || c.credit_update_due()) return true;
  return c.host_readable && c.may_read_host() && c.peer_credit() > 0;
}

void Muxer::mark_ready(Connection& c) {
  if (!wants_rx(c) || queued_.contains(c.id)) return;
  queued_.insert(c.id);
  ready_.push_back(c.id);
}

Header Muxer::header_for(const Connection& c, Op op) const {
  Header h;
  h.src_cid = kHostCid;
  h.dst_cid = guest_cid_;
  h.src_port = c.host_port();
  h.dst_port = c.guest_port();
  h.type = kTypeStream;
  h.op = static_cast<uint16_t>(op);
  return h;
}

uint32_t Muxer::fill_rx(SgList& buf) {
  if (buf.size() < kHeaderSize) return 0;
  for (;;) {
    if (!control_.empty()) {
      const auto bytes = encode(control_.front().hdr);
      if (control_.front().stray) --stray_;
      control_.pop_front();
      buf.copy_in(0, bytes);
      return kHeaderSize;
    }
    if (ready_.empty()) return 0;
    const uint64_t id = ready_.front();
    ready_.pop_front();
    if (queued_.erase(id) == 0) continue;  // removed while queued
    Connection* c = find(id);
    if (c == nullptr) continue;
    const uint32_t n = fill_from(*c, buf);
    if ((c = find(id)) != nullptr) {
      mark_ready(*c);  // round-robin: back of the line if it owes more
      update_interest(*c);
    }
    if (n > 0) return n;
  }
}

uint32_t Muxer::fill_from(Connection& c, SgList& buf) {
  auto send = [&](Header h) {
    c.stamp(h);  // every packet tells the guest our buf_alloc and fwd_cnt
    buf.copy_in(0, encode(h));
    return static_cast<uint32_t>(kHeaderSize + h.len);
  };
  if (c.request_owed) {
    c.request_owed = false;
    return send(header_for(c, Op::request));
  }
  if (c.response_owed) {
    c.response_owed = false;
    return send(header_for(c, Op::response));
  }
  if (c.host_readable && c.may_read_host() && c.peer_credit() > 0) {
    const auto room = static_cast<uint32_t>(std::min<uint64_t>(buf.size() - kHeaderSize, kMaxPayload));
    std::vector<iovec> iov;
    buf.iovecs(kHeaderSize, room, iov);
    const auto r = c.read_host(iov, room);
    switch (r.io) {
      case Connection::Io::ok: {
        Header h = header_for(c, Op::rw);
        h.len = r.bytes;
        return send(h);
      }
      case Connection::Io::eof:
        c.host_eof = true;
        c.shutdown_owed = true;
        [[fallthrough]];
      case Connection::Io::would_block:
        c.host_readable = false;  // update_interest() re-arms EPOLLIN
        break;
      default:
        reset(c);
        return 0;
    }
  }
  if (c.shutdown_owed) {
    c.shutdown_owed = false;
    Header h = header_for(c, Op::shutdown);
    h.flags = kShutdownSend;  // we will send no more; the guest may still write
    return send(h);
  }
  if (c.credit_update_due()) return send(header_for(c, Op::credit_update));
  return 0;
}

}  // namespace forkvm::virtio::vsock
