// The Linux x86 boot protocol's setup header in a bzImage
// (Documentation/arch/x86/boot.rst): validated and turned into where the
// protected-mode kernel goes and where the 64-bit entry point is.
#pragma once

#include <asm/bootparam.h>

#include <cstdint>
#include <span>

#include "vmm/result.hpp"

namespace forkvm::x86 {

inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootFlagMagic = 0xAA55;
inline constexpr uint32_t kSetupHeaderOffset = 0x1f1;
// 2.12 added xloadflags, and with it XLF_KERNEL_64: the 64-bit entry at
// load address + 0x200 that we jump to from long mode.
inline constexpr uint16_t kMinBootProtocol = 0x20c;
inline constexpr uint64_t kEntry64Offset = 0x200;

struct BzImage {
  setup_header header{};            // as found in the image, to copy into the zero page
  std::span<const uint8_t> kernel;  // the protected-mode part, after the setup sectors
  uint64_t load_addr = 0;           // where `kernel` goes in guest memory
  uint64_t entry64 = 0;             // load_addr + 0x200
  uint64_t init_size = 0;           // memory the kernel needs from load_addr while it decompresses
  uint32_t cmdline_max = 0;         // longest command line, without the NUL
  uint32_t initrd_addr_max = 0;     // highest address the initrd may end at
};

// True when the image carries the boot sector and "HdrS" magics.
[[nodiscard]] bool looks_like_bzimage(std::span<const uint8_t> image);
[[nodiscard]] Result<BzImage> parse_bzimage(std::span<const uint8_t> image);

}  // namespace forkvm::x86
