// A layer's allocation map: one bit per cluster, set when the layer's data
// file holds that cluster (at the same offset as on the virtual disk, so the
// data file is a sparse image and needs no translation table).
//
// Why 64 KiB clusters by default: the map of a 10 GiB disk is 20 KiB (cheap
// to rewrite atomically on every guest flush) and the in-memory owner index
// 320 KiB; the price is copy-up amplification on the first 4 KiB write to a
// cluster (read + write 64 KiB once), which is the same trade E2B and qcow2
// (64 KiB default) make. The shift is stored per layer; 4 KiB..1 MiB allowed.
//
// File format v1 (little-endian), exactly kMapHeaderBytes + bitmap bytes:
//   0  magic "FKVMLMAP"        8
//   8  version (1)             4
//  12  header bytes (64)       4
//  16  cluster shift           4
//  20  flags (0)               4
//  24  virtual size, bytes     8
//  32  cluster count           8   == ceil(size / cluster)
//  40  bitmap bytes            8   == ceil(count / 8)
//  48  bitmap CRC-32           4
//  52  reserved (0)            8
//  60  header CRC-32 (0..59)   4
// Every length is checked against the others and the bytes actually read.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::storage {

inline constexpr uint32_t kMapVersion = 1;
inline constexpr size_t kMapHeaderBytes = 64;
inline constexpr uint32_t kDefaultClusterShift = 16;
inline constexpr uint32_t kMinClusterShift = 12;
inline constexpr uint32_t kMaxClusterShift = 20;
// 64 Mi clusters: 8 MiB of bitmap, 4 TiB at 64 KiB clusters.
inline constexpr uint64_t kMaxClusters = 1ULL << 26;

class LayerMap {
 public:
  static Result<LayerMap> create(uint64_t virtual_size, uint32_t cluster_shift);
  // `name` (usually the path) is named in every refusal.
  static Result<LayerMap> parse(std::span<const uint8_t> bytes, std::string_view name);
  static Result<LayerMap> load(const std::string& path);
  // The same allocation over a larger disk (clusters past the old end are
  // not held). Refuses to shrink or to change the cluster size.
  [[nodiscard]] Result<LayerMap> grown(uint64_t new_size) const;

  [[nodiscard]] std::vector<uint8_t> encode() const;
  // Atomic replacement (write_file_atomic): never a torn map on disk.
  [[nodiscard]] Status save(const std::string& path) const;

  [[nodiscard]] uint64_t virtual_size() const { return virtual_size_; }
  [[nodiscard]] uint32_t cluster_shift() const { return cluster_shift_; }
  [[nodiscard]] uint64_t cluster_bytes() const { return uint64_t{1} << cluster_shift_; }
  [[nodiscard]] uint64_t cluster_count() const { return cluster_count_; }
  [[nodiscard]] bool test(uint64_t cluster) const {
    return cluster < cluster_count_ && (bits_[cluster >> 3] >> (cluster & 7) & 1U) != 0;
  }
  void set(uint64_t cluster);
  [[nodiscard]] uint64_t allocated() const;

 private:
  LayerMap(uint64_t size, uint32_t shift, uint64_t count)
      : virtual_size_(size), cluster_shift_(shift), cluster_count_(count), bits_((count + 7) / 8) {}

  uint64_t virtual_size_;
  uint32_t cluster_shift_;
  uint64_t cluster_count_;
  std::vector<uint8_t> bits_;
};

}  // namespace forkvm::storage
