#include "vmm/x86/long_mode.hpp"

#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {
namespace {

constexpr uint64_t kCr0Pe = 1ULL << 0;
constexpr uint64_t kCr0Et = 1ULL << 4;
constexpr uint64_t kCr0Nw = 1ULL << 29;
constexpr uint64_t kCr0Cd = 1ULL << 30;
constexpr uint64_t kCr0Pg = 1ULL << 31;
constexpr uint64_t kCr4Pae = 1ULL << 5;
constexpr uint64_t kEferLme = 1ULL << 8;
constexpr uint64_t kEferLma = 1ULL << 10;

constexpr uint64_t kPtePresent = 1ULL << 0;
constexpr uint64_t kPteWrite = 1ULL << 1;
constexpr uint64_t kPtePageSize = 1ULL << 7;  // in a PD entry: a 2 MiB page

// Descriptor from the (flags, base, limit) triple as in Intel SDM 3.4.5:
// flags is 0xGDLA_PDDS_TYPE laid out as bits 8..15 and 20..23 of the high dword.
constexpr uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((uint64_t{base} & 0xff00'0000) << 32) | ((uint64_t{flags} & 0xf0ff) << 40) |
         ((uint64_t{limit} & 0x000f'0000) << 32) | ((uint64_t{base} & 0x00ff'ffff) << 16) |
         (uint64_t{limit} & 0x0000'ffff);
}

}  // namespace

std::array<uint64_t, 5> boot_gdt() {
  return {
      0,
      gdt_entry(0xc09b, 0, 0xfffff),  // code32: G, D, present, exec/read, accessed
      gdt_entry(0xa09b, 0, 0xfffff),  // code64: G, L, present, exec/read, accessed
      gdt_entry(0xc093, 0, 0xfffff),  // data: G, B, present, read/write, accessed
      // A busy TSS: VMX refuses to enter a guest whose TR is unusable, even
      // though Linux loads its own before it needs one.
      gdt_entry(0x808b, 0, 0xfffff),
  };
}

kvm_segment segment_from_gdt(uint64_t d, uint16_t selector) {
  kvm_segment s{};
  s.base = ((d >> 16) & 0xff'ffff) | (((d >> 56) & 0xff) << 24);
  const uint32_t raw_limit = static_cast<uint32_t>((d & 0xffff) | (((d >> 48) & 0xf) << 16));
  s.g = static_cast<uint8_t>((d >> 55) & 1);
  // With G set the limit counts 4 KiB pages; KVM wants it in bytes.
  s.limit = s.g != 0 ? (raw_limit << 12) | 0xfff : raw_limit;
  s.selector = selector;
  s.type = static_cast<uint8_t>((d >> 40) & 0xf);
  s.s = static_cast<uint8_t>((d >> 44) & 1);
  s.dpl = static_cast<uint8_t>((d >> 45) & 3);
  s.present = static_cast<uint8_t>((d >> 47) & 1);
  s.avl = static_cast<uint8_t>((d >> 52) & 1);
  s.l = static_cast<uint8_t>((d >> 53) & 1);
  s.db = static_cast<uint8_t>((d >> 54) & 1);
  s.unusable = s.present != 0 ? 0 : 1;
  return s;
}

Status write_boot_tables(const GuestMemory& memory) {
  const auto gdt = boot_gdt();
  if (!memory.write_obj(lowmem::kGdt, gdt)) return make_error("write GDT at {:#x}", lowmem::kGdt);
  if (!memory.write_obj(lowmem::kIdt, uint64_t{0})) return make_error("write IDT at {:#x}", lowmem::kIdt);

  std::array<uint64_t, 512> table{};
  table[0] = lowmem::kPdpt | kPtePresent | kPteWrite;
  if (!memory.write_obj(lowmem::kPml4, table)) return make_error("write PML4 at {:#x}", lowmem::kPml4);
  table = {};
  for (uint64_t i = 0; i < lowmem::kPdCount; ++i)
    table[i] = (lowmem::kPd + i * 0x1000) | kPtePresent | kPteWrite;
  if (!memory.write_obj(lowmem::kPdpt, table)) return make_error("write PDPT at {:#x}", lowmem::kPdpt);
  for (uint64_t pd = 0; pd < lowmem::kPdCount; ++pd) {
    for (uint64_t i = 0; i < 512; ++i) {
      table[i] = ((pd << 30) | (i << 21)) | kPtePresent | kPteWrite | kPtePageSize;
    }
    if (!memory.write_obj(lowmem::kPd + pd * 0x1000, table)) return make_error("write page directory {}", pd);
  }
  return {};
}

namespace {

void load_segments(kvm_sregs& sregs, uint16_t code_selector) {
  const auto gdt = boot_gdt();
  sregs.gdt.base = lowmem::kGdt;
  sregs.gdt.limit = static_cast<uint16_t>(sizeof(gdt) - 1);
  sregs.idt.base = lowmem::kIdt;
  sregs.idt.limit = 7;
  sregs.cs = segment_from_gdt(gdt[code_selector >> 3], code_selector);
  const kvm_segment data = segment_from_gdt(gdt[kSelData >> 3], kSelData);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = segment_from_gdt(gdt[kSelTss >> 3], kSelTss);
}

}  // namespace

void setup_long_mode_sregs(kvm_sregs& sregs) {
  load_segments(sregs, kSelCode64);
  sregs.cr3 = lowmem::kPml4;
  sregs.cr4 |= kCr4Pae;
  // Reset leaves CD and NW set (caches off); clear them rather than run the
  // kernel's first instructions uncached.
  sregs.cr0 = (sregs.cr0 & ~(kCr0Cd | kCr0Nw)) | kCr0Pe | kCr0Et | kCr0Pg;
  sregs.efer |= kEferLme | kEferLma;
}

void setup_protected_mode_sregs(kvm_sregs& sregs) {
  load_segments(sregs, kSelCode32);
  sregs.cr0 = (sregs.cr0 & ~(kCr0Cd | kCr0Nw | kCr0Pg)) | kCr0Pe | kCr0Et;
  sregs.cr4 = 0;
  sregs.cr3 = 0;
  sregs.efer = 0;
}

kvm_regs long_mode_regs(uint64_t entry, uint64_t zero_page) {
  kvm_regs r{};
  r.rflags = 2;  // bit 1 is reserved-one; IF stays clear as the protocol requires
  r.rip = entry;
  r.rsi = zero_page;
  r.rsp = lowmem::kBootStack;
  r.rbp = lowmem::kBootStack;
  return r;
}

kvm_regs pvh_regs(uint64_t entry, uint64_t start_info) {
  kvm_regs r{};
  r.rflags = 2;
  r.rip = entry;
  r.rbx = start_info;
  return r;
}

}  // namespace forkvm::x86
