// Shared by the layered-disk unit tests: temporary directories, byte
// patterns, and a base image with a chain over it.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "devices/storage/chain_ops.hpp"
#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_map.hpp"
#include "devices/storage/layer_store.hpp"
#include "devices/storage/layered_blk_backend.hpp"
#include "devices/storage/layered_disk.hpp"

namespace forkvm::storage::testing {

namespace fs = std::filesystem;

inline constexpr uint64_t kCluster = 64 * 1024;
inline constexpr uint64_t kBaseBytes = 1024 * 1024 + 4096;  // 17 clusters, the last one partial

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/forkvm-layer-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

inline std::vector<uint8_t> pattern(uint64_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 31 + seed + (i >> 9));
  return v;
}

inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite_full(fd, bytes.data(), bytes.size(), 0).ok());
  ::close(fd);
}

inline std::vector<uint8_t> slurp(const std::string& path) { return read_file(path, 1ULL << 30).value(); }

inline std::vector<uint8_t> read_disk(LayeredDisk& d, uint64_t offset, uint64_t len) {
  std::vector<uint8_t> out(len, 0xcc);
  const iovec v{out.data(), len};
  REQUIRE(d.read(offset, {&v, 1}).ok());
  return out;
}

inline void write_disk(LayeredDisk& d, uint64_t offset, const std::vector<uint8_t>& bytes) {
  const iovec v{const_cast<uint8_t*>(bytes.data()), bytes.size()};
  REQUIRE(d.write(offset, {&v, 1}).ok());
}

// A base image with a known pattern and a chain over it in DIR/vm.
struct World {
  TempDir tmp;
  std::string base = tmp.path + "/base.img";
  std::vector<uint8_t> base_bytes = pattern(kBaseBytes, 7);
  std::string chain;
  World() {
    write_file(base, base_bytes);
    CreateOptions o;
    o.base = base;
    o.layers_root = tmp.path + "/layers";
    chain = create_chain(tmp.path + "/vm", o).value();
  }
  std::string root() const { return tmp.path + "/layers"; }
  // Another chain over the same base, of `size` bytes, in DIR/NAME.
  std::string sized_chain(const std::string& name, uint64_t size) const {
    CreateOptions o;
    o.base = base;
    o.layers_root = root();
    o.size = size;
    return create_chain(tmp.path + "/" + name, o).value();
  }
};

}  // namespace forkvm::storage::testing
