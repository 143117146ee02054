#include "vmm/x86/boot_params.hpp"

#include <algorithm>
#include <cstring>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/bzimage.hpp"

namespace forkvm::x86 {

Result<boot_params> build_zero_page(const ZeroPageConfig& config) {
  boot_params bp{};
  if (config.header != nullptr) {
    // The boot protocol: copy the image's setup header verbatim, then fill
    // in the fields marked "write" for the boot loader.
    bp.hdr = *config.header;
  } else {
    // A vmlinux has no header; the 64-bit entry still reads these fields.
    bp.hdr.boot_flag = kBootFlagMagic;
    bp.hdr.header = kHdrSMagic;
    bp.hdr.kernel_alignment = 0x100'0000;  // CONFIG_PHYSICAL_ALIGN's usual 16 MiB
  }
  bp.hdr.type_of_loader = kLoaderTypeUndefined;
  bp.hdr.vid_mode = kVidModeNormal;
  bp.hdr.cmd_line_ptr = static_cast<uint32_t>(config.cmdline_addr);
  bp.ext_cmd_line_ptr = static_cast<uint32_t>(config.cmdline_addr >> 32);
  if (config.header == nullptr) bp.hdr.cmdline_size = config.cmdline_size;
  if (config.initrd_size != 0) {
    bp.hdr.ramdisk_image = static_cast<uint32_t>(config.initrd_addr);
    bp.hdr.ramdisk_size = static_cast<uint32_t>(config.initrd_size);
    bp.ext_ramdisk_image = static_cast<uint32_t>(config.initrd_addr >> 32);
    bp.ext_ramdisk_size = static_cast<uint32_t>(config.initrd_size >> 32);
  }
  if (config.e820.size() > E820_MAX_ENTRIES_ZEROPAGE) {
    return make_error("e820 map of {} entries exceeds the zero page's {}", config.e820.size(),
                      E820_MAX_ENTRIES_ZEROPAGE);
  }
  for (size_t i = 0; i < config.e820.size(); ++i) {
    bp.e820_table[i].addr = config.e820[i].addr;
    bp.e820_table[i].size = config.e820[i].size;
    bp.e820_table[i].type = config.e820[i].type;
  }
  bp.e820_entries = static_cast<uint8_t>(config.e820.size());
  bp.acpi_rsdp_addr = config.acpi_rsdp_addr;
  return bp;
}

Result<uint64_t> place_initrd(uint64_t size, uint64_t mem_size, uint64_t kernel_end, uint64_t addr_max) {
  constexpr uint64_t kPage = 4096;
  // addr_max is the highest byte address the initrd may occupy.
  const uint64_t top = std::min({mem_size, layout::kMmioHoleStart, addr_max + 1});
  const uint64_t floor = (kernel_end + kPage - 1) & ~(kPage - 1);
  if (size == 0 || size > top || ((top - size) & ~(kPage - 1)) < floor) {
    return make_error("initrd of {} KiB does not fit between the kernel's end at {:#x} and {:#x}", size >> 10,
                      kernel_end, top);
  }
  return (top - size) & ~(kPage - 1);
}

}  // namespace forkvm::x86
