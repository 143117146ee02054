// The guest's low-memory map at boot: every fixed address the VMM writes
// before the first instruction, in one place so nothing overlaps.
//
//   0x0000_0500  GDT (5 entries)              0x0000_0520  IDT (empty, limit 7)
//   0x0000_6000  PVH hvm_start_info           0x0000_6040  PVH module list (initrd)
//   0x0000_6080  PVH memory map (<=128 entries, ends below 0x7000)
//   0x0000_7000  zero page (struct boot_params, 4 KiB)
//   0x0000_8ff0  initial stack pointer (grows down, below the page tables)
//   0x0000_9000  PML4    0xA000 PDPT    0xB000-0xEFFF four PDs (4 GiB of 2 MiB pages)
//   0x0002_0000  kernel command line (up to 64 KiB)
//   0x0009_fc00  EBDA (reserved in e820)     0x000a_0000-0x000f_ffff legacy VGA/BIOS hole
//   0x000e_0000  ACPI: RSDP, then XSDT, FADT, DSDT, MADT (below the VM generation ID)
//   0x000f_f000  VM generation ID (16 bytes; the DSDT's VGEN device points here)
//   0x0010_0000  kernel (bzImage protected-mode code or ELF segments), then free RAM;
//                the initrd goes at the top of low RAM.
#pragma once

#include <cstdint>

namespace forkvm::x86::lowmem {

inline constexpr uint64_t kGdt = 0x500;
inline constexpr uint64_t kIdt = 0x520;
inline constexpr uint64_t kPvhStartInfo = 0x6000;
inline constexpr uint64_t kPvhModlist = 0x6040;
inline constexpr uint64_t kPvhMemmap = 0x6080;
inline constexpr uint64_t kPvhMemmapMaxEntries = 128;
inline constexpr uint64_t kZeroPage = 0x7000;
inline constexpr uint64_t kBootStack = 0x8ff0;
inline constexpr uint64_t kPml4 = 0x9000;
inline constexpr uint64_t kPdpt = 0xA000;
inline constexpr uint64_t kPd = 0xB000;  // kPdCount consecutive pages
inline constexpr uint64_t kPdCount = 4;
inline constexpr uint64_t kCmdline = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;
inline constexpr uint64_t kEbda = 0x9fc00;
inline constexpr uint64_t kLegacyHole = 0xa0000;
inline constexpr uint64_t kAcpi = 0xe0000;
inline constexpr uint64_t kAcpiEnd = 0x100000;  // the BIOS area, all reserved in e820
inline constexpr uint64_t kVmGenId = 0xff000;   // 8-byte aligned, within one page (the spec's rules)
inline constexpr uint64_t kVmGenIdSize = 16;
inline constexpr uint64_t kHighMem = 0x100000;  // 1 MiB: where kernels go

}  // namespace forkvm::x86::lowmem
