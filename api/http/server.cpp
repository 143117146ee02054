// HTTP/1.1 server: Boost.Asio for sockets and timers, Boost.Beast for
// parsing and serialising. This is the only file that includes them.
//
// Backend choice (measured 2025 on Debian 12, Boost 1.81, liburing 2.3,
// kernel 6.18, see the API report): Debian's Boost headers do NOT enable
// Asio's io_uring backend by themselves; it is opt-in with
// BOOST_ASIO_HAS_IO_URING + BOOST_ASIO_DISABLE_EPOLL, which we set below for
// this translation unit only (no other file includes Asio, so there is no
// ODR mix). The architecture note reports Beast-on-both-ends failing with
// "bad target" over that backend on another machine. On this host a probe
// with Beast on both ends in one io_context (24-byte GET, the note's case;
// 1..200 connections, 1..500 requests each, 1 and 2 threads, ASan+UBSan,
// gcc and clang, 3 MB responses) passed every run on both backends, and
// this server's own load test (tests/integration/api_http_test) passes on
// both. io_uring is the default, as the design asks; building with
// -DFORKVM_HTTP_EPOLL selects epoll, and `forkvm serve` logs which one runs.
//
// Threads: one I/O thread runs the io_context; handlers run on WorkerPool
// threads (they may block on the engine) and post their reply back. One
// request at a time per connection: pipelined requests wait, parsed, in the
// read buffer, so responses always leave in request order.
#ifndef FORKVM_HTTP_EPOLL
#define BOOST_ASIO_HAS_IO_URING 1
#define BOOST_ASIO_DISABLE_EPOLL 1
#endif

#include "api/http/server.hpp"

#include <fcntl.h>

// GCC's -Wnull-dereference fires inside Asio's io_context after inlining
// into this file (the location is a Boost header, but middle-end warnings
// are not suppressed for system headers once inlined). Asio's pointers there
// are never null; the warning stays on for every other file.
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <map>

#include "api/http/stream_sink.hpp"
#include "api/http/worker_pool.hpp"
#include "api/models/ids.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

// Before the route is known, the parser may buffer up to the largest limit
// of any route; on_header() narrows it.
constexpr uint64_t kMaxBodyAnyRoute = 64ULL << 20;
// Handlers slower than this are logged: a stuck guest or VMM then shows
// in the server's log with the call that waited on it.
constexpr auto kSlowRequest = std::chrono::seconds(10);

void log_if_slow(const HttpRequest& request, const HttpReply& reply,
                 std::chrono::steady_clock::duration took) {
  if (took < kSlowRequest) return;
  const auto* r = std::get_if<HttpResponse>(&reply);
  const std::string_view target = request.target;
  log(LogLevel::info, "http: {} {} answered {} after {:.1f} s (request {})", request.method,
      target.substr(0, target.find('?')), r != nullptr ? std::to_string(r->status) : "a stream",
      std::chrono::duration<double>(took).count(), request.request_id);
}

