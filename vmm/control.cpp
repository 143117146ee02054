#include "vmm/control.hpp"

#include <poll.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "vmm/log.hpp"

namespace forkvm {
namespace {

// A request is one small JSON object; a longer line is not a client of ours.
constexpr size_t kMaxLine = 64 * 1024;
constexpr size_t kMaxConnections = 16;

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

std::string error_response(std::string_view message) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("ok");
  w.Bool(false);
  w.Key("error");
  w.String(message.data(), static_cast<rapidjson::SizeType>(message.size()));
  w.EndObject();
  return sb.GetString();
}

template <typename Fill>
std::string ok_response(Fill fill) {
  rapidjson::StringBuffer sb;
  JsonWriter w(sb);
  w.StartObject();
  w.Key("ok");
  w.Bool(true);
  fill(w);
  w.EndObject();
  return sb.GetString();
}

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return make_error("control socket path '{}' is empty or longer than {} bytes", path,
                      sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // Responses are a few hundred bytes; a client that does not read them
      // still gets a bounded wait, never a stuck event loop.
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 1000) <= 0) return;
      continue;
    }
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::create(EventLoop& loop, const std::string& path,
                                                             ControlTarget& target) {
  const sockaddr_un addr = FORKVM_TRY(socket_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("control socket");
  ::unlink(path.c_str());  // a stale socket from an earlier run
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return errno_error(fmt::format("bind control socket {}", path));
  }
  if (::listen(fd.get(), 8) != 0) return errno_error(fmt::format("listen on control socket {}", path));
  std::unique_ptr<ControlServer> server(new ControlServer(loop, path, std::move(fd), target));
  FORKVM_CHECK(loop.watch_readable(server->listener_.get(), [s = server.get()] { s->on_accept(); }));
  return server;
}

ControlServer::ControlServer(EventLoop& loop, std::string path, UniqueFd listener, ControlTarget& target)
    : loop_(loop), path_(std::move(path)), listener_(std::move(listener)), target_(target) {}

ControlServer::~ControlServer() {
  for (auto& [fd, conn] : connections_) loop_.unwatch(fd);
  loop_.unwatch(listener_.get());
  ::unlink(path_.c_str());
}

void ControlServer::on_accept() {
  for (;;) {
    const int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: all taken
    UniqueFd owned(fd);
    if (connections_.size() >= kMaxConnections) continue;  // closed: a client that leaks connections
    if (!loop_.watch_readable(fd, [this, fd] { on_readable(fd); }).ok()) continue;
    connections_.emplace(fd, Connection{std::move(owned), {}});
  }
}

void ControlServer::close_connection(int fd) {
  loop_.unwatch(fd);
  connections_.erase(fd);
}

void ControlServer::on_readable(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) return close_connection(fd);
    c.buffer.append(buf, static_cast<size_t>(n));
    if (c.buffer.size() > kMaxLine && c.buffer.find('\n') == std::string::npos) {
      send_all(fd, error_response("request line too long") + "\n");
      return close_connection(fd);
    }
  }
  size_t nl;
  while ((nl = c.buffer.find('\n')) != std::string::npos) {
    const std::string line = c.buffer.substr(0, nl);
    c.buffer.erase(0, nl + 1);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    bool stop_after = false;
    send_all(fd, handle(line, stop_after) + "\n");
    if (stop_after) {
      target_.control_stop();
      return;
    }
  }
}

