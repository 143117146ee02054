// CRC-32 (IEEE 802.3, the zlib polynomial) for the layer map's checksums:
// it catches torn or bit-flipped metadata; it is not a defence against an
// attacker who can write the file (such a user can write the data, too).
#pragma once

#include <cstdint>
#include <span>

namespace forkvm::storage {

[[nodiscard]] uint32_t crc32(std::span<const uint8_t> bytes, uint32_t seed = 0);

}  // namespace forkvm::storage
