// A copy-on-write disk: an immutable raw base image under a chain of layers
// (chain_descriptor.hpp, layer_store.hpp). Writes go to the top layer; a
// write covering part of a cluster first copies the cluster up from below.
// Reads take each cluster from the topmost layer holding it, else the base,
// else zeros. A flat owner index (cluster -> layer), built at open, makes
// each lookup one array access however deep the chain is.
//
// Crash safety: data is written before the in-memory map bit is set, and
// the map reaches disk only in flush(), after fdatasync of the data; so an
// on-disk map never names a cluster whose data is not durable. Unflushed
// writes may be lost on a crash, exactly as with a disk's write cache.
//
// I/O is synchronous (pread/pwrite on the caller's thread): the blk device
// runs it on a worker thread of its own (devices/virtio/blk_worker.hpp).
// Moving it to io_uring would mean splitting each request per owning layer
// into linked SQEs. Not thread-safe: one thread at a time uses a
// LayeredDisk (the device's worker; the machine's freeze and grow only
// once the device has no request in flight).
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "devices/storage/chain_descriptor.hpp"
#include "devices/storage/layer_map.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::storage {

class LayeredDisk {
 public:
  // Opens the chain; the top layer is locked for writing (a second writer
  // is refused), lower layers are shared-locked so gc leaves them alone.
  static Result<std::unique_ptr<LayeredDisk>> open(const std::string& chain_path, bool read_only);
  LayeredDisk(const LayeredDisk&) = delete;
  LayeredDisk& operator=(const LayeredDisk&) = delete;
  ~LayeredDisk();  // flushes (best effort): a clean shutdown keeps every write

  [[nodiscard]] uint64_t size() const { return chain_.size; }
  [[nodiscard]] bool read_only() const { return read_only_; }
  [[nodiscard]] const ChainDescriptor& chain() const { return chain_; }
  [[nodiscard]] const std::string& chain_path() const { return chain_path_; }

  // Ranges past the end are refused (never clamped).
  [[nodiscard]] Status read(uint64_t offset, std::span<const iovec> iov);
  [[nodiscard]] Status write(uint64_t offset, std::span<const iovec> iov);
  // Makes every completed write durable: data first, then the map.
  [[nodiscard]] Status flush();

  // Flushes, makes the current top read-only and puts a new empty top over
  // it (recorded in the descriptor). Returns the frozen chain (the
  // descriptor without the new top), which fork_chain_from() can branch.
  // O(1) apart from the flush: nothing is copied.
  [[nodiscard]] Result<ChainDescriptor> freeze();

  // Makes the disk `new_size` bytes (check_grow()): the top layer's file
  // and map grow, the descriptor records the size, lower layers stay as
  // they are (clusters past their end read from below). The guest sees the
  // new capacity once its device says so.
  [[nodiscard]] Status grow(uint64_t new_size);

  // True when some layer (not the base) holds the cluster.
  [[nodiscard]] bool in_layers(uint64_t cluster) const {
    return cluster < owner_.size() && owner_[cluster] != kNoLayer;
  }
  // Clusters held by each layer, bottom to top (for `disk info`).
  [[nodiscard]] std::vector<uint64_t> allocated_per_layer() const;

 private:
  struct Layer {
    std::string id;
    UniqueFd data;
    LayerMap map;
  };
  static constexpr uint16_t kNoLayer = 0;

  LayeredDisk(ChainDescriptor chain, std::string chain_path, bool read_only, UniqueFd base,
              LayerMap geometry);
  [[nodiscard]] Status open_layer(const std::string& id, bool top);
  [[nodiscard]] uint64_t cluster_end(uint64_t cluster) const;
  [[nodiscard]] bool in_range(uint64_t offset, uint64_t len) const;
  // Reads [offset, offset+len) of the disk into iov[pos..]; no bounds check.
  [[nodiscard]] Status read_from(uint16_t owner, uint64_t offset, std::span<const iovec> iov, uint64_t pos,
                                 uint64_t len);
  void mark_top(uint64_t first_cluster, uint64_t end_cluster);

  ChainDescriptor chain_;
  std::string chain_path_;
  bool read_only_;
  UniqueFd base_;
  LayerMap geometry_;  // size and cluster shift of every layer
  std::vector<Layer> layers_;
  std::vector<uint16_t> owner_;  // per cluster: 1 + index into layers_, or kNoLayer
  bool map_dirty_ = false;
  std::vector<uint8_t> bounce_;  // one cluster, for copy-up
  std::vector<iovec> slice_;     // scratch
};

}  // namespace forkvm::storage
