#include "vmm/x86/pvh.hpp"

#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {

Result<uint64_t> write_pvh_start_info(const GuestMemory& memory, const PvhConfig& config) {
  if (config.e820.size() > lowmem::kPvhMemmapMaxEntries) {
    return make_error("PVH memory map of {} entries exceeds the {} reserved for it", config.e820.size(),
                      lowmem::kPvhMemmapMaxEntries);
  }
  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = config.cmdline_addr;
  info.rsdp_paddr = config.rsdp_addr;
  info.memmap_paddr = lowmem::kPvhMemmap;
  info.memmap_entries = static_cast<uint32_t>(config.e820.size());
  if (config.initrd_size != 0) {
    // Linux takes the first module as its initrd.
    info.nr_modules = 1;
    info.modlist_paddr = lowmem::kPvhModlist;
    const HvmModlistEntry mod{config.initrd_addr, config.initrd_size, 0, 0};
    if (!memory.write_obj(lowmem::kPvhModlist, mod)) return make_error("write PVH module list");
  }
  for (size_t i = 0; i < config.e820.size(); ++i) {
    const HvmMemmapEntry e{config.e820[i].addr, config.e820[i].size, config.e820[i].type, 0};
    if (!memory.write_obj(lowmem::kPvhMemmap + i * sizeof(HvmMemmapEntry), e)) {
      return make_error("write PVH memory map");
    }
  }
  if (!memory.write_obj(lowmem::kPvhStartInfo, info)) return make_error("write PVH start info");
  return lowmem::kPvhStartInfo;
}

}  // namespace forkvm::x86
