#include "devices/storage/layered_disk.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_store.hpp"
#include "vmm/log.hpp"

namespace forkvm::storage {
namespace {

Status lock_fd(int fd, int op, const std::string& path) {
  if (::flock(fd, op | LOCK_NB) == 0) return {};
  if (errno == EWOULDBLOCK) return make_error("layer {} is in use by another VM or tool", path);
  return errno_error(fmt::format("lock {}", path));
}

}  // namespace

LayeredDisk::LayeredDisk(ChainDescriptor chain, std::string chain_path, bool read_only, UniqueFd base,
                         LayerMap geometry)
    : chain_(std::move(chain)),
      chain_path_(std::move(chain_path)),
      read_only_(read_only),
      base_(std::move(base)),
      geometry_(std::move(geometry)),
      owner_(geometry_.cluster_count(), kNoLayer),
      bounce_(geometry_.cluster_bytes()) {}

Result<std::unique_ptr<LayeredDisk>> LayeredDisk::open(const std::string& chain_path, bool read_only) {
  const std::string path = chain_file(chain_path);
  ChainDescriptor chain = FORKVM_TRY(load_chain(path));
  UniqueFd base;
  if (!chain.base.empty()) {
    base.reset(::open(chain.base.c_str(), O_RDONLY | O_CLOEXEC));
    if (!base.valid()) return errno_error(fmt::format("chain {}: open base image {}", path, chain.base));
    struct stat st {};
    if (::fstat(base.get(), &st) != 0) return errno_error(fmt::format("stat base image {}", chain.base));
    if (static_cast<uint64_t>(st.st_size) != chain.base_size) {
      return make_error("chain {}: base image {} is {} bytes, the chain was made over {} bytes: it changed",
                        path, chain.base, st.st_size, chain.base_size);
    }
  }
  LayerMap geometry = FORKVM_TRY(LayerMap::create(chain.size, chain.cluster_shift));
  const std::vector<std::string> ids = chain.layers;
  std::unique_ptr<LayeredDisk> disk(
      new LayeredDisk(std::move(chain), path, read_only, std::move(base), std::move(geometry)));
  for (size_t i = 0; i < ids.size(); ++i) {
    FORKVM_CHECK(disk->open_layer(ids[i], i + 1 == ids.size()).context(fmt::format("chain {}", path)));
  }
  return disk;
}

Status LayeredDisk::open_layer(const std::string& id, bool top) {
  const std::string& root = chain_.layers_root;
  const std::string map_path = layer_map_path(root, id);
  LayerMap map = FORKVM_TRY(LayerMap::load(map_path));
  // A layer made before the chain grew is smaller than the chain; never larger.
  if (map.virtual_size() > geometry_.virtual_size() || map.cluster_shift() != geometry_.cluster_shift()) {
    return make_error("layer map {} is for a {} byte disk with 2^{} clusters, the chain is {} bytes, 2^{}",
                      map_path, map.virtual_size(), map.cluster_shift(), geometry_.virtual_size(),
                      geometry_.cluster_shift());
  }
  const bool writable = top && !read_only_;
  if (writable && map.virtual_size() < geometry_.virtual_size()) {
    // The chain grew while offline (grow_chain): the map follows at the next flush.
    map = FORKVM_TRY(map.grown(geometry_.virtual_size()).context(map_path));
    map_dirty_ = true;
  }
  const std::string data_path = layer_data_path(root, id);
  UniqueFd data(::open(data_path.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!data.valid()) return errno_error(fmt::format("open layer data {}", data_path));
  FORKVM_CHECK(lock_fd(data.get(), writable ? LOCK_EX : LOCK_SH, data_path));
  if (layers_.size() >= kMaxChainLayers) return make_error("more than {} layers", kMaxChainLayers);
  layers_.push_back({id, std::move(data), std::move(map)});
  // Upper layers overwrite lower ones: after the last layer, each entry names the topmost holder.
  const auto tag = static_cast<uint16_t>(layers_.size());
  const LayerMap& m = layers_.back().map;
  for (uint64_t c = 0; c < owner_.size(); ++c) {
    if (m.test(c)) owner_[c] = tag;
  }
  return {};
}

LayeredDisk::~LayeredDisk() {
  if (auto s = flush(); !s)
    log(LogLevel::error, "layered disk {}: final flush: {}", chain_path_, s.error().message);
}

uint64_t LayeredDisk::cluster_end(uint64_t cluster) const {
  return std::min(chain_.size, (cluster + 1) << chain_.cluster_shift);
}

bool LayeredDisk::in_range(uint64_t offset, uint64_t len) const {
  return offset <= chain_.size && len <= chain_.size - offset;  // cannot overflow
}

Status LayeredDisk::read_from(uint16_t owner, uint64_t offset, std::span<const iovec> iov, uint64_t pos,
                              uint64_t len) {
  if (owner != kNoLayer) {
    iov_slice(iov, pos, len, slice_);
    return preadv_full(layers_[owner - 1U].data.get(), slice_, offset);
  }
  // Not in any layer: the base where it has bytes, zeros past its end.
  uint64_t from_base = 0;
  if (base_.valid() && offset < chain_.base_size) from_base = std::min(len, chain_.base_size - offset);
  if (from_base > 0) {
    iov_slice(iov, pos, from_base, slice_);
    FORKVM_CHECK(preadv_full(base_.get(), slice_, offset).context(fmt::format("base image {}", chain_.base)));
  }
  if (from_base < len) iov_zero(iov, pos + from_base, len - from_base);
  return {};
}

Status LayeredDisk::read(uint64_t offset, std::span<const iovec> iov) {
  const uint64_t len = iov_bytes(iov);
  if (!in_range(offset, len)) return make_error("read of {} bytes at {} is past the disk's end", len, offset);
  const uint32_t shift = chain_.cluster_shift;
  uint64_t pos = 0;
  while (pos < len) {
    // One transfer per run of clusters with the same owner.
    const uint64_t first = (offset + pos) >> shift;
    const uint16_t owner = owner_[first];
    uint64_t end = cluster_end(first);
    while (end < offset + len && owner_[end >> shift] == owner) end = cluster_end(end >> shift);
    const uint64_t n = std::min(end, offset + len) - (offset + pos);
    FORKVM_CHECK(read_from(owner, offset + pos, iov, pos, n));
    pos += n;
  }
  return {};
}

void LayeredDisk::mark_top(uint64_t first_cluster, uint64_t end_cluster) {
  const auto top = static_cast<uint16_t>(layers_.size());
  for (uint64_t c = first_cluster; c < end_cluster; ++c) {
    if (owner_[c] == top) continue;
    owner_[c] = top;
    layers_.back().map.set(c);
    map_dirty_ = true;
  }
}

Status LayeredDisk::write(uint64_t offset, std::span<const iovec> iov) {
  if (read_only_) return make_error("write to read-only layered disk {}", chain_path_);
  const uint64_t len = iov_bytes(iov);
  if (!in_range(offset, len))
    return make_error("write of {} bytes at {} is past the disk's end", len, offset);
  const uint32_t shift = chain_.cluster_shift;
  const auto top = static_cast<uint16_t>(layers_.size());
  const int top_fd = layers_.back().data.get();
  const uint64_t stop = offset + len;
  // A cluster can be written in place when the top already holds it, or
  // when this write covers all of it (nothing below needs to be kept).
  auto direct = [&](uint64_t c) {
    return owner_[c] == top || (offset <= (c << shift) && cluster_end(c) <= stop);
  };
  uint64_t at = offset;
  while (at < stop) {
    const uint64_t c = at >> shift;
    if (direct(c)) {
      uint64_t end = cluster_end(c);
      while (end < stop && direct(end >> shift)) end = cluster_end(end >> shift);
      end = std::min(end, stop);
      iov_slice(iov, at - offset, end - at, slice_);
      FORKVM_CHECK(pwritev_full(top_fd, slice_, at).context(fmt::format("layer {}", layers_.back().id)));
      // Only now, with the data written, may the map name these clusters.
      mark_top(c, ((end - 1) >> shift) + 1);
      at = end;
      continue;
    }
    // Copy-up: the cluster as the chain sees it, patched with the new bytes.
    const uint64_t cstart = c << shift;
    const uint64_t clen = cluster_end(c) - cstart;
    const uint64_t end = std::min(cluster_end(c), stop);
    const iovec whole{bounce_.data(), clen};
    FORKVM_CHECK(read_from(owner_[c], cstart, {&whole, 1}, 0, clen));
    iov_to_buf(iov, at - offset, bounce_.data() + (at - cstart), end - at);
    FORKVM_CHECK(pwrite_full(top_fd, bounce_.data(), clen, cstart)
                     .context(fmt::format("layer {}", layers_.back().id)));
    mark_top(c, c + 1);
    at = end;
  }
  return {};
}

Status LayeredDisk::flush() {
  if (read_only_ || layers_.empty()) return {};
  Layer& top = layers_.back();
  if (::fdatasync(top.data.get()) != 0) return errno_error(fmt::format("fdatasync layer {}", top.id));
  if (!map_dirty_) return {};
  FORKVM_CHECK(top.map.save(layer_map_path(chain_.layers_root, top.id)));
  map_dirty_ = false;
  return {};
}

Result<ChainDescriptor> LayeredDisk::freeze() {
  if (read_only_) return make_error("cannot freeze read-only layered disk {}", chain_path_);
  if (layers_.size() >= kMaxChainLayers)
    return make_error("chain {} has {} layers: flatten it", chain_path_, layers_.size());
  FORKVM_CHECK(flush());
  ChainDescriptor frozen = chain_;
  const std::string id =
      FORKVM_TRY(create_layer(chain_.layers_root, chain_.size, chain_.cluster_shift, chain_path_));
  ChainDescriptor next = chain_;
  next.layers.push_back(id);
  FORKVM_CHECK(save_chain(chain_path_, next));
  chain_ = std::move(next);
  // The old top is read-only from here on: share its lock with other readers.
  Layer& old = layers_.back();
  (void)::flock(old.data.get(), LOCK_SH | LOCK_NB);
  FORKVM_CHECK(open_layer(id, true));
  return frozen;
}

Status LayeredDisk::grow(uint64_t new_size) {
  if (read_only_) return make_error("cannot grow read-only layered disk {}", chain_path_);
  FORKVM_CHECK(check_grow(chain_, new_size).context(chain_path_));
  if (new_size == chain_.size) return {};
  Layer& top = layers_.back();
  LayerMap geometry = FORKVM_TRY(LayerMap::create(new_size, chain_.cluster_shift));
  LayerMap map = FORKVM_TRY(top.map.grown(new_size));
  // The file first (harmless if we stop here), then the descriptor, which
  // is what makes the new size real; the map follows at the next flush.
  if (::ftruncate(top.data.get(), static_cast<off_t>(new_size)) != 0)
    return errno_error(fmt::format("grow layer {} to {} bytes", top.id, new_size));
  ChainDescriptor next = chain_;
  next.size = new_size;
  FORKVM_CHECK(save_chain(chain_path_, next));
  chain_ = std::move(next);
  geometry_ = std::move(geometry);
  top.map = std::move(map);
  owner_.resize(geometry_.cluster_count(), kNoLayer);
  map_dirty_ = true;
  return {};
}

std::vector<uint64_t> LayeredDisk::allocated_per_layer() const {
  std::vector<uint64_t> out;
  for (const Layer& l : layers_) out.push_back(l.map.allocated());
  return out;
}

}  // namespace forkvm::storage
