#include "vmm/x86/e820.hpp"

#include <algorithm>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {

Result<std::vector<E820Entry>> build_e820(uint64_t mem_size) {
  if (mem_size <= lowmem::kHighMem) {
    return make_error("guest memory of {} KiB leaves no RAM above 1 MiB for the kernel", mem_size >> 10);
  }
  std::vector<E820Entry> map;
  map.push_back({0, lowmem::kEbda, kE820Ram});
  // The EBDA and the BIOS area are not RAM on a PC; the ACPI tables live in
  // the latter, so it must stay out of the kernel's page allocator.
  map.push_back({lowmem::kEbda, lowmem::kLegacyHole - lowmem::kEbda, kE820Reserved});
  map.push_back({lowmem::kAcpi, lowmem::kAcpiEnd - lowmem::kAcpi, kE820Reserved});
  const uint64_t low_end = std::min(mem_size, layout::kMmioHoleStart);
  map.push_back({lowmem::kHighMem, low_end - lowmem::kHighMem, kE820Ram});
  if (mem_size > layout::kMmioHoleStart) {
    map.push_back({layout::kMmioHoleEnd, mem_size - layout::kMmioHoleStart, kE820Ram});
  }
  return map;
}

}  // namespace forkvm::x86
