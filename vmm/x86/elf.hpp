// Loads an uncompressed x86-64 `vmlinux` ELF: PT_LOAD segments at their
// physical addresses, bounds-checked against guest RAM, and the Xen PVH
// entry note when the kernel was built with CONFIG_PVH.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace forkvm::x86 {

// XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit physical PVH entry point.
inline constexpr uint32_t kXenElfNotePhys32Entry = 18;

struct ElfKernel {
  uint64_t entry = 0;                 // e_entry: physical for vmlinux (phys_startup_64)
  std::optional<uint64_t> pvh_entry;  // from the PVH note, if any
  uint64_t load_start = 0;            // lowest p_paddr
  uint64_t load_end = 0;              // highest p_paddr + p_memsz
};

[[nodiscard]] bool looks_like_elf(std::span<const uint8_t> image);

// Validates every header and segment before writing anything, so a refused
// image leaves guest memory untouched. Segments must lie wholly in RAM at or
// above 1 MiB (below it is the boot data, see layout.hpp).
[[nodiscard]] Result<ElfKernel> load_elf(std::span<const uint8_t> image, const GuestMemory& memory);

}  // namespace forkvm::x86
