// The "zero page" (struct boot_params) of the Linux x86 boot protocol, and
// where the initrd goes. Pure: the caller writes the result to
// lowmem::kZeroPage.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/x86/e820.hpp"

namespace forkvm::x86 {

inline constexpr uint8_t kLoaderTypeUndefined = 0xff;  // "no registered boot loader id"
inline constexpr uint16_t kVidModeNormal = 0xffff;     // "normal" text mode, no prompt
// Linux's default when the header does not say (vmlinux, or protocol < 2.03).
inline constexpr uint32_t kDefaultInitrdAddrMax = 0x37ffffff;
inline constexpr uint32_t kDefaultCmdlineMax = 2047;  // COMMAND_LINE_SIZE 2048 minus the NUL

struct ZeroPageConfig {
  const setup_header* header = nullptr;  // the bzImage's header; null for an ELF vmlinux
  uint64_t cmdline_addr = 0;
  uint32_t cmdline_size = 0;  // bytes, without the NUL
  uint64_t initrd_addr = 0;
  uint64_t initrd_size = 0;
  std::vector<E820Entry> e820;
  uint64_t acpi_rsdp_addr = 0;  // 0: the kernel scans the BIOS area for "RSD PTR "
};

[[nodiscard]] Result<boot_params> build_zero_page(const ZeroPageConfig& config);

// The page-aligned address for an initrd of `size` bytes as high as
// possible in low RAM (below the MMIO hole and `addr_max`), but above
// `kernel_end`. Refuses when it does not fit.
[[nodiscard]] Result<uint64_t> place_initrd(uint64_t size, uint64_t mem_size, uint64_t kernel_end,
                                            uint64_t addr_max);

}  // namespace forkvm::x86
