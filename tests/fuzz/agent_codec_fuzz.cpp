// libFuzzer target for the agent frame decoder: arbitrary bytes, fed in
// arbitrary splits, must never crash, over-read or allocate past the cap;
// every frame it yields must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "guestinit/protocol.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkvm::agent;
  if (size == 0) return 0;
  // The first byte picks the split size, so partial-input paths are explored.
  size_t step = (data[0] % 64) + 1;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  FrameDecoder dec(4096 + (static_cast<uint32_t>(data[0]) << 8));
  std::string reencoded;
  size_t consumed_ok = 0;
  for (size_t off = 0; off < input.size(); off += step) {
    dec.feed(std::string_view(input).substr(off, step));
    for (;;) {
      auto f = dec.next();
      if (!f.ok()) return 0;  // refused: fine, and the decoder stays poisoned
      if (!f->has_value()) break;
      const Frame& fr = **f;
      if (fr.payload.size() > kMaxPayload) __builtin_trap();
      auto enc = encode_frame(fr);
      if (!enc.ok()) __builtin_trap();  // a decoded frame must be encodable
      reencoded += *enc;
      consumed_ok += enc->size();
    }
  }
  // What decoded is exactly the input's prefix.
  if (std::memcmp(reencoded.data(), input.data(), consumed_ok) != 0) __builtin_trap();
  if (dec.failed()) __builtin_trap();
  if (consumed_ok + dec.buffered() != input.size()) __builtin_trap();
  return 0;
}
