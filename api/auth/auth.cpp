#include "api/auth/auth.hpp"

#include <strings.h>

#include "api/auth/sha256.hpp"
#include "api/models/ids.hpp"
#include "vmm/log.hpp"

namespace forkvm::api {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::string> extract_credential(std::optional<std::string_view> authorization,
                                              std::optional<std::string_view> access_token) {
  if (authorization) {
    std::string_view v = trim(*authorization);
    // The scheme is case-insensitive (RFC 9110 §11.1).
    if (v.size() > 7 && strncasecmp(v.data(), "Bearer ", 7) == 0) {
      std::string_view token = trim(v.substr(7));
      if (!token.empty()) return std::string(token);
    }
  }
  if (access_token) {
    std::string_view token = trim(*access_token);
    if (!token.empty()) return std::string(token);
  }
  return std::nullopt;
}

ApiResult<Account> authenticate(Store& store, const std::optional<std::string>& credential) {
  if (!credential)
    return api_error(
        ErrorCode::Unauthorized,
        "missing API key: send `Authorization: Bearer <key>` (create one with `forkvm keys create`)");
  auto account = store.account_for_key_hash(sha256_hex(*credential));
  if (!account.ok()) {
    log(LogLevel::error, "auth: store lookup failed: {}", account.error().message);
    return api_error(ErrorCode::InternalError, "the key store is unavailable");
  }
  if (!*account) return api_error(ErrorCode::Unauthorized, "unknown API key");
  return std::move(**account);
}

Result<IssuedKey> issue_api_key(Store& store, std::string_view account_name, std::string_view label) {
  auto existing = FORKVM_TRY(store.find_account_by_name(account_name));
  Account account = existing ? std::move(*existing) : FORKVM_TRY(store.create_account(account_name));
  IssuedKey issued{new_api_key(), account};
  ApiKeyRecord rec{"key-" + random_string(kIdRandomChars, "abcdefghijklmnopqrstuvwxyz0123456789"), account.id,
                   sha256_hex(issued.key), std::string(label), now_ms()};
  FORKVM_CHECK(store.add_api_key(rec));
  return issued;
}

}  // namespace forkvm::api