class ServerImpl;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerImpl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) {}
  void start() { read_header(); }
  void shutdown();  // server is stopping
  void force_close() { close(); }

  // Streaming, called on the I/O thread by the sink.
  void pump();

 private:
  void read_header();
  void on_header(beast::error_code ec);
  void read_body();
  void on_body(beast::error_code ec);
  void dispatch(HttpRequest request);
  void on_reply(HttpReply reply);
  void send(HttpResponse response, bool close_after);
  void fail(int status, std::string_view code, std::string_view message);
  void start_stream(StreamResponse s);
  void watch_disconnect();
  void close();

  ServerImpl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::string request_id_;
  bool keep_alive_ = false;
  bool busy_ = false;  // a request is being handled or answered
  bool closed_ = false;
  // Streaming state.
  std::shared_ptr<StreamSinkImpl> sink_;
  http::response<http::empty_body> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  std::string chunk_;
  bool chunk_in_flight_ = false;
  bool stream_started_ = false;
  std::array<char, 512> discard_{};
};

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(const HttpServerOptions& o, HttpHandler& h)
      : options_(o),
        keep_alive_header_(
            fmt::format("timeout={}",
                        std::max<int64_t>(
                            1, std::chrono::duration_cast<std::chrono::seconds>(o.header_timeout).count()))),
        handler_(h),
        acceptor_(io_),
        signals_(io_),
        pool_(o.max_workers) {}

  Status listen() {
    beast::error_code ec;
    auto addr = asio::ip::make_address(options_.host, ec);
    if (ec) return make_error("listen address '{}': {}", options_.host, ec.message());
    tcp::endpoint ep(addr, options_.port);
    acceptor_.open(ep.protocol(), ec);
    // Asio opens sockets without CLOEXEC, and every VMM is forked from this
    // process and outlives it: an inherited listening socket would keep the
    // port bound (and connections queued on it unanswered) after a restart.
    if (!ec) ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return make_error("listen on {}:{}: {}", options_.host, options_.port, ec.message());
    port_ = acceptor_.local_endpoint().port();
    return {};
  }

  uint16_t port() const override { return port_; }
  const char* backend() const override {
#ifdef FORKVM_HTTP_EPOLL
    return "epoll";
#else
    return "io_uring";
#endif
  }

  bool run() override {
    if (options_.handle_signals) {
      signals_.add(SIGINT);
      signals_.add(SIGTERM);
      wait_signal();
    }
    accept();
    io_.run();
    // Handlers still running post to io_; they must finish before it goes.
    bool drained = pool_.drain(options_.shutdown_grace);
    if (!drained) log(LogLevel::warn, "http: handlers still running after the shutdown grace period");
    return drained;
  }

  void stop() override {
    asio::post(io_, [this] { begin_shutdown(); });
  }

  const HttpServerOptions& options() const { return options_; }
  // An idle connection is closed when the next request's header timeout runs
  // out; saying so lets a client (undici, the SDK's fetch) retire it first
  // instead of sending a request into the close.
  const std::string& keep_alive_header() const { return keep_alive_header_; }
  HttpHandler& handler() { return handler_; }
  WorkerPool& pool() { return pool_; }
  asio::io_context& io() { return io_; }
  bool stopping() const { return stopping_; }
  void forget(Connection* c) { connections_.erase(c); }

 private:
  void accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || stopping_) return;
      if (!ec) {
        if (connections_.size() >= options_.max_connections) {
          log_once(too_many_, "http: connection limit {} reached; refusing connections",
                   options_.max_connections);
          beast::error_code ignored;
          socket.close(ignored);
        } else {
          // Not inherited by VMMs forked later (see listen()). A fork in the
          // instant before this still takes a copy, kept by that VMM; only
          // closing every inherited descriptor in the spawned child closes that gap.
          ::fcntl(socket.native_handle(), F_SETFD, FD_CLOEXEC);
          auto c = std::make_shared<Connection>(*this, std::move(socket));
          connections_.emplace(c.get(), c);
          c->start();
        }
      }
      accept();
    });
  }

  void wait_signal() {
    signals_.async_wait([this](beast::error_code ec, int sig) {
      if (ec) return;
      if (stopping_) {
        log(LogLevel::warn, "http: second signal {}; closing all connections now", sig);
        force_stop();
        return;
      }
      log(LogLevel::info, "http: signal {}; shutting down gracefully", sig);
      begin_shutdown();
      wait_signal();
    });
  }

  void begin_shutdown() {
    if (stopping_) return;
    stopping_ = true;
    beast::error_code ignored;
    acceptor_.close(ignored);
    for (auto& [ptr, weak] : std::map(connections_))
      if (auto c = weak.lock()) c->shutdown();
    deadline_ = std::chrono::steady_clock::now() + options_.shutdown_grace;
    poll_shutdown();
  }

  void poll_shutdown() {
    if (connections_.empty()) return finish();
    if (std::chrono::steady_clock::now() >= deadline_) return force_stop();
    shutdown_timer_.expires_after(std::chrono::milliseconds(50));
    shutdown_timer_.async_wait([this](beast::error_code) { poll_shutdown(); });
  }

  void force_stop() {
    for (auto& [ptr, weak] : std::map(connections_))
      if (auto c = weak.lock()) c->force_close();
    finish();
  }

  void finish() {
    signals_.cancel();
    shutdown_timer_.cancel();
    io_.stop();
  }

  HttpServerOptions options_;
  std::string keep_alive_header_;  // "timeout=N": the header timeout, in seconds
  HttpHandler& handler_;
  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  asio::steady_timer shutdown_timer_{io_};
  std::chrono::steady_clock::time_point deadline_;
  WorkerPool pool_;
  uint16_t port_ = 0;
  bool stopping_ = false;
  std::atomic<bool> too_many_{false};
  std::map<Connection*, std::weak_ptr<Connection>> connections_;  // I/O thread only
};

