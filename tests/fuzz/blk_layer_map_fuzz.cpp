// libFuzzer target: the layered disk's on-disk metadata readers
// (devices/storage/). A layer map file or a chain descriptor may be
// corrupt, truncated or from another version; the readers must refuse it
// with an error, never crash, over-allocate or read past the input.
//
// Input: the bytes of a map file. Every accepted map must re-encode to the
// same bytes (the format has one encoding). The same bytes also go to the
// chain descriptor parser, which shares the "never trust a length" rule.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string_view>

#include "devices/storage/chain_descriptor.hpp"
#include "devices/storage/layer_map.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> in(data, size);
  auto map = forkvm::storage::LayerMap::parse(in, "fuzz-map");
  if (map.ok()) {
    const auto again = map->encode();
    if (again.size() != size || std::memcmp(again.data(), data, size) != 0) std::abort();
    uint64_t set = 0;
    for (uint64_t c = 0; c < map->cluster_count(); ++c) set += map->test(c) ? 1 : 0;
    if (set != map->allocated() || map->test(map->cluster_count())) std::abort();
  } else if (map.error().message.find("fuzz-map") == std::string::npos) {
    std::abort();  // every refusal names the file
  }
  (void)forkvm::storage::parse_chain(std::string_view(reinterpret_cast<const char*>(data), size),
                                     "fuzz-chain");
  return 0;
}
