// The HTTP server with a fake handler over real loopback sockets: NDJSON
// streaming (chunked, one flush per line, producer stopped when the client
// disconnects), the body limit, and stop().
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "api/http/server.hpp"

using namespace forkvm::api;
using namespace std::chrono_literals;

namespace {

class FakeHandler final : public HttpHandler {
 public:
  std::atomic<bool> producer_stopped{false};
  std::atomic<int> lines_sent{0};

  HttpReply handle(const HttpRequest& req) override {
    if (req.target == "/stream") {
      StreamResponse s;
      s.produce = [this](StreamSink& sink) {
        for (int i = 0; !sink.closed(); i++) {
          if (!sink.write("{\"n\":" + std::to_string(i) + "}\n")) break;
          lines_sent++;
          std::this_thread::sleep_for(10ms);
        }
        producer_stopped = true;
      };
      return s;
    }
    HttpResponse r;
    r.body = req.body;
    return r;
  }
  size_t body_limit(std::string_view, std::string_view) const override { return 1024; }
  HttpResponse error_response(int status, std::string_view code, std::string_view) const override {
    HttpResponse r;
    r.status = status;
    r.body = std::string(code);
    return r;
  }
};

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  return fd;
}

std::string read_until(int fd, const std::string& needle, std::chrono::milliseconds limit) {
  std::string got;
  auto end = std::chrono::steady_clock::now() + limit;
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (got.find(needle) == std::string::npos && std::chrono::steady_clock::now() < end) {
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n > 0) got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

}  // namespace

TEST_CASE("http server: streaming, disconnect, body limit, stop") {
  FakeHandler handler;
  HttpServerOptions o;
  o.port = 0;
  o.handle_signals = false;
  auto server = HttpServer::create(o, handler);
  REQUIRE(server.ok());
  uint16_t port = (*server)->port();
  std::thread io([&] { (*server)->run(); });

  int fd = connect_to(port);
  std::string req = "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  std::string got = read_until(fd, "{\"n\":2}\n", 3s);
  CHECK(got.find("HTTP/1.1 200") == 0);
  CHECK(got.find("Transfer-Encoding: chunked") != std::string::npos);
  CHECK(got.find("x-request-id: ri-") != std::string::npos);
  CHECK(got.find("{\"n\":0}\n") != std::string::npos);
  CHECK(got.find("{\"n\":2}\n") != std::string::npos);  // lines arrive while the stream is open
  ::close(fd);                                          // the client goes away
  for (int i = 0; i < 300 && !handler.producer_stopped; i++) std::this_thread::sleep_for(10ms);
  CHECK(handler.producer_stopped);

  fd = connect_to(port);
  req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n";
  REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  got = read_until(fd, "PAYLOAD_TOO_LARGE", 3s);
  CHECK(got.find("HTTP/1.1 413") == 0);
  ::close(fd);

  fd = connect_to(port);
  req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
  REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
  got = read_until(fd, "hello", 3s);
  CHECK(got.find("HTTP/1.1 200") == 0);
  ::close(fd);

  (*server)->stop();
  io.join();
}
