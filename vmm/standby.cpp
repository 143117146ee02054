#include "vmm/standby.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "vmm/unix_socket.hpp"

namespace forkvm::standby {
namespace {

constexpr size_t kMaxRequest = size_t{64} << 10;
constexpr size_t kMaxAnswer = 4096;
constexpr std::string_view kWhat = "standby socket";

int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

// Everything the peer sends until it ends the stream, within `limit` and `max` bytes.
Result<std::string> read_to_end(int fd, std::chrono::milliseconds limit, size_t max,
                                const std::string& path) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  std::string data;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, remaining_ms(deadline));
    if (pr < 0 && errno == EINTR) continue;
    if (pr < 0) return errno_error(fmt::format("poll {} {}", kWhat, path));
    if (pr == 0) return make_error("{} {}: nothing complete within {} ms", kWhat, path, limit.count());
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("read {} {}", kWhat, path));
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    if (data.size() > max) return make_error("{} {}: more than {} bytes", kWhat, path, max);
  }
}

Status send_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("send to {} {}", kWhat, path));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

}  // namespace

Result<Claim> await_claim(const std::string& path, std::chrono::milliseconds request_limit) {
  const std::string temp = path + ".new";
  const sockaddr_un addr = FORKVM_TRY(unix_address(temp, kWhat));
  (void)FORKVM_TRY(unix_address(path, kWhat));
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return errno_error("socket for the standby socket");
  ::unlink(temp.c_str());
  if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    return errno_error(fmt::format("bind {} {}", kWhat, temp));
  ::chmod(temp.c_str(), 0600);  // a claim runs a VM: the server's alone
  if (::listen(listener.get(), 1) != 0) return errno_error(fmt::format("listen on {} {}", kWhat, temp));
  if (::rename(temp.c_str(), path.c_str()) != 0)
    return errno_error(fmt::format("rename {} to {}", temp, path));
  int fd = -1;
  while ((fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC)) < 0 && errno == EINTR) {
  }
  const int accept_errno = errno;
  ::unlink(path.c_str());  // one claim only
  if (fd < 0) return errno_error(fmt::format("accept on {} {}", kWhat, path), accept_errno);
  Claim claim{UniqueFd(fd), {}, {}};
  const std::string request = FORKVM_TRY(read_to_end(fd, request_limit, kMaxRequest, path));
  if (request.empty() || request.back() != '\0')
    return make_error("{} {}: a claim must end with a NUL", kWhat, path);
  std::vector<std::string> fields;
  for (size_t at = 0; at < request.size();) {
    const size_t end = request.find('\0', at);
    fields.emplace_back(request, at, end - at);
    at = end + 1;
  }
  claim.log_path = fields.front();
  claim.restore_args.assign(fields.begin() + 1, fields.end());
  return claim;
}

void answer(UniqueFd connection, const Status& restored, double ms) {
  std::string line = restored.ok() ? fmt::format("ok {:.3f}\n", ms) : "error " + restored.error().message;
  if (!restored.ok()) {
    for (char& c : line) c = c == '\n' ? ' ' : c;
    line += '\n';
  }
  (void)send_all(connection.get(), line, "(answer)");
}

Result<double> claim(const std::string& path, const std::string& log_path,
                     const std::vector<std::string>& restore_args, std::chrono::milliseconds limit) {
  UniqueFd fd = FORKVM_TRY(connect_unix(path, kWhat));
  std::string request = log_path + '\0';
  for (const auto& a : restore_args) {
    if (a.find('\0') != std::string::npos) return make_error("{} {}: an argument holds a NUL", kWhat, path);
    request += a + '\0';
  }
  if (request.size() > kMaxRequest)
    return make_error("{} {}: a claim of more than {} bytes", kWhat, path, kMaxRequest);
  FORKVM_CHECK(send_all(fd.get(), request, path));
  if (::shutdown(fd.get(), SHUT_WR) != 0) return errno_error(fmt::format("shutdown {} {}", kWhat, path));
  std::string line = FORKVM_TRY(read_to_end(fd.get(), limit, kMaxAnswer, path));
  if (!line.empty() && line.back() == '\n') line.pop_back();
  if (line.starts_with("ok ")) return std::strtod(line.c_str() + 3, nullptr);
  if (line.starts_with("error ")) return make_error("the standby VMM could not restore: {}", line.substr(6));
  return make_error("{} {}: the standby VMM ended without an answer{}", kWhat, path,
                    line.empty() ? "" : fmt::format(" ('{}')", line));
}

}  // namespace forkvm::standby
