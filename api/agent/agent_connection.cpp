// Transport and stream engine of the host-side agent client.
#include "api/agent/agent_connection.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace forkvm::agent {
namespace {

constexpr size_t kOutboxHighWater = 256 * 1024;
constexpr int64_t kCancelGraceMs = 5000;

Error coded(std::string_view code, std::string_view msg) { return make_error("{}: {}", code, msg); }

}  // namespace

int64_t mono_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string_view agent_error_code(const Error& e) {
  std::string_view m = e.message;
  size_t p = m.find(": ");
  if (p == std::string_view::npos || p == 0) return {};
  std::string_view c = m.substr(0, p);
  bool ok = std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'A' && ch <= 'Z') || ch == '_' || (ch >= '0' && ch <= '9');
  });
  return ok ? c : std::string_view{};
}

Result<AgentConnection> AgentConnection::open(const ClientOptions& o) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (o.socket_path.empty() || o.socket_path.size() >= sizeof addr.sun_path)
    return coded(kAgentUnavailable, fmt::format("bad agent socket path '{}'", o.socket_path));
  std::memcpy(addr.sun_path, o.socket_path.data(), o.socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return coded(kAgentUnavailable, errno_error("socket").message);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EAGAIN && errno != EINPROGRESS)
      return coded(kAgentUnavailable, errno_error(fmt::format("connect {}", o.socket_path)).message);
    pollfd p{fd.get(), POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(o.connect_timeout_ms)) != 1)
      return coded(kAgentTimeout, fmt::format("connect {}: timed out", o.socket_path));
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0)
      return coded(kAgentUnavailable, errno_error(fmt::format("connect {}", o.socket_path), err).message);
  }
  AgentConnection c(std::move(fd));
  FORKVM_CHECK(c.handshake(o));
  return c;
}

Status AgentConnection::handshake(const ClientOptions& o) {
  int64_t deadline = mono_ms() + o.connect_timeout_ms;
  if (o.vsock_mux) {
    // The mux answers one line; it is read byte by byte so nothing of the
    // agent's stream that may follow is consumed here.
    outbox_ = fmt::format("CONNECT {}\n", o.port);
    std::string line;
    while (line.empty() || line.back() != '\n') {
      int64_t left = deadline - mono_ms();
      if (left <= 0) return coded(kAgentTimeout, "vsock mux handshake timed out");
      pollfd p{fd_.get(), static_cast<short>(outbox_.empty() ? POLLIN : POLLIN | POLLOUT), 0};
      if (::poll(&p, 1, static_cast<int>(left)) < 0 && errno != EINTR)
        return coded(kAgentUnavailable, "poll failed");
      if (!outbox_.empty() && (p.revents & POLLOUT)) {
        ssize_t n = ::send(fd_.get(), outbox_.data(), outbox_.size(), MSG_NOSIGNAL);
        if (n > 0) outbox_.erase(0, static_cast<size_t>(n));
      }
      if (p.revents & (POLLIN | POLLHUP)) {
        char ch;
        ssize_t n = ::read(fd_.get(), &ch, 1);
        if (n == 0)
          return coded(kAgentUnavailable, "vsock mux closed the connection (is the agent listening?)");
        if (n == 1) line.push_back(ch);
        if (line.size() > 128) return coded(kAgentProtocolError, "vsock mux reply too long");
      }
    }
    if (line.rfind("OK ", 0) != 0)
      return coded(kAgentUnavailable, fmt::format("vsock mux refused: {}", line.substr(0, line.size() - 1)));
  }
  FORKVM_CHECK(queue(FrameType::Hello, 0, 0,
                     fmt::format(R"({{"protocol":{{"major":{},"minor":{}}},"client":"forkvm-host"}})",
                                 kProtocolMajor, kProtocolMinor)));
  std::optional<Frame> got;
  while (!got) got = FORKVM_TRY(step(deadline));
  Frame& f = *got;
  if (f.type != FrameType::Hello) return coded(kAgentProtocolError, "agent did not answer hello");
  auto doc = parse_object(f.payload);
  if (!doc.ok()) return coded(kAgentProtocolError, fmt::format("agent hello: {}", doc.error().message));
  if (auto c = get_str(*doc, "code"))
    return coded(*c == code::kVersionMismatch ? *c : kAgentProtocolError,
                 str_or(*doc, "message").substr(0, 512));
  const JsonValue* p = member(*doc, "protocol");
  hello_.major = p != nullptr ? static_cast<int>(i64_or(*p, "major", -1)) : -1;
  hello_.minor = p != nullptr ? static_cast<int>(i64_or(*p, "minor", 0)) : 0;
  hello_.version = str_or(*doc, "version").substr(0, 64);
  if (hello_.major != kProtocolMajor)
    return coded(code::kVersionMismatch, fmt::format("agent speaks protocol major {}, this host speaks {}",
                                                     hello_.major, kProtocolMajor));
  return {};
}

Status AgentConnection::queue(FrameType t, uint32_t stream, uint16_t flags, std::string_view payload) {
  auto st = append_frame(outbox_, t, stream, flags, payload);
  if (!st.ok()) return coded(kAgentProtocolError, st.error().message);
  return {};
}

