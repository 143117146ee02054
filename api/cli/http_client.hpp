// A blocking HTTP/1.1 client over TCP for `forkvm vm`: one request per
// connection, the whole response in memory. Boost.Beast stays inside
// http_client.cpp (heavy headers, one translation unit).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/result.hpp"

namespace forkvm::cli {

// http://host[:port][/prefix]; https is refused (no TLS here).
struct ServerUrl {
  std::string host;    // without brackets for IPv6
  std::string port;    // "80" when absent
  std::string prefix;  // "" or "/api", no trailing slash
};
[[nodiscard]] Result<ServerUrl> parse_server_url(std::string_view url);

struct HttpCall {
  std::string method;                    // GET, POST, PUT, DELETE
  std::string target;                    // path and query, already encoded
  std::optional<std::string> body;       // sent as application/json
  std::string bearer;                    // empty: no Authorization header
  std::chrono::milliseconds timeout{0};  // whole exchange; 0: no limit
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// An error only when no HTTP answer arrived (connect, I/O, timeout, parse);
// any status, 4xx and 5xx included, is a response.
[[nodiscard]] Result<HttpResponse> http_call(const ServerUrl& server, const HttpCall& call);

}  // namespace forkvm::cli
