// The VM generation ID: 16 random bytes at lowmem::kVmGenId that change
// whenever the guest may be running a second time from the same state (a
// restore, a fork child). Linux's vmgenid driver finds them through the
// DSDT's \_SB.VGEN, and on the GED's notify (acpi.hpp, kGedGsi) reseeds its
// RNG at once, so copies of one snapshot do not share random numbers.
#pragma once

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace forkvm::x86 {

// Writes a new random generation ID; the caller then raises kGedGsi (after
// the irqchip is in place) so the running guest reads it.
[[nodiscard]] Status write_new_vm_generation_id(const GuestMemory& memory);

}  // namespace forkvm::x86
