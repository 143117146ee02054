// Request authentication. A caller presents an API key either as
// `Authorization: Bearer <key>` (the spec's bearerAuth) or as
// `X-Freestyle-Identity-Access-Token: <key>` (what the SDK sends when it has
// only an access token). Keys are looked up by their SHA-256, so the
// database never holds a usable key.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/models/api_error.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

// The credential from the two header values (either may be absent).
// nullopt when neither carries one.
[[nodiscard]] std::optional<std::string> extract_credential(std::optional<std::string_view> authorization,
                                                            std::optional<std::string_view> access_token);

// The account owning `credential`; UNAUTHORIZED when unknown or missing.
[[nodiscard]] ApiResult<Account> authenticate(Store& store, const std::optional<std::string>& credential);

struct IssuedKey {
  std::string key;  // shown once, never stored
  Account account;
};

// Creates a key for the account named `account_name` (creating the account
// if needed) and stores its hash.
[[nodiscard]] Result<IssuedKey> issue_api_key(Store& store, std::string_view account_name,
                                              std::string_view label);

}  // namespace forkvm::api
