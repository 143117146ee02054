// Protocol checks over raw sockets: several streams on one connection,
// a version mismatch, garbage, and the agent surviving all of it.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "guestinit/protocol.hpp"
#include "tests/integration/agent_host_checks.hpp"
#include "vmm/unique_fd.hpp"

using namespace forkvm::agent;

namespace agent_test {
namespace {

forkvm::UniqueFd dial(const std::string& path) {
  forkvm::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) fd.reset();
  return fd;
}

bool send_all(int fd, const std::string& b) {
  return ::send(fd, b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size());
}

std::string enc(FrameType t, uint32_t stream, uint16_t flags, std::string_view payload) {
  std::string out;
  if (!append_frame(out, t, stream, flags, payload).ok()) out.clear();
  return out;
}

// Reads frames until `until` returns true, EOF, or 10 s.
std::vector<Frame> read_frames(int fd, const std::function<bool(const Frame&)>& until, bool* eof = nullptr) {
  FrameDecoder d;
  std::vector<Frame> out;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  char buf[65536];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      if (eof != nullptr) *eof = true;
      return out;
    }
    d.feed(std::string_view(buf, static_cast<size_t>(n)));
    for (;;) {
      auto f = d.next();
      if (!f.ok() || !f->has_value()) break;
      out.push_back(**f);
      if (until(out.back())) return out;
    }
  }
  return out;
}

const std::string kHello = R"({"protocol":{"major":1,"minor":0}})";

}  // namespace

void run_protocol_checks(Context& c) {
  {
    auto fd = dial(c.agent_socket);
    send_all(fd.get(), enc(FrameType::Hello, 0, 0, kHello));
    send_all(fd.get(), enc(FrameType::Request, 1, 0, R"({"op":"exec","command":"sleep 5; echo slow"})"));
    send_all(fd.get(), enc(FrameType::Request, 3, 0, R"({"op":"exec","command":"echo fast"})"));
    send_all(fd.get(), enc(FrameType::Request, 5, 0, R"({"op":"no.such.op"})"));
    std::vector<uint32_t> ends;
    auto frames = read_frames(fd.get(), [&](const Frame& f) {
      if (f.type == FrameType::End) ends.push_back(f.stream);
      return ends.size() == 3;
    });
    bool ok = ends.size() == 3 && ends.back() == 1;
    std::string fast_out;
    for (const auto& f : frames)
      if (f.type == FrameType::Data && f.stream == 3) fast_out += f.payload;
    check("concurrent streams on one connection finish independently", ok && fast_out == "fast\n",
          fmt::format("ends={} last={} fast='{}'", ends.size(), ends.empty() ? 0 : ends.back(), fast_out));
    bool unknown = false;
    for (const auto& f : frames)
      if (f.type == FrameType::End && f.stream == 5)
        unknown = f.payload.find("UNKNOWN_OP") != std::string::npos;
    check("unknown op gives UNKNOWN_OP", unknown, "no UNKNOWN_OP end");
  }
  {
    auto fd = dial(c.agent_socket);
    send_all(fd.get(), enc(FrameType::Hello, 0, 0, R"({"protocol":{"major":2,"minor":0}})"));
    bool eof = false;
    auto frames = read_frames(
        fd.get(), [](const Frame&) { return false; }, &eof);
    check(
        "mismatched protocol major is refused",
        eof && frames.size() == 1 && frames[0].payload.find("PROTOCOL_VERSION_MISMATCH") != std::string::npos,
        fmt::format("frames={} eof={}", frames.size(), eof));
  }
  {
    auto fd = dial(c.agent_socket);
    send_all(fd.get(), "GET / HTTP/1.1\r\nHost: agent\r\n\r\n");
    bool eof = false;
    read_frames(
        fd.get(), [](const Frame&) { return false; }, &eof);
    check("garbage before hello closes the connection", eof, "still open");
  }
  {
    auto fd = dial(c.agent_socket);
    send_all(fd.get(), enc(FrameType::Hello, 0, 0, kHello));
    // A header announcing more than the cap: the agent must hang up, not allocate.
    std::string h = enc(FrameType::Event, 1, 0, "");
    uint32_t big = kMaxPayload + 1;
    for (int i = 0; i < 4; ++i) h[4 + static_cast<size_t>(i)] = static_cast<char>((big >> (8 * i)) & 0xff);
    send_all(fd.get(), h);
    bool eof = false;
    read_frames(
        fd.get(), [](const Frame&) { return false; }, &eof);
    check("oversized frame length closes the connection", eof, "still open");
  }
  {
    auto r = c.client.exec({.command = "echo still-alive"});
    check("agent still serves after protocol abuse", r.ok() && r->stdout_data == "still-alive\n",
          r.ok() ? r->stdout_data : err_or(r.error()));
  }
}

// The identity op reseeds, steps the clock and renames the machine it runs
// on, here this host: only refusals are checked, and each request is wrong
// in a second way too (the agent checks seed, then time, then hostname),
// so even a broken check cannot let one through.
void run_identity_refusal_checks(Context& c) {
  auto refused = [](const forkvm::Result<std::string>& r, std::string_view want) {
    return !r.ok() && agent_error_code(r.error()) == code::kBadRequest &&
           r.error().message.find(want) != std::string::npos;
  };
  auto why = [](const forkvm::Result<std::string>& r) {
    return r.ok() ? "accepted: " + *r : r.error().message;
  };
  {
    auto h = c.client.hello();
    check("hello announces the identity op's minor", h.ok() && h->minor >= 1,
          h.ok() ? fmt::format("minor {}", h->minor) : err_or(h.error()));
  }
  {
    auto r = c.client.identity({.seed = "12345678", .unix_time_ns = 1, .hostname = "bad_name"});
    bool ok = !r.ok() && agent_error_code(r.error()) == code::kBadRequest &&
              r.error().message.find("seed has 8 bytes") != std::string::npos;
    check("identity refuses a short seed", ok, r.ok() ? "accepted" : err_or(r.error()));
  }
  StreamHandlers h;
  {
    auto r = c.client.call(
        R"({"op":"identity","seed":"not hex at all, but long enough to pass a length check"})", h);
    check("identity refuses a seed that is not hex", refused(r, "not hex"), why(r));
  }
  {
    auto r = c.client.call(
        R"({"op":"identity","seed":"00112233445566778899aabbccddeeff","unixTimeNs":1700000000000,"hostname":"bad_name"})",
        h);
    check("identity refuses a time in milliseconds", refused(r, "unixTimeNs 1700000000000"), why(r));
  }
}

}  // namespace agent_test
