// The HTTP/1.1 front end of `forkvm serve`. See server.cpp for the design
// (and the measurements behind the choice of I/O backend).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "api/http/message.hpp"
#include "vmm/result.hpp"

namespace forkvm::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0: pick a free port (tests)
  // A request's header must arrive within this, counted from the moment the
  // server starts waiting (so it is also the keep-alive idle limit).
  std::chrono::milliseconds header_timeout{30000};
  std::chrono::milliseconds body_timeout{120000};
  std::chrono::milliseconds write_timeout{60000};
  std::chrono::milliseconds shutdown_grace{10000};
  size_t max_connections = 1024;
  size_t max_workers = 128;
  uint32_t header_limit = 16 * 1024;
  bool handle_signals = true;  // SIGINT/SIGTERM start a graceful shutdown
};

class HttpServer {
 public:
  // Binds and listens; requests go to `handler`, which must outlive the server.
  static Result<std::unique_ptr<HttpServer>> create(const HttpServerOptions& options, HttpHandler& handler);
  virtual ~HttpServer() = default;

  [[nodiscard]] virtual uint16_t port() const = 0;
  [[nodiscard]] virtual const char* backend() const = 0;  // "io_uring" or "epoll"
  // Serves until a signal or stop(), then shuts down gracefully: stop
  // accepting, finish in-flight requests, end streams. false when handlers
  // were still running after the grace period.
  virtual bool run() = 0;
  // Thread-safe.
  virtual void stop() = 0;
};

}  // namespace forkvm::api