void Connection::read_header() {
  if (server_.stopping()) return close();
  parser_.emplace();
  parser_->header_limit(server_.options().header_limit);
  // The real limit is set once the headers say which endpoint this is.
  parser_->body_limit(kMaxBodyAnyRoute);
  stream_.expires_after(server_.options().header_timeout);
  http::async_read_header(
      stream_, buffer_, *parser_,
      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_header(ec); });
}

void Connection::on_header(beast::error_code ec) {
  if (closed_) return;
  if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
      ec == asio::error::operation_aborted || ec == asio::error::eof || ec == asio::error::connection_reset)
    return close();
  request_id_ = new_request_id();
  if (ec == http::error::header_limit)
    return fail(431, "REQUEST_HEADER_FIELDS_TOO_LARGE", "request headers are too large");
  if (ec) return fail(400, "BAD_REQUEST", "malformed HTTP request: " + ec.message());
  auto& req = parser_->get();
  size_t limit = server_.handler().body_limit(req.method_string(), req.target());
  auto length = parser_->content_length();
  if (length && *length > limit)
    return fail(413, "PAYLOAD_TOO_LARGE",
                fmt::format("request body of {} bytes exceeds the limit of {}", *length, limit));
  parser_->body_limit(limit);
  if (parser_->is_done()) return read_body();
  if (beast::iequals(req[http::field::expect], "100-continue")) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(server_.options().write_timeout);
    asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](beast::error_code wec, std::size_t) {
                        if (wec) return self->close();
                        self->read_body();
                      });
    return;
  }
  read_body();
}

void Connection::read_body() {
  stream_.expires_after(server_.options().body_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_body(ec); });
}

void Connection::on_body(beast::error_code ec) {
  if (closed_) return;
  if (ec == http::error::body_limit) return fail(413, "PAYLOAD_TOO_LARGE", "request body exceeds the limit");
  if (ec == beast::error::timeout || ec == asio::error::operation_aborted) return close();
  if (ec) return fail(400, "BAD_REQUEST", "malformed HTTP request body: " + ec.message());
  auto msg = parser_->release();
  keep_alive_ = msg.keep_alive();
  HttpRequest request;
  request.method = std::string(msg.method_string());
  request.target = std::string(msg.target());
  for (const auto& f : msg) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    request.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  request.body = std::move(msg.body());
  request.request_id = request_id_;
  dispatch(std::move(request));
}

void Connection::dispatch(HttpRequest request) {
  busy_ = true;
  stream_.expires_never();  // handlers take as long as they take
  server_.pool().submit([self = shared_from_this(), request = std::move(request)]() mutable {
    HttpReply reply;
    const auto started = std::chrono::steady_clock::now();
    try {
      reply = self->server_.handler().handle(request);
    } catch (const std::exception& e) {
      // A handler bug must cost one request, not the server.
      log(LogLevel::error, "request {}: handler threw: {}", request.request_id, e.what());
      reply = self->server_.handler().error_response(500, "INTERNAL_ERROR",
                                                     "internal error (see the server log)");
    }
    log_if_slow(request, reply, std::chrono::steady_clock::now() - started);
    asio::post(self->stream_.get_executor(),
               [self, reply = std::move(reply)]() mutable { self->on_reply(std::move(reply)); });
  });
}

void Connection::on_reply(HttpReply reply) {
  if (closed_) return;
  if (auto* s = std::get_if<StreamResponse>(&reply)) return start_stream(std::move(*s));
  send(std::move(std::get<HttpResponse>(reply)), !keep_alive_ || server_.stopping());
}

void Connection::fail(int status, std::string_view code, std::string_view message) {
  // The request was not fully read, so the connection cannot be reused.
  send(server_.handler().error_response(status, code, message), true);
}

