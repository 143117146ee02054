#include "devices/storage/layer_map.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "devices/storage/crc32.hpp"
#include "devices/storage/file_io.hpp"
#include "vmm/le_bytes.hpp"

namespace forkvm::storage {
namespace {

constexpr char kMagic[8] = {'F', 'K', 'V', 'M', 'L', 'M', 'A', 'P'};

}  // namespace

Result<LayerMap> LayerMap::create(uint64_t virtual_size, uint32_t cluster_shift) {
  if (cluster_shift < kMinClusterShift || cluster_shift > kMaxClusterShift) {
    return make_error("cluster size 2^{} is outside 4 KiB..1 MiB", cluster_shift);
  }
  if (virtual_size == 0) return make_error("a layered disk cannot be empty");
  const uint64_t cluster = uint64_t{1} << cluster_shift;
  // Written so that it cannot overflow for any 64-bit size.
  const uint64_t count = virtual_size / cluster + (virtual_size % cluster != 0 ? 1 : 0);
  if (count > kMaxClusters) {
    return make_error("a {} byte disk needs {} clusters of {} bytes, more than {}", virtual_size, count,
                      cluster, kMaxClusters);
  }
  return LayerMap(virtual_size, cluster_shift, count);
}

Result<LayerMap> LayerMap::grown(uint64_t new_size) const {
  if (new_size < virtual_size_)
    return make_error("a layer map cannot shrink ({} bytes to {})", virtual_size_, new_size);
  LayerMap out = FORKVM_TRY(create(new_size, cluster_shift_));
  std::copy(bits_.begin(), bits_.end(), out.bits_.begin());
  return out;
}

Result<LayerMap> LayerMap::parse(std::span<const uint8_t> b, std::string_view name) {
  if (b.size() < kMapHeaderBytes)
    return make_error("layer map {}: {} bytes, shorter than its header", name, b.size());
  if (std::memcmp(b.data(), kMagic, sizeof kMagic) != 0)
    return make_error("layer map {}: not a forkvm layer map", name);
  const auto version = get_le<uint32_t>(b, 8);
  if (version != kMapVersion) {
    return make_error("layer map {}: format version {}, this forkvm reads version {}", name, version,
                      kMapVersion);
  }
  if (get_le<uint32_t>(b, 60) != crc32(b.first(60)))
    return make_error("layer map {}: header checksum mismatch", name);
  if (get_le<uint32_t>(b, 12) != kMapHeaderBytes || get_le<uint32_t>(b, 20) != 0 ||
      get_le<uint64_t>(b, 52) != 0) {
    return make_error("layer map {}: unknown header layout or flags", name);
  }
  auto map = LayerMap::create(get_le<uint64_t>(b, 24), get_le<uint32_t>(b, 16));
  if (!map) return map.error().context(fmt::format("layer map {}", name));
  // The stored lengths must agree with the geometry and with what was read.
  const uint64_t count = get_le<uint64_t>(b, 32);
  const uint64_t bitmap_bytes = get_le<uint64_t>(b, 40);
  if (count != map->cluster_count_ || bitmap_bytes != map->bits_.size() ||
      b.size() - kMapHeaderBytes != map->bits_.size()) {
    return make_error("layer map {}: lengths disagree (clusters {}, bitmap {} bytes, file {} bytes)", name,
                      count, bitmap_bytes, b.size());
  }
  const auto bitmap = b.subspan(kMapHeaderBytes);
  if (get_le<uint32_t>(b, 48) != crc32(bitmap))
    return make_error("layer map {}: bitmap checksum mismatch", name);
  std::memcpy(map->bits_.data(), bitmap.data(), bitmap.size());
  if (const uint64_t tail = map->cluster_count_ & 7; tail != 0 && (map->bits_.back() >> tail) != 0) {
    return make_error("layer map {}: bits set past the last cluster", name);
  }
  return map;
}

Result<LayerMap> LayerMap::load(const std::string& path) {
  const auto bytes = FORKVM_TRY(read_file(path, kMapHeaderBytes + kMaxClusters / 8));
  return parse(bytes, path);
}

std::vector<uint8_t> LayerMap::encode() const {
  std::vector<uint8_t> b(kMapHeaderBytes + bits_.size());
  std::memcpy(b.data(), kMagic, sizeof kMagic);
  put_le<uint32_t>(b, 8, kMapVersion);
  put_le<uint32_t>(b, 12, kMapHeaderBytes);
  put_le<uint32_t>(b, 16, cluster_shift_);
  put_le<uint64_t>(b, 24, virtual_size_);
  put_le<uint64_t>(b, 32, cluster_count_);
  put_le<uint64_t>(b, 40, bits_.size());
  put_le<uint32_t>(b, 48, crc32(bits_));
  put_le<uint32_t>(b, 60, crc32(std::span<const uint8_t>(b).first(60)));
  std::memcpy(b.data() + kMapHeaderBytes, bits_.data(), bits_.size());
  return b;
}

Status LayerMap::save(const std::string& path) const { return write_file_atomic(path, encode()); }

void LayerMap::set(uint64_t cluster) {
  if (cluster >= cluster_count_) return;  // callers bound clusters by the disk size
  bits_[cluster >> 3] = static_cast<uint8_t>(bits_[cluster >> 3] | (1U << (cluster & 7)));
}

uint64_t LayerMap::allocated() const {
  uint64_t n = 0;
  for (uint8_t v : bits_) n += static_cast<uint64_t>(std::popcount(v));
  return n;
}

}  // namespace forkvm::storage
