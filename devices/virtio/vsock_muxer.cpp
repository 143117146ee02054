// Muxer, host side: the listener, CONNECT lines, epoll and the deadline timer.
// The guest side (packets in both directions) is in vsock_muxer_guest.cpp.
#include "devices/virtio/vsock_muxer.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <charconv>
#include <cstring>

#include "vmm/log.hpp"
#include "vmm/unix_socket.hpp"

namespace forkvm::virtio::vsock {
namespace {

std::atomic<bool> g_logged_accept{false};
std::atomic<bool> g_logged_refused{false};

// epoll tokens: the kind in the top byte, a muxer id below.
constexpr uint64_t kKindShift = 56;
constexpr uint64_t kListenerToken = 1ULL << kKindShift;
constexpr uint64_t kTimerToken = 2ULL << kKindShift;
constexpr uint64_t kKickToken = 3ULL << kKindShift;
constexpr uint64_t kPendingKind = 4;
constexpr uint64_t kConnKind = 5;
constexpr uint64_t kIdMask = (1ULL << kKindShift) - 1;
constexpr size_t kMaxConnectLine = 32;  // "CONNECT 4294967295\n" fits easily

Status epoll_add(int ep, int fd, uint32_t events, uint64_t token) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) return errno_error("epoll_ctl(ADD)");
  return {};
}

// "CONNECT <port>" (without the newline); the port or nothing.
std::optional<uint32_t> parse_connect(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  constexpr std::string_view kVerb = "CONNECT ";
  if (!line.starts_with(kVerb)) return std::nullopt;
  line.remove_prefix(kVerb.size());
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), port);
  if (ec != std::errc() || end != line.data() + line.size() || line.empty()) return std::nullopt;
  return port;
}

// A port in [kFirstHostPort, 2^32 - 2^16): room for a run of connections above it.
uint32_t random_host_port() {
  uint32_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != static_cast<ssize_t>(sizeof r)) {
    r = static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  constexpr uint32_t kSpan = UINT32_MAX - kFirstHostPort - (1U << 16);
  return kFirstHostPort + r % kSpan;
}

}  // namespace

Result<std::unique_ptr<Muxer>> Muxer::create(const std::string& uds_path, uint64_t guest_cid) {
  std::unique_ptr<Muxer> m(new Muxer(uds_path, guest_cid));
  const sockaddr_un addr = FORKVM_TRY(unix_address(uds_path, "vsock socket"));
  if (uds_path.size() + 11 >= sizeof(addr.sun_path)) {
    // PATH_<port> must fit as well, for guest-initiated connections.
    return make_error("vsock socket path '{}' leaves no room for the _<port> suffix", uds_path);
  }
  m->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!m->epoll_.valid()) return errno_error("epoll_create1 for vsock");
  m->listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!m->listener_.valid()) return errno_error("socket for vsock");
  // A socket file left by an earlier run would make bind fail; anything else is not ours to delete.
  struct stat st {};
  if (::lstat(uds_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return make_error("vsock path {} exists and is not a socket", uds_path);
    ::unlink(uds_path.c_str());
  }
  if (::bind(m->listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return errno_error(fmt::format("bind vsock socket {}", uds_path));
  }
  if (::listen(m->listener_.get(), 64) != 0) return errno_error(fmt::format("listen on {}", uds_path));
  m->timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!m->timer_.valid()) return errno_error("timerfd for vsock");
  m->kick_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!m->kick_.valid()) return errno_error("eventfd for vsock");
  FORKVM_CHECK(epoll_add(m->epoll_.get(), m->listener_.get(), EPOLLIN, kListenerToken));
  FORKVM_CHECK(epoll_add(m->epoll_.get(), m->timer_.get(), EPOLLIN, kTimerToken));
  FORKVM_CHECK(epoll_add(m->epoll_.get(), m->kick_.get(), EPOLLIN, kKickToken));
  return m;
}

Muxer::~Muxer() {
  if (listener_.valid()) ::unlink(path_.c_str());
}

void Muxer::kick() {
  const uint64_t one = 1;
  (void)!::write(kick_.get(), &one, sizeof one);
}

void Muxer::set_active(bool active) {
  active_ = active;
  if (!active) close_all();
}

