#include "vmm/x86/bzimage.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {
namespace {

setup_header read_header(std::span<const uint8_t> image) {
  setup_header h{};
  const size_t n = std::min(sizeof(h), image.size() - kSetupHeaderOffset);
  std::memcpy(&h, image.data() + kSetupHeaderOffset, n);
  return h;
}

}  // namespace

bool looks_like_bzimage(std::span<const uint8_t> image) {
  if (image.size() < kSetupHeaderOffset + sizeof(setup_header)) return false;
  const setup_header h = read_header(image);
  return h.boot_flag == kBootFlagMagic && h.header == kHdrSMagic;
}

Result<BzImage> parse_bzimage(std::span<const uint8_t> image) {
  if (!looks_like_bzimage(image)) return make_error("not a bzImage: no 0xAA55 boot flag and \"HdrS\" header");
  BzImage bz;
  bz.header = read_header(image);
  const setup_header& h = bz.header;
  if (h.version < kMinBootProtocol) {
    return make_error("bzImage boot protocol {}.{:02x} is older than 2.12, which has no 64-bit entry",
                      h.version >> 8, h.version & 0xff);
  }
  if ((h.xloadflags & XLF_KERNEL_64) == 0)
    return make_error("bzImage has no 64-bit entry point (XLF_KERNEL_64)");
  if ((h.loadflags & LOADED_HIGH) == 0)
    return make_error("bzImage is a zImage (not LOADED_HIGH); only bzImage loads at 1 MiB");
  // setup_sects == 0 means 4, for compatibility with ancient images.
  const uint64_t setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
  const uint64_t setup_size = (setup_sects + 1) * 512;
  if (setup_size >= image.size()) {
    return make_error("bzImage of {} bytes is shorter than its {} setup sectors", image.size(), setup_sects);
  }
  bz.kernel = image.subspan(setup_size);
  // A relocatable kernel loaded at its preferred address decompresses in
  // place instead of moving itself; others must go where code32_start says
  // (1 MiB on every bzImage).
  const bool relocatable = h.relocatable_kernel != 0;
  bz.load_addr = relocatable && h.pref_address >= lowmem::kHighMem ? h.pref_address : h.code32_start;
  if (bz.load_addr < lowmem::kHighMem) {
    return make_error("bzImage wants to load at {:#x}, below 1 MiB where the boot data lives", bz.load_addr);
  }
  bz.entry64 = bz.load_addr + kEntry64Offset;
  bz.init_size = std::max<uint64_t>(h.init_size, bz.kernel.size());
  bz.cmdline_max = h.cmdline_size;
  bz.initrd_addr_max = h.initrd_addr_max;
  return bz;
}

}  // namespace forkvm::x86
