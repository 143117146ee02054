#include "vmm/x86/msrs.hpp"

#include <cstring>

namespace forkvm::x86 {
namespace {

constexpr uint32_t kApicLvtLint0 = 0x350;
constexpr uint32_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryModeMask = 0x700;
constexpr uint32_t kDeliveryNmi = 0x4;
constexpr uint32_t kDeliveryExtInt = 0x7;

kvm_msr_entry msr(uint32_t index, uint64_t data) {
  kvm_msr_entry e{};
  e.index = index;
  e.data = data;
  return e;
}

}  // namespace

std::vector<kvm_msr_entry> boot_msrs() {
  return {
      msr(kMsrSysenterCs, 0),
      msr(kMsrSysenterEsp, 0),
      msr(kMsrSysenterEip, 0),
      msr(kMsrStar, 0),
      msr(kMsrCstar, 0),
      msr(kMsrKernelGsBase, 0),
      msr(kMsrSyscallMask, 0),
      msr(kMsrLstar, 0),
      msr(kMsrTsc, 0),
      msr(kMsrMiscEnable, kMiscEnableFastString),
      msr(kMsrMtrrDefType, kMtrrEnable | kMtrrTypeWriteBack),
  };
}

kvm_fpu boot_fpu() {
  kvm_fpu f{};
  f.fcw = 0x37f;
  f.mxcsr = 0x1f80;
  return f;
}

uint32_t lapic_reg(const kvm_lapic_state& lapic, uint32_t offset) {
  uint32_t v = 0;
  std::memcpy(&v, lapic.regs + offset, sizeof(v));
  return v;
}

void set_lapic_reg(kvm_lapic_state& lapic, uint32_t offset, uint32_t value) {
  std::memcpy(lapic.regs + offset, &value, sizeof(value));
}

void set_lint_delivery(kvm_lapic_state& lapic) {
  const uint32_t lint0 = lapic_reg(lapic, kApicLvtLint0);
  set_lapic_reg(lapic, kApicLvtLint0, (lint0 & ~kDeliveryModeMask) | (kDeliveryExtInt << 8));
  const uint32_t lint1 = lapic_reg(lapic, kApicLvtLint1);
  set_lapic_reg(lapic, kApicLvtLint1, (lint1 & ~kDeliveryModeMask) | (kDeliveryNmi << 8));
}

}  // namespace forkvm::x86
