#include "devices/storage/chain_descriptor.hpp"

#include <charconv>
#include <filesystem>

#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_map.hpp"
#include "devices/storage/layer_store.hpp"

namespace forkvm::storage {
namespace {

constexpr uint64_t kMaxDescriptorBytes = 1 << 20;

Result<uint64_t> parse_u64(std::string_view s, std::string_view what, std::string_view name) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
    return make_error("chain {}: {} '{}' is not a number", name, what, s);
  }
  return v;
}

}  // namespace

Result<ChainDescriptor> parse_chain(std::string_view text, std::string_view name) {
  ChainDescriptor c;
  bool have_size = false;
  bool have_shift = false;
  bool have_root = false;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    const size_t sp = line.find(' ');
    const std::string_view key = line.substr(0, sp);
    const std::string_view value = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    if (line_no == 1) {
      if (key != "forkvm-chain") return make_error("chain {}: not a forkvm chain descriptor", name);
      const uint64_t v = FORKVM_TRY(parse_u64(value, "version", name));
      if (v != kChainVersion) {
        return make_error("chain {}: format version {}, this forkvm reads version {}", name, v,
                          kChainVersion);
      }
      continue;
    }
    if (key == "size") {
      c.size = FORKVM_TRY(parse_u64(value, "size", name));
      have_size = true;
    } else if (key == "cluster-shift") {
      const uint64_t v = FORKVM_TRY(parse_u64(value, "cluster-shift", name));
      if (v < kMinClusterShift || v > kMaxClusterShift)
        return make_error("chain {}: cluster-shift {} out of range", name, v);
      c.cluster_shift = static_cast<uint32_t>(v);
      have_shift = true;
    } else if (key == "base") {
      c.base = std::string(value);
    } else if (key == "base-size") {
      c.base_size = FORKVM_TRY(parse_u64(value, "base-size", name));
    } else if (key == "layers-root") {
      c.layers_root = std::string(value);
      have_root = !value.empty();
    } else if (key == "layer") {
      if (!valid_layer_id(value))
        return make_error("chain {}: bad layer id '{}' on line {}", name, value, line_no);
      if (c.layers.size() == kMaxChainLayers)
        return make_error("chain {}: more than {} layers", name, kMaxChainLayers);
      c.layers.emplace_back(value);
    } else {
      return make_error("chain {}: unknown line {}: '{}'", name, line_no, line.substr(0, 40));
    }
  }
  if (line_no == 0) return make_error("chain {}: empty file", name);
  if (!have_size || !have_shift || !have_root)
    return make_error("chain {}: size, cluster-shift or layers-root missing", name);
  if (c.layers.empty()) return make_error("chain {}: no layers", name);
  if (c.base.empty() != (c.base_size == 0))
    return make_error("chain {}: base and base-size go together", name);
  if (auto m = LayerMap::create(c.size, c.cluster_shift); !m)
    return m.error().context(fmt::format("chain {}", name));
  return c;
}

std::string encode_chain(const ChainDescriptor& c) {
  std::string s =
      fmt::format("forkvm-chain {}\nsize {}\ncluster-shift {}\n", kChainVersion, c.size, c.cluster_shift);
  if (!c.base.empty()) s += fmt::format("base {}\nbase-size {}\n", c.base, c.base_size);
  s += fmt::format("layers-root {}\n", c.layers_root);
  for (const auto& id : c.layers) s += fmt::format("layer {}\n", id);
  return s;
}

Result<ChainDescriptor> load_chain(const std::string& path) {
  const auto bytes = FORKVM_TRY(read_file(path, kMaxDescriptorBytes));
  return parse_chain(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
}

Status save_chain(const std::string& path, const ChainDescriptor& chain) {
  const std::string text = encode_chain(chain);
  return write_file_atomic(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

Status check_grow(const ChainDescriptor& chain, uint64_t new_size) {
  if (new_size < chain.size)
    return make_error("a disk cannot shrink ({} bytes to {}): only growing is supported", chain.size,
                      new_size);
  if (new_size % 512 != 0) return make_error("a disk size must be whole 512-byte sectors, not {}", new_size);
  const uint64_t cluster = uint64_t{1} << chain.cluster_shift;
  if (new_size > chain.size && chain.size % cluster != 0) {
    return make_error("the disk's {} bytes are not whole {}-byte clusters, so it cannot grow", chain.size,
                      cluster);
  }
  return {};
}

std::string chain_file(const std::string& dir_or_file) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir_or_file, ec);
  if (ec) p = dir_or_file;
  if (std::filesystem::is_directory(p, ec)) p /= "chain";
  return p.lexically_normal().string();
}

}  // namespace forkvm::storage
