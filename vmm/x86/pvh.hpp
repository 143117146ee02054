// The Xen PVH boot ABI as Linux implements it (arch/x86/platform/pvh):
// the kernel enters at its PHYS32_ENTRY note in 32-bit protected mode with
// paging off and EBX pointing at an hvm_start_info. These structs mirror
// xen/include/public/arch-x86/hvm/start_info.h, version 1.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"
#include "vmm/x86/e820.hpp"

namespace forkvm::x86 {

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;

struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;  // version >= 1
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // e820 types
  uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

struct PvhConfig {
  uint64_t cmdline_addr = 0;
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;  // 0: no module
  std::vector<E820Entry> e820;
  uint64_t rsdp_addr = 0;
};

// Writes start_info, the module list and the memory map at their lowmem
// addresses. Returns the start_info address for EBX.
[[nodiscard]] Result<uint64_t> write_pvh_start_info(const GuestMemory& memory, const PvhConfig& config);

}  // namespace forkvm::x86
