// Hex for binary fields in JSON (the identity op's seed), shared by the
// agent and the host client. Header-only: it is a few lines.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkvm::agent {

inline std::string hex_encode(std::string_view bytes) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) {
    auto v = static_cast<unsigned char>(b);
    out.push_back(kDigits[v >> 4]);
    out.push_back(kDigits[v & 0xfu]);
  }
  return out;
}

// Either case; nullopt for an odd length or a character that is not hex.
inline std::optional<std::string> hex_decode(std::string_view text) {
  auto value = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (text.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 2);
  for (size_t i = 0; i < text.size(); i += 2) {
    int hi = value(text[i]), lo = value(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

}  // namespace forkvm::agent
