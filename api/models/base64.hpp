// Standard base64 (RFC 4648 §4), strict on decode: file contents arrive in
// it (the SDK's writeFile always sends base64) and a silently mangled file
// is worse than a 400.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkvm::api {

// nullopt for characters outside the alphabet, misplaced padding or a length
// no encoder produces. Padding may be omitted.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);
[[nodiscard]] std::string base64_encode(std::string_view bytes);

}  // namespace forkvm::api
