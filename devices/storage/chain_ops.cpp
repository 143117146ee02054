#include "devices/storage/chain_ops.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_store.hpp"
#include "devices/storage/layered_disk.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::storage {
namespace {

namespace fs = std::filesystem;

std::string absolute(const std::string& p) {
  std::error_code ec;
  auto a = fs::absolute(p, ec);
  return (ec ? fs::path(p) : a).lexically_normal().string();
}

Result<std::string> new_chain_file(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("create chain directory {}: {}", dir, ec.message());
  const std::string path = absolute(dir) + "/chain";
  if (fs::exists(path)) return make_error("{} already exists", path);
  return path;
}

Status check_path(const std::string& p) {
  if (p.find('\n') != std::string::npos) return make_error("path '{}' has a newline", p);
  return {};
}

// Copies into `out` every cluster some layer of `src` holds (the base's own
// clusters are the same under both), then makes it durable.
Status copy_layer_clusters(LayeredDisk& src, LayeredDisk& out) {
  const ChainDescriptor& c = src.chain();
  std::vector<uint8_t> buf(uint64_t{1} << c.cluster_shift);
  const uint64_t clusters = (c.size + buf.size() - 1) / buf.size();
  for (uint64_t i = 0; i < clusters; ++i) {
    if (!src.in_layers(i)) continue;
    const uint64_t at = i << c.cluster_shift;
    const iovec v{buf.data(), std::min<uint64_t>(buf.size(), c.size - at)};
    FORKVM_CHECK(src.read(at, {&v, 1}));
    FORKVM_CHECK(out.write(at, {&v, 1}));
  }
  return out.flush();
}

// The chain's top layer, flock'ed exclusively: held until the descriptor is
// rewritten, no VM can open the chain meanwhile; refused while one has it open.
Result<UniqueFd> lock_top(const std::string& path, const ChainDescriptor& c, int open_flags) {
  const std::string top = layer_data_path(c.layers_root, c.layers.back());
  UniqueFd fd(::open(top.c_str(), open_flags | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", top));
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0)
    return make_error("chain {} is in use by a running VM", path);
  return fd;
}

}  // namespace

Result<std::string> create_chain(const std::string& dir, const CreateOptions& o) {
  ChainDescriptor c;
  c.cluster_shift = o.cluster_shift;
  if (!o.base.empty()) {
    FORKVM_CHECK(check_path(o.base));
    c.base = absolute(o.base);
    struct stat st {};
    if (::stat(c.base.c_str(), &st) != 0) return errno_error(fmt::format("base image {}", c.base));
    if (!S_ISREG(st.st_mode)) return make_error("base image {} is not a regular file", c.base);
    if (::access(c.base.c_str(), R_OK) != 0) return errno_error(fmt::format("base image {}", c.base));
    c.base_size = static_cast<uint64_t>(st.st_size);
    if (c.base_size == 0) return make_error("base image {} is empty", c.base);
  }
  c.size = o.size.value_or(c.base_size);
  if (c.size == 0) return make_error("a chain without a base needs a size");
  if (c.size < c.base_size)
    return make_error("size {} is smaller than the base image ({} bytes)", c.size, c.base_size);
  const std::string path = FORKVM_TRY(new_chain_file(dir));
  c.layers_root = absolute(o.layers_root.empty() ? dir + "/layers" : o.layers_root);
  FORKVM_CHECK(check_path(c.layers_root));
  c.layers.push_back(FORKVM_TRY(create_layer(c.layers_root, c.size, c.cluster_shift, path)));
  FORKVM_CHECK(save_chain(path, c));
  return path;
}

Result<ChainDescriptor> freeze_chain(const std::string& chain_path) {
  const std::string path = chain_file(chain_path);
  ChainDescriptor c = FORKVM_TRY(load_chain(path));
  const UniqueFd locked = FORKVM_TRY(lock_top(path, c, O_RDONLY));
  if (c.layers.size() >= kMaxChainLayers)
    return make_error("chain {} has {} layers: flatten it", path, c.layers.size());
  ChainDescriptor frozen = c;
  c.layers.push_back(FORKVM_TRY(create_layer(c.layers_root, c.size, c.cluster_shift, path)));
  FORKVM_CHECK(save_chain(path, c));
  return frozen;
}

Status discard_top(const std::string& chain_path) {
  const std::string path = chain_file(chain_path);
  ChainDescriptor c = FORKVM_TRY(load_chain(path));
  const std::string old_top = c.layers.back();
  const UniqueFd locked = FORKVM_TRY(lock_top(path, c, O_RDONLY));
  c.layers.back() = FORKVM_TRY(create_layer(c.layers_root, c.size, c.cluster_shift, path));
  FORKVM_CHECK(save_chain(path, c));
  return release(c.layers_root, old_top, path);
}

Status grow_chain(const std::string& chain_path, uint64_t new_size) {
  const std::string path = chain_file(chain_path);
  ChainDescriptor c = FORKVM_TRY(load_chain(path));
  FORKVM_CHECK(check_grow(c, new_size).context(path));
  if (new_size == c.size) return {};
  const UniqueFd top = FORKVM_TRY(lock_top(path, c, O_RDWR));
  if (::ftruncate(top.get(), static_cast<off_t>(new_size)) != 0)
    return errno_error(fmt::format("grow the top layer of {} to {} bytes", path, new_size));
  c.size = new_size;
  return save_chain(path, c);  // the top layer's map grows when the chain is next opened
}

Status retain_chain(const ChainDescriptor& chain, const std::string& holder) {
  for (const auto& id : chain.layers) FORKVM_CHECK(retain(chain.layers_root, id, holder));
  return {};
}

Status release_chain(const ChainDescriptor& chain, const std::string& holder) {
  for (const auto& id : chain.layers) FORKVM_CHECK(release(chain.layers_root, id, holder));
  return {};
}

Result<std::string> fork_chain_from(const ChainDescriptor& frozen, const std::string& dir) {
  if (frozen.layers.size() >= kMaxChainLayers)
    return make_error("the chain has {} layers: flatten it", frozen.layers.size());
  const std::string path = FORKVM_TRY(new_chain_file(dir));
  // Hold the shared layers before anything names them.
  FORKVM_CHECK(retain_chain(frozen, path));
  ChainDescriptor c = frozen;
  c.layers.push_back(FORKVM_TRY(create_layer(c.layers_root, c.size, c.cluster_shift, path)));
  FORKVM_CHECK(save_chain(path, c));
  return path;
}

Result<std::string> fork_chain(const std::string& chain_path, const std::string& dir) {
  const ChainDescriptor frozen = FORKVM_TRY(freeze_chain(chain_path));
  return fork_chain_from(frozen, dir);
}

Status delete_chain(const std::string& chain_path) {
  const std::string path = chain_file(chain_path);
  const ChainDescriptor c = FORKVM_TRY(load_chain(path));
  FORKVM_CHECK(release_chain(c, path));
  if (::unlink(path.c_str()) != 0) return errno_error(fmt::format("remove {}", path));
  return {};
}

Result<std::string> flatten_chain(const std::string& chain_path, const std::string& out_dir) {
  auto src = FORKVM_TRY(LayeredDisk::open(chain_path, true));
  const ChainDescriptor& sc = src->chain();
  CreateOptions o;
  o.base = sc.base;
  o.size = sc.size;
  o.cluster_shift = sc.cluster_shift;
  const std::string out_path = FORKVM_TRY(create_chain(out_dir, o));
  {
    auto out = FORKVM_TRY(LayeredDisk::open(out_path, false));
    FORKVM_CHECK(copy_layer_clusters(*src, *out));
  }
  return out_path;
}

Result<size_t> flatten_chain_in_place(const std::string& chain_path) {
  const std::string path = chain_file(chain_path);
  // Open read-only, the source share-locks every layer: a running VM (which
  // holds its top exclusively) makes this fail, and no VM can open the chain
  // for writing until the descriptor names the merged layer.
  auto src = FORKVM_TRY(LayeredDisk::open(path, true));
  const ChainDescriptor old = src->chain();
  if (old.layers.size() <= 1) return old.layers.size();
  // Until the switch the new layer is held under a name of its own, so that
  // a crash leaves the old chain whole and the new layer collectable.
  const std::string staging = path + ".flatten";
  const std::string id = FORKVM_TRY(create_layer(old.layers_root, old.size, old.cluster_shift, staging));
  ChainDescriptor merged = old;
  merged.layers = {id};
  {
    const std::string merged_path = path + ".flat";
    FORKVM_CHECK(save_chain(merged_path, merged));
    auto out = LayeredDisk::open(merged_path, false);
    ::unlink(merged_path.c_str());
    if (!out.ok()) return out.error();
    FORKVM_CHECK(copy_layer_clusters(*src, **out));
  }
  FORKVM_CHECK(retain(old.layers_root, id, path));
  FORKVM_CHECK(save_chain(path, merged));
  FORKVM_CHECK(release(old.layers_root, id, staging));
  FORKVM_CHECK(release_chain(old, path));
  return old.layers.size();
}

Status export_raw(const std::string& chain_path, const std::string& out_file) {
  auto src = FORKVM_TRY(LayeredDisk::open(chain_path, true));
  UniqueFd fd(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create {}", out_file));
  std::vector<uint8_t> buf(1 << 20);
  for (uint64_t at = 0; at < src->size(); at += buf.size()) {
    const uint64_t n = std::min<uint64_t>(buf.size(), src->size() - at);
    const iovec v{buf.data(), n};
    FORKVM_CHECK(src->read(at, {&v, 1}));
    // All-zero chunks stay holes.
    if (std::all_of(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n), [](uint8_t b) { return b == 0; }))
      continue;
    FORKVM_CHECK(pwrite_full(fd.get(), buf.data(), n, at).context(out_file));
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(src->size())) != 0)
    return errno_error(fmt::format("size {}", out_file));
  if (::fdatasync(fd.get()) != 0) return errno_error(fmt::format("fdatasync {}", out_file));
  return {};
}

Result<std::string> chain_info(const std::string& chain_path) {
  const std::string path = chain_file(chain_path);
  const ChainDescriptor c = FORKVM_TRY(load_chain(path));
  std::string s =
      fmt::format("chain {}\nsize {} bytes, clusters of {} bytes\nbase {}\nlayers root {}\n", path, c.size,
                  uint64_t{1} << c.cluster_shift, c.base.empty() ? "(none: zeros)" : c.base, c.layers_root);
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const std::string& id = c.layers[i];
    auto map = LayerMap::load(layer_map_path(c.layers_root, id));
    auto who = holders(c.layers_root, id);
    s += fmt::format("layer {} {}{}: ", i, id, i + 1 == c.layers.size() ? " (top, writable)" : " (frozen)");
    s += map ? fmt::format("{} clusters", map->allocated()) : map.error().message;
    if (who) {
      s += fmt::format(", {} holder(s)", who->size());
      for (const auto& h : *who) s += "\n    held by " + h;
    }
    s += "\n";
  }
  return s;
}

}  // namespace forkvm::storage
