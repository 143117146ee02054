// The agent side of one connection. Frames from the host are validated for
// direction as well as shape: the agent accepts hello, request, cancel and
// input data only.
#include "guestinit/connection.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "guestinit/handlers.hpp"
#include "guestinit/json.hpp"
#include "guestinit/stream.hpp"

namespace forkvm::agent {
namespace {

std::string hello_payload() {
  JsonWriter w;
  w.begin_object().key("protocol").begin_object();
  w.field("major", static_cast<int>(kProtocolMajor))
      .field("minor", static_cast<int>(kProtocolMinor))
      .end_object();
  w.field("agent", "forkvm-agent").field("version", kAgentVersion).end_object();
  return w.take();
}

}  // namespace

bool Connection::send(FrameType type, uint32_t stream, uint16_t flags, std::string_view payload) {
  std::string buf;
  if (!append_frame(buf, type, stream, flags, payload).ok()) return false;
  std::lock_guard lk(write_mu_);
  if (write_failed_) return false;
  size_t off = 0;
  while (off < buf.size()) {
    ssize_t n = ::send(fd_.get(), buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_failed_ = true;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void Connection::run() {
  FrameDecoder dec;
  char buf[64 * 1024];
  bool ok = true;
  while (ok) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    dec.feed(std::string_view(buf, static_cast<size_t>(n)));
    while (ok) {
      auto f = dec.next();
      if (!f.ok()) {
        // Best effort: tell the host why before hanging up.
        JsonWriter w;
        w.begin_object().field("code", code::kProtocolError).field("message", f.error().message).end_object();
        send(FrameType::Hello, 0, 0, w.view());
        ok = false;
        break;
      }
      if (!f->has_value()) break;
      ok = handle(std::move(**f));
    }
  }
  // The host is gone (or broke the protocol): nobody can read the output of
  // running streams, so stop them; their threads release this connection.
  std::lock_guard lk(streams_mu_);
  for (auto& [id, s] : streams_) s->cancel();
  ::shutdown(fd_.get(), SHUT_RDWR);
}

bool Connection::handle(Frame f) {
  if (!hello_done_) {
    if (f.type != FrameType::Hello) return false;
    auto doc = parse_object(f.payload);
    int64_t major = doc.ok() ? [&] {
      const JsonValue* p = member(*doc, "protocol");
      return p != nullptr ? i64_or(*p, "major", -1) : -1;
    }() : -1;
    if (major != kProtocolMajor) {
      JsonWriter w;
      w.begin_object().field("code", code::kVersionMismatch);
      w.field("message", fmt::format("agent speaks protocol {}.{}, host sent major {}", kProtocolMajor,
                                     kProtocolMinor, major));
      w.key("protocol").begin_object().field("major", static_cast<int>(kProtocolMajor));
      w.field("minor", static_cast<int>(kProtocolMinor)).end_object().end_object();
      send(FrameType::Hello, 0, 0, w.view());
      return false;
    }
    hello_done_ = true;
    return send(FrameType::Hello, 0, 0, hello_payload());
  }
  switch (f.type) {
    case FrameType::Request: {
      std::lock_guard lk(streams_mu_);
      // Reusing a live stream id is a host bug; refuse rather than mix output.
      if (streams_.count(f.stream) != 0) return false;
      start_request(f.stream, std::move(f.payload));
      return true;
    }
    case FrameType::Cancel:
    case FrameType::Data: {
      std::shared_ptr<Stream> s;
      {
        std::lock_guard lk(streams_mu_);
        auto it = streams_.find(f.stream);
        // Late frames for a stream that already ended are normal races
        // (cancel after completion, upload after an error): drop them.
        if (it == streams_.end()) return true;
        s = it->second;
      }
      if (f.type == FrameType::Cancel) {
        s->cancel();
      } else {
        if (f.channel() != Channel::Input) return false;
        s->push_input(std::move(f.payload), f.eof());
      }
      return true;
    }
    default:
      return false;  // hello twice, or agent-only frame types
  }
}

void Connection::start_request(uint32_t id, std::string payload) {
  auto s = std::make_shared<Stream>(shared_from_this(), id);
  streams_[id] = s;
  std::thread([s, payload = std::move(payload)] {
    auto doc = parse_object(payload);
    if (!doc.ok()) {
      s->end_error(code::kBadRequest, doc.error().message);
    } else {
      dispatch(*s, *doc);
      if (!s->ended()) s->end_error(code::kInternal, "handler ended without a result");
    }
    // Wakes a reader blocked in push_input on this stream's full queue: input
    // the handler no longer wants must not stall the whole connection.
    s->cancel();
    std::shared_ptr<Connection> c = s->connection();
    c->stream_done(s->id());
  }).detach();
}

void Connection::stream_done(uint32_t id) {
  std::lock_guard lk(streams_mu_);
  streams_.erase(id);
}

}  // namespace forkvm::agent
