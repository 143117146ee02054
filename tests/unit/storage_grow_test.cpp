// Growing a layered disk, online (LayeredDisk::grow) and offline (grow_chain).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "devices/storage/chain_ops.hpp"
#include "devices/storage/layer_map.hpp"
#include "devices/storage/layer_store.hpp"
#include "devices/storage/layered_disk.hpp"
#include "tests/unit/storage_test_world.hpp"

namespace forkvm::storage {
namespace {

using namespace testing;  // NOLINT(google-build-using-namespace): the shared fixtures

constexpr uint64_t kMiB = 1024 * 1024;

TEST_CASE("layered disk: grows online; old bytes stay, the new range is zeros and writable") {
  World w;
  const std::string chain = w.sized_chain("big", 2 * kMiB);
  const auto head = pattern(kCluster, 3);
  const auto tail = pattern(4096, 4);
  const auto fresh = pattern(8192, 5);
  auto d = LayeredDisk::open(chain, false).value();
  write_disk(*d, 0, head);
  write_disk(*d, 2 * kMiB - 4096, tail);
  REQUIRE(d->freeze().ok());  // the lower layer keeps its 2 MiB map
  write_disk(*d, 2 * kMiB - 8192, tail);

  REQUIRE(d->grow(4 * kMiB).ok());
  CHECK(d->size() == 4 * kMiB);
  CHECK(load_chain(chain)->size == 4 * kMiB);
  CHECK(read_disk(*d, 2 * kMiB, 2 * kMiB) == std::vector<uint8_t>(2 * kMiB, 0));
  write_disk(*d, 3 * kMiB + 512, fresh);
  CHECK(read_disk(*d, 0, kCluster) == head);
  CHECK(read_disk(*d, 2 * kMiB - 4096, 4096) == tail);
  CHECK(read_disk(*d, 3 * kMiB + 512, 8192) == fresh);

  const auto shrink = d->grow(3 * kMiB);
  REQUIRE_FALSE(shrink.ok());
  CHECK(shrink.error().message.find("cannot shrink") != std::string::npos);
  const auto odd = d->grow(5 * kMiB + 100);
  REQUIRE_FALSE(odd.ok());
  CHECK(odd.error().message.find("sectors") != std::string::npos);
  CHECK(d->size() == 4 * kMiB);  // a refusal changes nothing

  d.reset();
  auto again = LayeredDisk::open(chain, false).value();
  CHECK(again->size() == 4 * kMiB);
  CHECK(read_disk(*again, 0, kCluster) == head);
  CHECK(read_disk(*again, 3 * kMiB + 512, 8192) == fresh);
  CHECK(read_disk(*again, 2 * kMiB, 4096) == std::vector<uint8_t>(4096, 0));
}

TEST_CASE(
    "offline grow: refused while open or from a partial cluster; the top map follows at the next open") {
  World w;
  const std::string chain = w.sized_chain("big", 2 * kMiB);
  {
    auto d = LayeredDisk::open(chain, false).value();
    const auto busy = grow_chain(chain, 4 * kMiB);
    REQUIRE_FALSE(busy.ok());
    CHECK(busy.error().message.find("in use") != std::string::npos);
  }
  REQUIRE(grow_chain(chain, 8 * kMiB).ok());
  const auto c = load_chain(chain).value();
  CHECK(c.size == 8 * kMiB);
  const std::string top_map = layer_map_path(c.layers_root, c.layers.back());
  CHECK(LayerMap::load(top_map)->virtual_size() == 2 * kMiB);
  {
    auto d = LayeredDisk::open(chain, false).value();
    write_disk(*d, 7 * kMiB, pattern(4096, 9));
    REQUIRE(d->flush().ok());
  }
  CHECK(LayerMap::load(top_map)->virtual_size() == 8 * kMiB);
  CHECK(LayerMap::load(top_map)->test(7 * kMiB / kCluster));
  // The world's chain ends in a partial cluster (kBaseBytes).
  const auto partial = grow_chain(w.chain, 4 * kMiB);
  REQUIRE_FALSE(partial.ok());
  CHECK(partial.error().message.find("clusters") != std::string::npos);
}

}  // namespace
}  // namespace forkvm::storage
