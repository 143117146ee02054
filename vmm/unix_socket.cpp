#include "vmm/unix_socket.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cstring>

namespace forkvm {

Result<sockaddr_un> unix_address(const std::string& path, std::string_view what) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return make_error("{} path '{}' is empty or longer than {} bytes", what, path, sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> connect_unix(const std::string& path, std::string_view what) {
  const sockaddr_un addr = FORKVM_TRY(unix_address(path, what));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error(fmt::format("socket for {}", what));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    return errno_error(fmt::format("connect to {} {}", what, path));
  }
  return fd;
}

}  // namespace forkvm