void Muxer::close_all() {
  // The guest keeps a socket its driver reset (a transport reset, or the
  // device's) until its owner closes it, and answers a packet for that address
  // pair with RST: the first host connects after a restore, reusing the ports
  // the snapshot's connections had, met "nothing listening". Ports are not
  // reused across a reset: the next ones start at a random point.
  next_host_port_ = random_host_port();
  conns_.clear();  // closing an fd also takes it out of the epoll set
  by_ports_.clear();
  ready_.clear();
  queued_.clear();
  control_.clear();
  stray_ = 0;
  timer_dirty_ = true;
  rearm_timer();
}

bool Muxer::process_host_events() {
  bool kicked = false;
  epoll_event evs[32];
  // Bounded: every event below is consumed or its interest dropped, so the
  // set drains; the cap only guards against a host flooding connects.
  for (int round = 0; round < 16; ++round) {
    const int n = ::epoll_wait(epoll_.get(), evs, 32, 0);
    if (n <= 0) break;
    for (int i = 0; i < n; ++i) {
      const uint64_t token = evs[i].data.u64;
      const uint64_t id = token & kIdMask;
      switch (token >> kKindShift) {
        case kListenerToken >> kKindShift:
          accept_host();
          break;
        case kTimerToken >> kKindShift: {
          uint64_t v;
          (void)!::read(timer_.get(), &v, sizeof v);
          expire_deadlines();
          break;
        }
        case kKickToken >> kKindShift: {
          uint64_t v;
          (void)!::read(kick_.get(), &v, sizeof v);
          kicked = true;
          break;
        }
        case kPendingKind:
          read_connect_line(id);
          break;
        case kConnKind:
          on_connection_event(id, evs[i].events);
          break;
        default:
          break;
      }
    }
  }
  rearm_timer();
  return kicked;
}

void Muxer::accept_host() {
  for (;;) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        log_once(g_logged_accept, "vsock: accept on {}: {}", path_, std::strerror(errno));
      }
      return;
    }
    if (pending_.size() >= kMaxPendingHost) continue;  // closes it: too many half-open
    const uint64_t id = next_id_++;
    if (!epoll_add(epoll_.get(), fd.get(), EPOLLIN, (kPendingKind << kKindShift) | id).ok()) continue;
    pending_.emplace(id, PendingHost{std::move(fd), {}, Connection::Clock::now() + kConnectLineTimeout});
    timer_dirty_ = true;
  }
}

void Muxer::read_connect_line(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  PendingHost& p = it->second;
  // A byte at a time: whatever follows the newline is stream data for the guest.
  for (;;) {
    char ch;
    const ssize_t n = ::recv(p.fd.get(), &ch, 1, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed or failed before a full line
    if (ch == '\n') {
      const auto port = parse_connect(p.line);
      UniqueFd fd = std::move(p.fd);
      pending_.erase(it);
      timer_dirty_ = true;
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd.get(), nullptr);
      if (!port) {
        log_once(g_logged_refused, "vsock: host sent a malformed CONNECT line; closed");
      } else if (!active_) {
        // Host-initiated, so bounded by the host: each refusal is worth a line.
        log(LogLevel::info,
            "vsock: host connect to port {} refused: the driver has not taken the "
            "transport reset yet (or is not running)",
            *port);
      } else if (conns_.size() >= kMaxConnections) {
        log(LogLevel::warn, "vsock: host connect to port {} refused: {} connections open", *port,
            conns_.size());
      } else {
        start_host_connection(std::move(fd), *port);
      }
      return;  // refusal: fd closes here
    }
    p.line.push_back(ch);
    if (p.line.size() > kMaxConnectLine) break;
  }
  pending_.erase(it);  // closes the socket
  timer_dirty_ = true;
}

void Muxer::start_host_connection(UniqueFd fd, uint32_t guest_port) {
  // A free local port from 2^30 up; the pair (host, guest) must be unused.
  uint32_t host_port = next_host_port_;
  for (size_t tries = 0; by_ports_.contains({host_port, guest_port}); ++tries) {
    if (tries > kMaxConnections) return;
    host_port = host_port == UINT32_MAX ? kFirstHostPort : host_port + 1;
  }
  next_host_port_ = host_port == UINT32_MAX ? kFirstHostPort : host_port + 1;
  auto c = std::make_unique<Connection>(std::move(fd), host_port, guest_port, Connection::State::connecting);
  c->request_owed = true;
  Connection* conn = add_connection(std::move(c));
  set_deadline(*conn, Connection::Clock::now() + kConnectTimeout);
  mark_ready(*conn);
}

