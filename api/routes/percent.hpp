// Percent-decoding of path segments and query strings (RFC 3986 §2.1).
// Exact: '%' must be followed by two hex digits, otherwise the request is
// bad. Decoding happens after the path is split, so an encoded slash (%2F)
// stays inside its segment, which is how the SDK sends file paths.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::api {

// nullopt on a malformed escape.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view text);

// Query strings as URLSearchParams writes them: '+' means space.
// nullopt on a malformed escape. Later duplicates overwrite earlier ones.
[[nodiscard]] std::optional<std::map<std::string, std::string>> parse_query(std::string_view query);

}  // namespace forkvm::api
