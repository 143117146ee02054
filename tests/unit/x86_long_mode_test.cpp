#include <doctest/doctest.h>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/layout.hpp"
#include "vmm/x86/long_mode.hpp"
#include "vmm/x86/msrs.hpp"

namespace forkvm::x86 {
namespace {

TEST_CASE("identity page tables map 4 GiB with 2 MiB pages") {
  auto mem = GuestMemory::create_anonymous(64ULL << 20);
  REQUIRE(mem.ok());
  REQUIRE(write_boot_tables(*mem).ok());
  CHECK(mem->read_obj<uint64_t>(lowmem::kPml4) == (lowmem::kPdpt | 0x3));
  CHECK(mem->read_obj<uint64_t>(lowmem::kPml4 + 8) == 0);
  for (uint64_t i = 0; i < 4; ++i) {
    CHECK(mem->read_obj<uint64_t>(lowmem::kPdpt + 8 * i) == ((lowmem::kPd + 0x1000 * i) | 0x3));
  }
  CHECK(mem->read_obj<uint64_t>(lowmem::kPdpt + 8 * 4) == 0);
  CHECK(mem->read_obj<uint64_t>(lowmem::kPd) == 0x83);
  CHECK(mem->read_obj<uint64_t>(lowmem::kPd + 8) == (0x200000 | 0x83));
  // The last 2 MiB page below 4 GiB: PD 3, entry 511.
  CHECK(mem->read_obj<uint64_t>(lowmem::kPd + 3 * 0x1000 + 511 * 8) == (0xffe00000ULL | 0x83));
  // Tables stay clear of the zero page and the command line.
  CHECK(lowmem::kPd + lowmem::kPdCount * 0x1000 <= lowmem::kCmdline);
  CHECK(lowmem::kZeroPage + 0x1000 <= lowmem::kBootStack + 0x10);
}

TEST_CASE("GDT descriptors decode to flat segments with the boot selectors") {
  const auto gdt = boot_gdt();
  CHECK(gdt[0] == 0);
  const kvm_segment cs64 = segment_from_gdt(gdt[kSelCode64 >> 3], kSelCode64);
  CHECK(cs64.selector == 0x10);
  CHECK(cs64.base == 0);
  CHECK(cs64.limit == 0xffffffff);
  CHECK(cs64.l == 1);
  CHECK(cs64.db == 0);
  CHECK(cs64.type == 0xb);
  CHECK(cs64.present == 1);
  CHECK(cs64.s == 1);
  CHECK(cs64.g == 1);
  const kvm_segment cs32 = segment_from_gdt(gdt[kSelCode32 >> 3], kSelCode32);
  CHECK(cs32.l == 0);
  CHECK(cs32.db == 1);
  const kvm_segment ds = segment_from_gdt(gdt[kSelData >> 3], kSelData);
  CHECK(ds.selector == 0x18);
  CHECK(ds.type == 0x3);
  CHECK(ds.db == 1);
  const kvm_segment tr = segment_from_gdt(gdt[kSelTss >> 3], kSelTss);
  CHECK(tr.s == 0);
  CHECK(tr.type == 0xb);
  CHECK(segment_from_gdt(0, 0).unusable == 1);
}

TEST_CASE("long-mode and PVH register state") {
  kvm_sregs s{};
  s.cr0 = 0x60000010;  // reset value: CD | NW | ET
  setup_long_mode_sregs(s);
  CHECK(s.cr0 == 0x80000011);  // PG | ET | PE
  CHECK((s.cr4 & 0x20) != 0);
  CHECK((s.efer & 0x500) == 0x500);
  CHECK(s.cr3 == lowmem::kPml4);
  CHECK(s.cs.selector == 0x10);
  CHECK(s.ss.selector == 0x18);
  CHECK(s.gdt.base == lowmem::kGdt);
  CHECK(s.gdt.limit == 5 * 8 - 1);

  const kvm_regs r = long_mode_regs(0x1000000, lowmem::kZeroPage);
  CHECK(r.rip == 0x1000000);
  CHECK(r.rsi == lowmem::kZeroPage);
  CHECK(r.rflags == 2);
  CHECK(r.rsp == lowmem::kBootStack);

  kvm_sregs p{};
  p.cr0 = 0x60000010;
  p.efer = 0x500;
  setup_protected_mode_sregs(p);
  CHECK(p.cr0 == 0x11);
  CHECK(p.efer == 0);
  CHECK(p.cs.selector == 0x08);
  CHECK(p.cs.db == 1);
  const kvm_regs pr = pvh_regs(0x1000080, lowmem::kPvhStartInfo);
  CHECK(pr.rbx == lowmem::kPvhStartInfo);
  CHECK(pr.rip == 0x1000080);
}

TEST_CASE("boot MSRs, FPU and LAPIC LINT wiring") {
  const auto msrs = boot_msrs();
  bool saw_mtrr = false;
  for (const auto& m : msrs) {
    if (m.index == kMsrMtrrDefType) {
      saw_mtrr = true;
      CHECK(m.data == 0x806);
    }
    if (m.index == kMsrMiscEnable) CHECK(m.data == 1);
  }
  CHECK(saw_mtrr);
  CHECK(boot_fpu().fcw == 0x37f);
  CHECK(boot_fpu().mxcsr == 0x1f80);

  kvm_lapic_state l{};
  set_lapic_reg(l, 0x350, 0x00010700);  // masked, some mode
  set_lapic_reg(l, 0x360, 0x00010000);
  set_lint_delivery(l);
  CHECK(lapic_reg(l, 0x350) == 0x00010700);  // ExtINT = 7, mask bit kept
  CHECK(lapic_reg(l, 0x360) == 0x00010400);  // NMI = 4
}

}  // namespace
}  // namespace forkvm::x86
