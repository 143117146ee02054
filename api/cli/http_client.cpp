// Beast serialises the request and parses the response; the socket is a
// plain blocking POSIX one behind a minimal SyncStream. No io_context: a
// one-shot client needs no event loop, and this way it runs where io_uring
// is not allowed (api/http/server.cpp picks Asio's io_uring backend).
//
// Asio's backend macros are set exactly as in api/http/server.cpp, so every
// translation unit of the binary sees one Asio configuration (no ODR mix).
#ifndef FORKVM_HTTP_EPOLL
#define BOOST_ASIO_HAS_IO_URING 1
#define BOOST_ASIO_DISABLE_EPOLL 1
#endif

#include "api/cli/http_client.hpp"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>

#include "vmm/unique_fd.hpp"

namespace forkvm::cli {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

namespace {

// File reads come back as base64 in JSON; the server takes files up to
// 64 MiB, so this leaves room.
constexpr uint64_t kMaxResponseBody = 256ULL << 20;

// Beast's SyncReadStream/SyncWriteStream over a connected socket. A receive
// or send timeout (SO_RCVTIMEO/SO_SNDTIMEO) shows up as beast::error::timeout.
class FdStream {
 public:
  explicit FdStream(int fd) : fd_(fd) {}

  template <class ConstBuffers>
  size_t write_some(const ConstBuffers& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      net::const_buffer b = *it;
      if (b.size() == 0) continue;
      ssize_t n;
      do n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n < 0) return fail(ec);
      return static_cast<size_t>(n);
    }
    return 0;
  }

  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers, beast::error_code& ec) {
    ec = {};
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      net::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      ssize_t n;
      do n = ::recv(fd_, b.data(), b.size(), 0);
      while (n < 0 && errno == EINTR);
      if (n < 0) return fail(ec);
      if (n == 0) ec = net::error::eof;
      return static_cast<size_t>(n);
    }
    return 0;
  }

  // The throwing forms complete the concepts; http_call uses the ones above.
  template <class ConstBuffers>
  size_t write_some(const ConstBuffers& buffers) {
    beast::error_code ec;
    size_t n = write_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }
  template <class MutableBuffers>
  size_t read_some(const MutableBuffers& buffers) {
    beast::error_code ec;
    size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  static size_t fail(beast::error_code& ec) {
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      ec = beast::error::timeout;
    else
      ec = beast::error_code(errno, boost::system::system_category());
    return 0;
  }

  int fd_;
};

Result<UniqueFd> connect_to(const ServerUrl& server, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = ::getaddrinfo(server.host.c_str(), server.port.c_str(), &hints, &found); rc != 0)
    return make_error("resolve {}: {}", server.host, ::gai_strerror(rc));
  std::string last = "no address";
  UniqueFd out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
    if (!fd.valid()) {
      last = std::strerror(errno);
      continue;
    }
    if (timeout.count() > 0) {
      // Per send/recv/connect, not for the whole exchange: a server that
      // keeps answering is never cut off, one that goes silent is.
      timeval tv{};
      tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
      tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (::connect(fd.get(), a->ai_addr, a->ai_addrlen) == 0) {
      out = std::move(fd);
      break;
    }
    last = std::strerror(errno);
  }
  ::freeaddrinfo(found);
  if (!out.valid()) return make_error("connect to {}:{}: {}", server.host, server.port, last);
  return out;
}

}  // namespace

Result<ServerUrl> parse_server_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind("https://", 0) == 0) return make_error("'{}': https is not supported, use http://", url);
  if (url.rfind(kScheme, 0) != 0) return make_error("'{}': the server URL must start with http://", url);
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos)
    return make_error("'{}': user info is not supported", url);
  if (path.find_first_of("?#") != std::string_view::npos)
    return make_error("'{}': the server URL takes no query or fragment", url);
  ServerUrl out;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return make_error("'{}': unclosed '[' in the host", url);
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return make_error("'{}': junk after the IPv6 host", url);
      port = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (out.host.empty()) return make_error("'{}': no host", url);
  if (port.empty()) {
    out.port = "80";
  } else {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535)
      return make_error("'{}': bad port '{}'", url, port);
    out.port = std::to_string(value);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  out.prefix = std::string(path);
  return out;
}

Result<HttpResponse> http_call(const ServerUrl& server, const HttpCall& call) {
  UniqueFd fd = FORKVM_TRY(connect_to(server, call.timeout));
  FdStream stream(fd.get());

  http::request<http::string_body> req;
  req.method_string(call.method);
  req.target(call.target);
  req.version(11);
  bool v6 = server.host.find(':') != std::string::npos;
  req.set(http::field::host, v6 ? fmt::format("[{}]:{}", server.host, server.port)
                                : fmt::format("{}:{}", server.host, server.port));
  req.set(http::field::user_agent, "forkvm-cli");
  req.set(http::field::connection, "close");
  if (!call.bearer.empty()) req.set(http::field::authorization, "Bearer " + call.bearer);
  if (call.body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *call.body;
  }
  req.prepare_payload();

  beast::error_code ec;
  http::write(stream, req, ec);
  if (ec) return make_error("{} {}: send: {}", call.method, call.target, ec.message());

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxResponseBody);
  http::read(stream, buffer, parser, ec);
  if (ec) return make_error("{} {}: read the answer: {}", call.method, call.target, ec.message());
  HttpResponse out;
  out.status = parser.get().result_int();
  out.body = std::move(parser.get().body());
  return out;
}

}  // namespace forkvm::cli
