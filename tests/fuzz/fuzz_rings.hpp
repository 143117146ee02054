// Shared by the virtqueue fuzz targets: lays the fuzz input out as a guest's
// descriptor table, avail ring and buffers in a real GuestMemory, so each
// target only says which device processes the queue.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "vmm/guest_memory.hpp"

namespace forkvm::fuzz {

// Copies up to `max` bytes of the remaining input to `gpa` and consumes them.
inline void copy_in(const GuestMemory& mem, uint64_t gpa, const uint8_t*& data, size_t& size, uint64_t max) {
  const size_t n = static_cast<size_t>(std::min<uint64_t>(size, max));
  if (n > 0 && !mem.write(gpa, {data, n})) std::abort();  // the caller's layout is always in memory
  data += n;
  size -= n;
}

// Zeroes [0, mem_size), then fills the descriptor table, the avail ring and
// the data area [data_gpa, data_end) from the input, in that order.
inline void load_rings(const GuestMemory& mem, uint64_t mem_size, uint16_t queue_size, uint64_t desc_gpa,
                       uint64_t avail_gpa, uint64_t data_gpa, uint64_t data_end, const uint8_t* data,
                       size_t size) {
  std::memset(mem.host_ptr(0, mem_size), 0, mem_size);
  copy_in(mem, desc_gpa, data, size, uint64_t{16} * queue_size);
  copy_in(mem, avail_gpa, data, size, 6 + uint64_t{2} * queue_size);
  copy_in(mem, data_gpa, data, size, data_end - data_gpa);
}

}  // namespace forkvm::fuzz
