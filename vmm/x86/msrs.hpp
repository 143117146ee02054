// Architectural state a BIOS would leave behind: boot MSR values, an
// initialised FPU, and the LAPIC's LINT0/LINT1 wiring. Pure builders plus
// one helper that edits a kvm_lapic_state.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace forkvm::x86 {

inline constexpr uint32_t kMsrTsc = 0x10;
inline constexpr uint32_t kMsrSysenterCs = 0x174;
inline constexpr uint32_t kMsrSysenterEsp = 0x175;
inline constexpr uint32_t kMsrSysenterEip = 0x176;
inline constexpr uint32_t kMsrMiscEnable = 0x1a0;
inline constexpr uint32_t kMsrMtrrDefType = 0x2ff;
inline constexpr uint32_t kMsrStar = 0xc000'0081;
inline constexpr uint32_t kMsrLstar = 0xc000'0082;
inline constexpr uint32_t kMsrCstar = 0xc000'0083;
inline constexpr uint32_t kMsrSyscallMask = 0xc000'0084;
inline constexpr uint32_t kMsrKernelGsBase = 0xc000'0102;

inline constexpr uint64_t kMiscEnableFastString = 1ULL << 0;
inline constexpr uint64_t kMtrrEnable = 1ULL << 11;
inline constexpr uint64_t kMtrrTypeWriteBack = 6;

// Syscall/sysenter MSRs and TSC zeroed, fast strings on, and MTRRs enabled
// with write-back as the default type. Without the last, Linux sees every
// page as uncacheable and runs an order of magnitude slower.
[[nodiscard]] std::vector<kvm_msr_entry> boot_msrs();

// x87 control word 0x37f (all exceptions masked, 64-bit precision) and
// MXCSR 0x1f80: what FNINIT and reset give.
[[nodiscard]] kvm_fpu boot_fpu();

// LVT LINT0 = ExtINT (the 8259 PIC behind it, for the timer before the
// IOAPIC is set up) and LINT1 = NMI, as PC firmware programs them.
void set_lint_delivery(kvm_lapic_state& lapic);

// 32-bit register access into kvm_lapic_state.regs (APIC register offsets).
[[nodiscard]] uint32_t lapic_reg(const kvm_lapic_state& lapic, uint32_t offset);
void set_lapic_reg(kvm_lapic_state& lapic, uint32_t offset, uint32_t value);

}  // namespace forkvm::x86
