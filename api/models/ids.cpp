#include "api/models/ids.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace forkvm::api {

namespace {

constexpr std::string_view kLowerAlnum = "abcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kBase62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

void fill_random(unsigned char* buf, size_t len) {
  while (len > 0) {
    ssize_t n = ::getrandom(buf, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // Without a CSPRNG no id or key would be safe to hand out.
      std::fputs("forkvm: getrandom failed; cannot generate identifiers\n", stderr);
      std::abort();
    }
    buf += n;
    len -= static_cast<size_t>(n);
  }
}

bool has_prefixed_id(std::string_view id, std::string_view prefix, size_t chars) {
  return id.size() == prefix.size() + chars && id.substr(0, prefix.size()) == prefix &&
         is_lower_alnum(id.substr(prefix.size()));
}

}  // namespace

bool is_lower_alnum(std::string_view s) {
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

bool is_vm_id(std::string_view id) { return id.size() == kIdRandomChars && is_lower_alnum(id); }
bool is_snapshot_id(std::string_view id) { return has_prefixed_id(id, kSnapshotIdPrefix, kIdRandomChars); }
bool is_build_id(std::string_view id) { return has_prefixed_id(id, kBuildIdPrefix, kIdRandomChars); }

std::string random_string(size_t n, std::string_view alphabet) {
  // Rejection sampling: bytes at or above the largest multiple of the
  // alphabet size would bias the first symbols, so they are redrawn.
  const unsigned size = static_cast<unsigned>(alphabet.size());
  const unsigned limit = 256U - 256U % size;
  std::string out;
  out.reserve(n);
  std::array<unsigned char, 64> buf{};
  while (out.size() < n) {
    fill_random(buf.data(), buf.size());
    for (unsigned char b : buf) {
      if (b >= limit) continue;
      out.push_back(alphabet[b % size]);
      if (out.size() == n) break;
    }
  }
  return out;
}

std::string new_vm_id() { return random_string(kIdRandomChars, kLowerAlnum); }
std::string new_snapshot_id() {
  return std::string(kSnapshotIdPrefix) + random_string(kIdRandomChars, kLowerAlnum);
}
std::string new_build_id() {
  return std::string(kBuildIdPrefix) + random_string(kIdRandomChars, kLowerAlnum);
}
std::string new_phase_id() {
  return std::string(kPhaseIdPrefix) + random_string(kIdRandomChars, kLowerAlnum);
}
std::string new_layer_id() { return std::string(kLayerIdPrefix) + random_string(16, kLowerAlnum); }
std::string new_request_id() {
  return std::string(kRequestIdPrefix) + random_string(kIdRandomChars, kLowerAlnum);
}
std::string new_instance_id() { return random_string(kIdRandomChars, kLowerAlnum); }
std::string new_api_key() { return std::string(kApiKeyPrefix) + random_string(kApiKeyRandomChars, kBase62); }

bool looks_like_api_key(std::string_view key) {
  if (key.size() != kApiKeyPrefix.size() + kApiKeyRandomChars ||
      key.substr(0, kApiKeyPrefix.size()) != kApiKeyPrefix)
    return false;
  return key.substr(kApiKeyPrefix.size()).find_first_not_of(kBase62) == std::string_view::npos;
}

}  // namespace forkvm::api