Result<std::optional<Frame>> AgentConnection::step(int64_t deadline) {
  auto f = dec_.next();
  if (!f.ok()) return coded(kAgentProtocolError, f.error().message);
  if (f->has_value()) return std::move(*f);
  int64_t now = mono_ms();
  if (deadline > 0 && now >= deadline) return coded(kAgentTimeout, "no answer from the agent in time");
  // Short waits so cancellation and input are attended to promptly.
  int64_t wait = deadline > 0 ? std::min<int64_t>(deadline - now, 100) : 100;
  pollfd p{fd_.get(), static_cast<short>(POLLIN | (outbox_.empty() ? 0 : POLLOUT)), 0};
  int rc = ::poll(&p, 1, static_cast<int>(wait));
  if (rc < 0 && errno != EINTR) return coded(kAgentUnavailable, errno_error("poll").message);
  if (rc <= 0) return std::optional<Frame>{};
  if (!outbox_.empty() && (p.revents & POLLOUT)) {
    ssize_t n = ::send(fd_.get(), outbox_.data(), outbox_.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
      return coded(kAgentUnavailable, errno_error("send").message);
    if (n > 0) outbox_.erase(0, static_cast<size_t>(n));
  }
  if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
    char buf[64 * 1024];
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return std::optional<Frame>{};
    if (n <= 0) return coded(kAgentUnavailable, "the agent closed the connection");
    dec_.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
  return std::optional<Frame>{};
}

Result<std::string> AgentConnection::run(std::string_view request_json, StreamHandlers& h) {
  uint32_t id = next_stream_++;
  FORKVM_CHECK(queue(FrameType::Request, id, 0, request_json));
  int64_t deadline = h.timeout_ms > 0 ? mono_ms() + h.timeout_ms : 0;
  bool input_done = !h.next_input;
  bool cancel_sent = false;
  uint64_t total = 0;
  auto send_cancel = [&]() -> Status {
    if (cancel_sent) return {};
    cancel_sent = true;
    // After a cancel the agent owes only its End; bound the wait for it.
    int64_t grace = mono_ms() + kCancelGraceMs;
    deadline = deadline > 0 ? std::min(deadline, grace) : grace;
    return queue(FrameType::Cancel, id, 0, {});
  };
  for (;;) {
    // Upload in pieces while there is room, so a large upload never sits
    // whole in memory and replies keep being read meanwhile.
    while (!input_done && !cancel_sent && outbox_.size() < kOutboxHighWater) {
      std::optional<std::string> chunk = h.next_input();
      if (!chunk) {
        FORKVM_CHECK(queue(FrameType::Data, id, static_cast<uint16_t>(Channel::Input) | kFlagEof, {}));
        input_done = true;
        break;
      }
      std::string_view rest = *chunk;
      while (!rest.empty()) {
        size_t n = std::min(rest.size(), kDataChunk);
        FORKVM_CHECK(queue(FrameType::Data, id, static_cast<uint16_t>(Channel::Input), rest.substr(0, n)));
        rest.remove_prefix(n);
      }
    }
    if (h.cancel != nullptr && h.cancel->load()) FORKVM_CHECK(send_cancel());
    std::optional<Frame> got = FORKVM_TRY(step(deadline));
    if (!got) continue;
    Frame& f = *got;
    total += f.payload.size();
    if (h.max_total_bytes > 0 && total > h.max_total_bytes)
      return coded(kAgentProtocolError, fmt::format("the agent sent more than {} bytes", h.max_total_bytes));
    // Only frames of the stream we opened, of the types an agent may send.
    if (f.stream != id)
      return coded(kAgentProtocolError,
                   fmt::format("frame for stream {} that this client did not open", f.stream));
    switch (f.type) {
      case FrameType::Event: {
        auto doc = parse_object(f.payload);
        if (!doc.ok()) return coded(kAgentProtocolError, fmt::format("event: {}", doc.error().message));
        if (h.on_event && !cancel_sent && !h.on_event(*doc)) FORKVM_CHECK(send_cancel());
        break;
      }
      case FrameType::Data:
        if (f.channel() == Channel::Input)
          return coded(kAgentProtocolError, "agent sent data on the input channel");
        if (h.on_data && !cancel_sent && !f.payload.empty() && !h.on_data(f.channel(), f.payload))
          FORKVM_CHECK(send_cancel());
        break;
      case FrameType::End: {
        auto doc = parse_object(f.payload);
        if (!doc.ok()) return coded(kAgentProtocolError, fmt::format("end: {}", doc.error().message));
        if (bool_or(*doc, "ok", false)) {
          const JsonValue* r = member(*doc, "result");
          if (r == nullptr || !r->IsObject()) return std::string("{}");
          rapidjson::StringBuffer sb;
          rapidjson::Writer<rapidjson::StringBuffer> w(sb);
          r->Accept(w);
          return std::string(sb.GetString(), sb.GetSize());
        }
        const JsonValue* e = member(*doc, "error");
        std::string c = e != nullptr ? str_or(*e, "code", "INTERNAL_ERROR") : "INTERNAL_ERROR";
        // The code is the agent's word: keep it only if it looks like one.
        bool valid = !c.empty() && c.size() <= 64 && std::all_of(c.begin(), c.end(), [](char ch) {
          return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
        });
        if (!valid) c = "INTERNAL_ERROR";
        return coded(c, e != nullptr ? str_or(*e, "message").substr(0, 4096) : "agent reported an error");
      }
      default:
        return coded(kAgentProtocolError,
                     fmt::format("unexpected frame type {} from the agent", static_cast<unsigned>(f.type)));
    }
  }
}

}  // namespace forkvm::agent
