#include "vmm/x86/vmgenid.hpp"

#include <sys/random.h>

#include <array>

#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {

Status write_new_vm_generation_id(const GuestMemory& memory) {
  std::array<uint8_t, lowmem::kVmGenIdSize> id{};
  if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size()))
    return errno_error("VM generation ID: getrandom");
  if (!memory.write(lowmem::kVmGenId, id))
    return make_error("write the VM generation ID at {:#x}", lowmem::kVmGenId);
  return {};
}

}  // namespace forkvm::x86