std::string ControlServer::handle(std::string_view request, bool& stop_after) {
  stop_after = false;
  rapidjson::Document doc;
  doc.Parse(request.data(), request.size());
  if (doc.HasParseError() || !doc.IsObject()) return error_response("request is not a JSON object");
  if (!doc.HasMember("op") || !doc["op"].IsString()) return error_response("request has no \"op\" string");
  const std::string op = doc["op"].GetString();
  if (op == "status") {
    const ControlStatus s = target_.control_status();
    return ok_response([&](JsonWriter& w) {
      w.Key("state");
      w.String(s.paused ? "paused" : "running");
      w.Key("cpus");
      w.Uint(s.cpus);
      w.Key("mem_mib");
      w.Uint64(s.mem_mib);
      w.Key("restored");
      w.Bool(s.restored);
      if (s.vsock_cid) {
        w.Key("vsock_cid");
        w.Uint64(*s.vsock_cid);
      }
    });
  }
  if (op == "pause" || op == "resume") {
    const Status s = op == "pause" ? target_.control_pause() : target_.control_resume();
    if (!s.ok()) return error_response(s.error().message);
    return ok_response([&](JsonWriter& w) {
      w.Key("state");
      w.String(op == "pause" ? "paused" : "running");
    });
  }
  if (op == "snapshot") {
    if (!doc.HasMember("dir") || !doc["dir"].IsString() || doc["dir"].GetStringLength() == 0) {
      return error_response("snapshot needs \"dir\", a directory path");
    }
    bool stop = false;
    if (doc.HasMember("stop")) {
      if (!doc["stop"].IsBool()) return error_response("\"stop\" must be true or false");
      stop = doc["stop"].GetBool();
    }
    auto r = target_.control_snapshot(doc["dir"].GetString(), stop);
    if (!r.ok()) return error_response(r.error().message);
    stop_after = r->stopped;
    return ok_response([&](JsonWriter& w) {
      w.Key("dir");
      w.String(r->dir.c_str());
      w.Key("pause_ms");
      w.Double(r->pause_ms);
      w.Key("state_bytes");
      w.Uint64(r->state_bytes);
      w.Key("memory_file_bytes");
      w.Uint64(r->memory_file_bytes);
      w.Key("memory_data_bytes");
      w.Uint64(r->memory_data_bytes);
      w.Key("stopped");
      w.Bool(r->stopped);
    });
  }
  if (op == "fork") {
    if (!doc.HasMember("count") || !doc["count"].IsUint())
      return error_response("fork needs \"count\", 1..64");
    if (!doc.HasMember("prefix") || !doc["prefix"].IsString() || doc["prefix"].GetStringLength() == 0) {
      return error_response("fork needs \"prefix\", a path prefix for the children's sockets and consoles");
    }
    auto r = target_.control_fork(doc["count"].GetUint(), doc["prefix"].GetString());
    if (!r.ok()) return error_response(r.error().message);
    return ok_response([&](JsonWriter& w) {
      w.Key("pause_ms");
      w.Double(r->pause_ms);
      w.Key("children");
      w.StartArray();
      for (const auto& c : r->children) {
        w.StartObject();
        w.Key("pid");
        w.Int(c.pid);
        w.Key("control");
        w.String(c.control.c_str());
        w.Key("console");
        w.String(c.console.c_str());
        w.EndObject();
      }
      w.EndArray();
    });
  }
  if (op == "stop") {
    stop_after = true;
    return ok_response([](JsonWriter&) {});
  }
  return error_response(fmt::format("unknown op '{}' (status, pause, resume, snapshot, fork, stop)", op));
}

Result<std::string> control_request(const std::string& path, std::string_view request_json, int timeout_ms) {
  const sockaddr_un addr = FORKVM_TRY(socket_address(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return errno_error(fmt::format("connect to control socket {}", path));
  }
  std::string line(request_json);
  line += '\n';
  std::string_view out = line;
  while (!out.empty()) {
    const ssize_t n = ::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("send to control socket {}", path));
    out.remove_prefix(static_cast<size_t>(n));
  }
  std::string response;
  char buf[4096];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    const int pr = ::poll(&p, 1, timeout_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) return make_error("control socket {}: no response within {} ms", path, timeout_ms);
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("read from control socket {}", path));
    if (n == 0) return make_error("control socket {} closed without a response", path);
    response.append(buf, static_cast<size_t>(n));
    if (const size_t nl = response.find('\n'); nl != std::string::npos) return response.substr(0, nl);
    if (response.size() > kMaxLine) return make_error("control socket {}: response line too long", path);
  }
}

}  // namespace forkvm
