// SHA-256 for API key storage (OpenSSL's EVP implementation).
#pragma once

#include <string>
#include <string_view>

namespace forkvm::api {

// Lowercase hex digest of `data`.
[[nodiscard]] std::string sha256_hex(std::string_view data);

}  // namespace forkvm::api
