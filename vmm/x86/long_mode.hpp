// CPU state for the first guest instruction: the GDT and identity page
// tables written into guest memory, and the sregs/regs for the Linux 64-bit
// boot protocol (long mode, paging on) or PVH (32-bit protected mode,
// paging off). Pure apart from the guest-memory writes.
#pragma once

#include <linux/kvm.h>

#include <array>
#include <cstdint>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace forkvm::x86 {

// Selectors the Linux boot protocol names: __BOOT_CS = 0x10 and
// __BOOT_DS = 0x18. 0x08 is a flat 32-bit code segment for PVH entry.
inline constexpr uint16_t kSelCode32 = 0x08;
inline constexpr uint16_t kSelCode64 = 0x10;
inline constexpr uint16_t kSelData = 0x18;
inline constexpr uint16_t kSelTss = 0x20;

// The GDT: null, code32, code64, data, TSS (descriptor encoding).
[[nodiscard]] std::array<uint64_t, 5> boot_gdt();
// A kvm_segment equivalent to what loading `selector` from `gdt` would give.
[[nodiscard]] kvm_segment segment_from_gdt(uint64_t descriptor, uint16_t selector);

// Writes GDT, empty IDT, and an identity map of the first 4 GiB in 2 MiB
// pages (PML4 -> one PDPT -> four PDs). 4 GiB covers the kernel, zero page,
// command line and initrd wherever they land in low RAM.
[[nodiscard]] Status write_boot_tables(const GuestMemory& memory);

// Long mode with paging through the tables above; CS = 0x10, DS/ES/SS = 0x18.
void setup_long_mode_sregs(kvm_sregs& sregs);
// 32-bit flat protected mode, paging off: CS = 0x08, DS/ES/SS = 0x18.
void setup_protected_mode_sregs(kvm_sregs& sregs);

// RIP = entry, RSI = zero page, RSP/RBP = boot stack, RFLAGS = 2 (IF off).
[[nodiscard]] kvm_regs long_mode_regs(uint64_t entry, uint64_t zero_page);
// EIP = entry, EBX = hvm_start_info, RFLAGS = 2.
[[nodiscard]] kvm_regs pvh_regs(uint64_t entry, uint64_t start_info);

}  // namespace forkvm::x86
