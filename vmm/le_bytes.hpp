// Fixed-width little-endian fields in byte buffers (file headers, device
// configuration space). x86 is little-endian, so a copy is the conversion;
// callers check the offsets against the buffer's size.
#pragma once

#include <cstddef>
#include <cstring>
#include <span>

namespace forkvm {

template <typename T>
[[nodiscard]] T get_le(std::span<const uint8_t> bytes, size_t offset) {
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof value);
  return value;
}

template <typename T>
void put_le(std::span<uint8_t> bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
}

}  // namespace forkvm
