#include "vmm/bus.hpp"

#include <algorithm>

namespace forkvm {

Status Bus::add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device) {
  if (size == 0) return make_error("bus range at {:#x} has zero length", base);
  if (base + size < base) return make_error("bus range {:#x}+{:#x} wraps", base, size);
  for (const auto& r : ranges_) {
    if (base < r.base + r.size && r.base < base + size) {
      return make_error("bus range {:#x}+{:#x} overlaps {:#x}+{:#x}", base, size, r.base, r.size);
    }
  }
  auto pos = std::upper_bound(ranges_.begin(), ranges_.end(), base,
                              [](uint64_t b, const Range& r) { return b < r.base; });
  ranges_.insert(pos, Range{base, size, std::move(device)});
  return {};
}

const Bus::Range* Bus::find(uint64_t addr, uint64_t len) const {
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (addr - it->base >= it->size || len > it->size - (addr - it->base)) return nullptr;
  return &*it;
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  const Range* r = find(addr, data.size());
  if (r == nullptr) return false;
  r->device->read(addr - r->base, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  const Range* r = find(addr, data.size());
  if (r == nullptr) return false;
  r->device->write(addr - r->base, data);
  return true;
}

}  // namespace forkvm
