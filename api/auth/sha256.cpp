#include "api/auth/sha256.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstdio>
#include <cstdlib>

namespace forkvm::api {

std::string sha256_hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
    // Only fails when OpenSSL cannot allocate; no key could be checked then.
    std::fputs("forkvm: SHA-256 failed\n", stderr);
    std::abort();
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; i++) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xF]);
  }
  return out;
}

}  // namespace forkvm::api
