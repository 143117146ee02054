// The chain descriptor: one small text file naming a layered disk's base
// image and its layers, bottom to top. The top layer is the writable one.
//
//   forkvm-chain 1
//   size 1073741824
//   cluster-shift 16
//   base /var/lib/forkvm/images/rootfs.ext4
//   base-size 1073741824
//   layers-root /var/lib/forkvm/layers
//   layer 5f0c1d2e3a4b5c6d
//   layer 9a8b7c6d5e4f3a2b
//
// Strict: unknown keys, a foreign version or a malformed line are refused
// with the file's name. Paths are absolute (the writer makes them so), so
// a descriptor can be copied anywhere (a snapshot directory, say).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::storage {

inline constexpr uint32_t kChainVersion = 1;
// The owner index stores 1 + layer index in 16 bits; far below that, a deep
// chain means someone forgot to flatten.
inline constexpr size_t kMaxChainLayers = 4096;

struct ChainDescriptor {
  uint64_t size = 0;  // virtual disk size in bytes
  uint32_t cluster_shift = 0;
  std::string base;        // raw image, never written; empty: no base (zeros)
  uint64_t base_size = 0;  // recorded at creation: a base that changed is refused
  std::string layers_root;
  std::vector<std::string> layers;  // bottom -> top
};

[[nodiscard]] Result<ChainDescriptor> parse_chain(std::string_view text, std::string_view name);
[[nodiscard]] std::string encode_chain(const ChainDescriptor& chain);
[[nodiscard]] Result<ChainDescriptor> load_chain(const std::string& path);
[[nodiscard]] Status save_chain(const std::string& path, const ChainDescriptor& chain);

// Whether `chain` may grow to `new_size` bytes: never smaller, whole
// sectors, and only from a size that is a whole number of clusters (a lower
// layer's partial last cluster would otherwise be read past its file's end).
[[nodiscard]] Status check_grow(const ChainDescriptor& chain, uint64_t new_size);

// A chain is named by its descriptor file or by a directory holding one
// called "chain"; returns the descriptor's absolute path.
[[nodiscard]] std::string chain_file(const std::string& dir_or_file);

}  // namespace forkvm::storage
