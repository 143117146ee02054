#include "api/models/base64.hpp"

#include <array>
#include <cstdint>

namespace forkvm::api {

namespace {

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (size_t i = 0; i < kAlphabet.size(); i++)
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kTable = make_table();

}  // namespace

std::optional<std::string> base64_decode(std::string_view text) {
  size_t pad = 0;
  while (pad < 2 && text.size() > pad && text[text.size() - 1 - pad] == '=') pad++;
  std::string_view data = text.substr(0, text.size() - pad);
  if (pad > 0 && text.size() % 4 != 0) return std::nullopt;  // padding only completes a quantum
  if (data.size() % 4 == 1) return std::nullopt;             // no encoder leaves one lone symbol
  std::string out;
  out.reserve(data.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : data) {
    int8_t v = kTable[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFFU));
    }
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(n >> s) & 63U]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t n = at(i) << 16;
    if (rest == 2) n |= at(i + 1) << 8;
    out.push_back(kAlphabet[(n >> 18) & 63U]);
    out.push_back(kAlphabet[(n >> 12) & 63U]);
    out.push_back(rest == 2 ? kAlphabet[(n >> 6) & 63U] : '=');
    out.push_back('=');
  }
  return out;
}

}  // namespace forkvm::api
