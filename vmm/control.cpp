#include "vmm/control.hpp"

#include <poll.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "vmm/log.hpp"
#include "vmm/unix_socket.hpp"

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
  const sockaddr_un addr = FORKVM_TRY(unix_address(path, "control socket"));
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
    connections_.emplace(fd, Connection{std::move(owned), {}, next_serial_++, false});
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
  process_lines(fd);
}

void ControlServer::process_lines(int fd) {
  for (;;) {
    auto it = connections_.find(fd);
    if (it == connections_.end() || it->second.waiting) return;
    Connection& c = it->second;
    const size_t nl = c.buffer.find('\n');
    if (nl == std::string::npos) return;
    const std::string line = c.buffer.substr(0, nl);
    c.buffer.erase(0, nl + 1);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    c.waiting = true;
    auto in_handle = std::make_shared<bool>(true);
    handle(line, [this, fd, serial = c.serial, in_handle](std::string response, bool stop_after) {
      auto conn = connections_.find(fd);
      if (conn == connections_.end() || conn->second.serial != serial) {
        if (stop_after) target_.control_stop();  // the client left; the stop still stands
        return;
      }
      send_all(fd, response + "\n");
      conn->second.waiting = false;
      if (stop_after) {
        target_.control_stop();
        return;
      }
      if (*in_handle) return;  // answered at once: the loop below goes on
      // A late answer: serve what the client sent meanwhile.
      loop_.post([this, fd] { process_lines(fd); });
    });
    *in_handle = false;
    // Not answered yet: the reply comes later on this loop.
    if (connections_.count(fd) == 0 || connections_.at(fd).waiting) return;
  }
}