void Connection::send(HttpResponse r, bool close_after) {
  busy_ = true;
  response_ = {};
  response_.version(11);
  response_.result(static_cast<unsigned>(r.status));
  response_.set(http::field::server, "forkvm");
  response_.set(http::field::content_type, r.content_type);
  response_.set("x-request-id", request_id_);
  for (auto& [k, v] : r.headers) response_.set(k, v);
  response_.body() = std::move(r.body);
  response_.keep_alive(!close_after);
  if (!close_after) response_.set(http::field::keep_alive, server_.keep_alive_header());
  response_.prepare_payload();
  stream_.expires_after(server_.options().write_timeout);
  http::async_write(stream_, response_,
                    [self = shared_from_this(), close_after](beast::error_code ec, std::size_t) {
                      self->busy_ = false;
                      if (ec || close_after || self->server_.stopping()) {
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        return self->close();
                      }
                      self->read_header();
                    });
}

void Connection::start_stream(StreamResponse s) {
  sink_ = std::make_shared<StreamSinkImpl>(
      [weak = weak_from_this()] {
        if (auto c = weak.lock()) asio::post(c->stream_.get_executor(), [c] { c->pump(); });
      },
      server_.options().write_timeout);
  stream_header_ = {};
  stream_header_.version(11);
  stream_header_.result(static_cast<unsigned>(s.status));
  stream_header_.set(http::field::server, "forkvm");
  stream_header_.set(http::field::content_type, s.content_type);
  stream_header_.set(http::field::cache_control, "no-store");
  stream_header_.set("x-request-id", request_id_);
  stream_header_.keep_alive(false);  // the stream ends when either side closes
  stream_header_.chunked(true);
  stream_serializer_.emplace(stream_header_);
  stream_.expires_after(server_.options().write_timeout);
  http::async_write_header(stream_, *stream_serializer_,
                           [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             if (ec) {
                               self->sink_->client_gone();
                               return self->close();
                             }
                             self->stream_started_ = true;
                             self->watch_disconnect();
                             self->pump();
                           });
  server_.pool().submit([sink = sink_, produce = std::move(s.produce)] {
    try {
      produce(*sink);
    } catch (const std::exception& e) {
      log(LogLevel::error, "stream producer threw: {}", e.what());
    }
    sink->finish();
  });
}

void Connection::watch_disconnect() {
  // The client never sends anything on a stream it wants; a completed read is
  // either EOF/reset (it went away) or stray bytes, which are dropped.
  stream_.socket().async_read_some(asio::buffer(discard_),
                                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                     if (ec) {
                                       self->sink_->client_gone();
                                       self->pump();
                                       return;
                                     }
                                     self->watch_disconnect();
                                   });
}

void Connection::pump() {
  if (closed_ || !stream_started_ || chunk_in_flight_) return;
  // The producer holds only the sink, so the socket can go at once; it
  // notices closed() within one poll and ends.
  if (sink_->is_client_gone()) return close();
  auto [data, finished] = sink_->take();
  if (!data.empty()) {
    chunk_ = std::move(data);
    chunk_in_flight_ = true;
    stream_.expires_after(server_.options().write_timeout);
    asio::async_write(stream_, http::make_chunk(asio::buffer(chunk_)),
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        self->chunk_in_flight_ = false;
                        if (ec) {
                          self->sink_->client_gone();
                          return self->close();
                        }
                        self->sink_->written();
                        self->pump();
                      });
    return;
  }
  if (finished) {
    chunk_in_flight_ = true;
    asio::async_write(stream_, http::make_chunk_last(),
                      [self = shared_from_this()](beast::error_code, std::size_t) {
                        self->chunk_in_flight_ = false;
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        self->close();
                      });
  }
}

void Connection::shutdown() {
  if (sink_) sink_->close();
  // Idle connections (waiting for a header) go now; busy ones after their reply.
  if (!busy_ && !sink_) close();
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  if (sink_) sink_->close();
  beast::error_code ignored;
  stream_.socket().close(ignored);
  server_.forget(this);
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::create(const HttpServerOptions& options,
                                                       HttpHandler& handler) {
  auto server = std::make_unique<ServerImpl>(options, handler);
  FORKVM_CHECK(server->listen());
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace forkvm::api
