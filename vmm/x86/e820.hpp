// The guest's physical memory map as the BIOS e820 call would report it.
// Linux boot (zero page) and PVH (hvm_start_info memmap) both carry it.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::x86 {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;
  bool operator==(const E820Entry&) const = default;
};

// RAM [0, EBDA), reserved EBDA, reserved BIOS/ACPI area [0xE0000, 1 MiB),
// RAM [1 MiB, min(mem, 3 GiB)), and RAM from 4 GiB for what lies above the
// MMIO hole. Matches GuestMemory::create_anonymous(mem_size). Refuses sizes
// that leave no RAM above 1 MiB.
[[nodiscard]] Result<std::vector<E820Entry>> build_e820(uint64_t mem_size);

}  // namespace forkvm::x86
