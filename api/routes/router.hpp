// Matches (method, path) against route patterns. Patterns are '/'-separated:
// a literal segment, `{name}` for one segment, or `{*name}` as the last
// segment for the whole rest of the path. When several patterns match a
// path, the most specific wins (literals beat parameters, segment by
// segment), so `/v1/vms/snapshots` is never taken for a VM id. A path that
// matches a pattern but not its method is a 405, with the allowed methods.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace forkvm::api {

struct RoutePattern {
  std::string method;
  std::string pattern;
};

struct RouteMatch {
  enum class Kind { found, not_found, method_not_allowed, bad_escape };
  Kind kind = Kind::not_found;
  size_t index = 0;                           // into the pattern list, when found
  std::map<std::string, std::string> params;  // percent-decoded
  std::vector<std::string> allowed;           // for method_not_allowed
};

class Router {
 public:
  explicit Router(std::vector<RoutePattern> routes);

  // `path` is the raw path of the request target (no query).
  [[nodiscard]] RouteMatch match(std::string_view method, std::string_view path) const;

 private:
  struct Segment {
    enum class Kind { tail, param, literal };  // ordered by specificity
    Kind kind;
    std::string text;  // literal text or parameter name
  };
  struct Compiled {
    std::string method;
    std::vector<Segment> segments;
  };
  // Raw (undecoded) parameter values if `route` matches the path segments.
  static bool match_path(const Compiled& route, const std::vector<std::string_view>& parts,
                         std::string_view path, std::map<std::string, std::string>& raw);

  std::vector<Compiled> routes_;
};

// The path part of a request target: the query and fragment are dropped and
// an absolute-form target ("http://host/p") is reduced to its path.
[[nodiscard]] std::string_view target_path(std::string_view target);
[[nodiscard]] std::string_view target_query(std::string_view target);

// Decodes the `{*filepath}` tail of a files URL. The SDK sends one segment
// with encoded slashes (%2Fhome%2Fuser%2Fa.txt); curl users write literal
// slashes (home/user/a.txt), which are taken as an absolute path.
[[nodiscard]] std::optional<std::string> decode_file_tail(std::string_view raw);

}  // namespace forkvm::api
