// Address-range dispatch for MMIO and port I/O exits. Ranges are added while
// the machine is being built and never change afterwards, so lookups from
// vCPU threads take no lock; each device serialises its own state.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  // `offset` is relative to the range's base. data.size() is 1, 2, 4 or 8.
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus {
 public:
  // Refuses zero-length, wrapping and overlapping ranges.
  Status add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device);

  // false when no device covers the whole access; the caller decides what an
  // unclaimed access means (reads of nothing return all-ones on real buses).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t base;
    uint64_t size;
    std::shared_ptr<BusDevice> device;
  };
  [[nodiscard]] const Range* find(uint64_t addr, uint64_t len) const;

  std::vector<Range> ranges_;  // sorted by base
};

}  // namespace forkvm