namespace {

std::string snapshot_response(const SnapshotStats& r) {
  return ok_response([&](JsonWriter& w) {
    w.Key("dir");
    w.String(r.dir.c_str());
    w.Key("pause_ms");
    w.Double(r.pause_ms);
    w.Key("total_ms");
    w.Double(r.total_ms);
    w.Key("state_bytes");
    w.Uint64(r.state_bytes);
    w.Key("memory_file_bytes");
    w.Uint64(r.memory_file_bytes);
    w.Key("memory_data_bytes");
    w.Uint64(r.memory_data_bytes);
    w.Key("memory_delta");
    w.Bool(r.memory_delta);
    w.Key("disks");
    w.StartArray();
    for (const auto& d : r.disks) w.String(d.c_str());
    w.EndArray();
    w.Key("stopped");
    w.Bool(r.stopped);
  });
}

std::string fork_response(const ForkStats& r) {
  return ok_response([&](JsonWriter& w) {
    w.Key("pause_ms");
    w.Double(r.pause_ms);
    w.Key("save_ms");
    w.Double(r.save_ms);
    w.Key("freeze_ms");
    w.Double(r.freeze_ms);
    w.Key("fork_ms");
    w.Double(r.fork_ms);
    w.Key("children");
    w.StartArray();
    for (const auto& c : r.children) {
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

const char* string_member(const rapidjson::Value& v, const char* name) {
  if (!v.HasMember(name) || !v[name].IsString()) return nullptr;
  return v[name].GetString();
}

Result<ForkChildSpec> parse_fork_child(const rapidjson::Value& v) {
  if (!v.IsObject()) return make_error("each of \"children\" must be an object");
  ForkChildSpec c;
  for (const char* key : {"control", "console", "vsock", "log"}) {
    if (v.HasMember(key) && !v[key].IsString()) return make_error("child \"{}\" must be a string", key);
  }
  if (const char* s = string_member(v, "control")) c.control = s;
  if (c.control.empty()) return make_error("every child needs \"control\", its control socket path");
  if (const char* s = string_member(v, "console")) c.console = s;
  if (const char* s = string_member(v, "vsock")) c.vsock = s;
  if (const char* s = string_member(v, "log")) c.log = s;
  if (v.HasMember("cid")) {
    if (!v["cid"].IsUint()) return make_error("child \"cid\" must be an unsigned integer");
    c.vsock_cid = v["cid"].GetUint();
  }
  if (v.HasMember("net_slot")) {
    if (!v["net_slot"].IsUint()) return make_error("child \"net_slot\" must be an unsigned integer");
    c.net_slot = v["net_slot"].GetUint();
  }
  if (v.HasMember("disks")) {
    if (!v["disks"].IsArray()) return make_error("child \"disks\" must be an array of directories");
    for (const auto& d : v["disks"].GetArray()) {
      if (!d.IsString() || d.GetStringLength() == 0) return make_error("child \"disks\" must hold directory paths");
      c.disk_dirs.emplace_back(d.GetString());
    }
  }
  return c;
}

Result<GrowDiskRequest> parse_grow_disk(const rapidjson::Document& doc) {
  if (!doc.HasMember("disk") || !doc["disk"].IsUint())
    return make_error("grow-disk needs \"disk\", a disk index");
  if (!doc.HasMember("bytes") || !doc["bytes"].IsUint64() || doc["bytes"].GetUint64() == 0)
    return make_error("grow-disk needs \"bytes\", the disk's new size");
  return GrowDiskRequest{doc["disk"].GetUint(), doc["bytes"].GetUint64()};
}

Result<ForkRequest> parse_fork(const rapidjson::Document& doc) {
  ForkRequest r;
  if (doc.HasMember("children")) {
    if (!doc["children"].IsArray() || doc["children"].Empty()) return make_error("\"children\" must be a non-empty array");
    for (const auto& c : doc["children"].GetArray()) r.children.push_back(FORKVM_TRY(parse_fork_child(c)));
    r.count = static_cast<uint32_t>(r.children.size());
    return r;
  }
  if (!doc.HasMember("count") || !doc["count"].IsUint()) return make_error("fork needs \"count\", 1..64");
  const char* prefix = string_member(doc, "prefix");
  if (prefix == nullptr || *prefix == 0) {
    return make_error("fork needs \"prefix\", a path prefix for the children's sockets and consoles");
  }
  r.count = doc["count"].GetUint();
  r.prefix = prefix;
  return r;
}

}  // namespace

void ControlServer::handle(std::string_view request, Reply reply) {
  rapidjson::Document doc;
  doc.Parse(request.data(), request.size());
  if (doc.HasParseError() || !doc.IsObject()) return reply(error_response("request is not a JSON object"), false);
  const char* op_name = string_member(doc, "op");
  if (op_name == nullptr) return reply(error_response("request has no \"op\" string"), false);
  const std::string op = op_name;
  if (op == "status") {
    const ControlStatus s = target_.control_status();
    return reply(ok_response([&](JsonWriter& w) {
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
                 }),
                 false);
  }
  if (op == "pause" || op == "resume") {
    const Status s = op == "pause" ? target_.control_pause() : target_.control_resume();
    if (!s.ok()) return reply(error_response(s.error().message), false);
    return reply(ok_response([&](JsonWriter& w) {
                   w.Key("state");
                   w.String(op == "pause" ? "paused" : "running");
                 }),
                 false);
  }
  if (op == "snapshot") {
    const char* dir = string_member(doc, "dir");
    if (dir == nullptr || *dir == 0) return reply(error_response("snapshot needs \"dir\", a directory path"), false);
    SnapshotRequest req{dir, false};
    if (doc.HasMember("stop")) {
      if (!doc["stop"].IsBool()) return reply(error_response("\"stop\" must be true or false"), false);
      req.stop = doc["stop"].GetBool();
    }
    target_.control_snapshot(req, [reply](Result<SnapshotStats> r) {
      if (!r.ok()) return reply(error_response(r.error().message), false);
      reply(snapshot_response(*r), r->stopped);
    });
    return;
  }
  if (op == "fork") {
    auto req = parse_fork(doc);
    if (!req.ok()) return reply(error_response(req.error().message), false);
    auto r = target_.control_fork(*req);
    if (!r.ok()) return reply(error_response(r.error().message), false);
    return reply(fork_response(*r), false);
  }
  if (op == "grow-disk") {
    auto req = parse_grow_disk(doc);
    if (!req.ok()) return reply(error_response(req.error().message), false);
    if (auto s = target_.control_grow_disk(*req); !s.ok())
      return reply(error_response(s.error().message), false);
    return reply(ok_response([&](JsonWriter& w) {
                   w.Key("disk");
                   w.Uint(req->disk);
                   w.Key("bytes");
                   w.Uint64(req->bytes);
                 }),
                 false);
  }
  if (op == "stop") return reply(ok_response([](JsonWriter&) {}), true);
  reply(error_response(
            fmt::format("unknown op '{}' (status, pause, resume, snapshot, fork, grow-disk, stop)", op)),
        false);
}

Result<std::string> control_request(const std::string& path, std::string_view request_json, int timeout_ms) {
  UniqueFd fd = FORKVM_TRY(connect_unix(path, "control socket"));
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