void Muxer::guest_connect(const Header& h) {
  if (!active_ || conns_.size() >= kMaxConnections) return reply_reset(h);
  const std::string path = fmt::format("{}_{}", path_, h.dst_port);
  auto addr = unix_address(path, "vsock socket");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  // A Unix stream connect completes at once or fails (EAGAIN: backlog full).
  if (!addr.ok() || !fd.valid() ||
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0) {
    return reply_reset(h);
  }
  auto c =
      std::make_unique<Connection>(std::move(fd), h.dst_port, h.src_port, Connection::State::established);
  c->update_peer(h.buf_alloc, h.fwd_cnt);
  c->response_owed = true;
  Connection* conn = add_connection(std::move(c));
  mark_ready(*conn);
  update_interest(*conn);
}

Connection* Muxer::add_connection(std::unique_ptr<Connection> c) {
  c->id = next_id_++;
  Connection* raw = c.get();
  by_ports_[{c->host_port(), c->guest_port()}] = c->id;
  conns_.emplace(c->id, std::move(c));
  return raw;
}

Connection* Muxer::find(uint64_t id) {
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.get();
}

void Muxer::remove(Connection& c) {
  if (c.deadline) timer_dirty_ = true;
  by_ports_.erase({c.host_port(), c.guest_port()});
  queued_.erase(c.id);  // a stale id left in ready_ is skipped
  conns_.erase(c.id);   // closes the host socket, which also leaves the epoll set
}

void Muxer::update_interest(Connection& c) {
  uint32_t want = 0;
  if (!c.host_readable && c.may_read_host()) want |= EPOLLIN;
  if (c.buffered() > 0) want |= EPOLLOUT;
  if (want == c.epoll_mask) return;
  epoll_event ev{};
  ev.events = want;
  ev.data.u64 = (kConnKind << kKindShift) | c.id;
  const int op = want == 0 ? EPOLL_CTL_DEL : c.epoll_mask == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  if (::epoll_ctl(epoll_.get(), op, c.fd(), &ev) != 0) {
    log(LogLevel::warn, "vsock: epoll_ctl for port {}: {}", c.host_port(), std::strerror(errno));
    return reset(c);
  }
  c.epoll_mask = want;
}

void Muxer::set_deadline(Connection& c, std::optional<Connection::Clock::time_point> when) {
  c.deadline = when;
  timer_dirty_ = true;
}

void Muxer::expire_deadlines() {
  const auto now = Connection::Clock::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    it = it->second.deadline <= now ? pending_.erase(it) : std::next(it);
  }
  std::vector<uint64_t> expired;
  for (auto& [id, c] : conns_) {
    if (c->deadline && *c->deadline <= now) expired.push_back(id);
  }
  // A connect the guest never answered, or a close that did not finish in time.
  for (uint64_t id : expired) {
    Connection* c = find(id);
    if (c == nullptr) continue;
    if (c->state() == Connection::State::connecting) {
      log(LogLevel::info, "vsock: the guest did not answer a host connect to port {} in {} s",
          c->guest_port(), std::chrono::duration_cast<std::chrono::seconds>(kConnectTimeout).count());
    }
    reset(*c);
  }
  timer_dirty_ = true;
}

void Muxer::rearm_timer() {
  if (!timer_dirty_) return;
  timer_dirty_ = false;
  std::optional<Connection::Clock::time_point> first;
  auto consider = [&](Connection::Clock::time_point t) {
    if (!first || t < *first) first = t;
  };
  for (auto& [id, p] : pending_) consider(p.deadline);
  for (auto& [id, c] : conns_) {
    if (c->deadline) consider(*c->deadline);
  }
  itimerspec spec{};
  if (first) {
    const auto left = std::max<Connection::Clock::duration>(*first - Connection::Clock::now(),
                                                            std::chrono::milliseconds(1));
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  }
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);  // all zero disarms
}

}  // namespace forkvm::virtio::vsock
