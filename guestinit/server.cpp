// Listening and accepting.
#include "guestinit/server.hpp"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <thread>

#include "guestinit/connection.hpp"

namespace forkvm::agent {

Result<UniqueFd> listen_on(const std::string& spec) {
  if (spec.rfind("unix:", 0) == 0) {
    std::string path = spec.substr(5);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof addr.sun_path)
      return make_error("bad unix socket path '{}'", path);
    std::memcpy(addr.sun_path, path.data(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno_error("socket(AF_UNIX)");
    ::unlink(path.c_str());  // a stale socket from an earlier run
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return errno_error(fmt::format("bind {}", path));
    if (::listen(fd.get(), 64) != 0) return errno_error("listen");
    return fd;
  }
  if (spec.rfind("vsock:", 0) == 0) {
    unsigned port = 0;
    auto [p, ec] = std::from_chars(spec.data() + 6, spec.data() + spec.size(), port);
    if (ec != std::errc{} || p != spec.data() + spec.size())
      return make_error("bad vsock port in '{}'", spec);
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = port;
    UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return errno_error("socket(AF_VSOCK)");
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      return errno_error(fmt::format("bind vsock port {}", port));
    if (::listen(fd.get(), 64) != 0) return errno_error("listen");
    return fd;
  }
  return make_error("listen address '{}' is neither unix:PATH nor vsock:PORT", spec);
}

Status serve(UniqueFd listener) {
  for (;;) {
    int c = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      // Transient conditions (a peer that vanished, fd exhaustion) must not
      // take the agent down; back off briefly on resource errors.
      if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        ::usleep(100000);
        continue;
      }
      return errno_error("accept");
    }
    auto conn = std::make_shared<Connection>(UniqueFd(c));
    std::thread([conn] { conn->run(); }).detach();
  }
}

}  // namespace forkvm::agent
