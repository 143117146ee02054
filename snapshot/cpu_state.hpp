// KVM vCPU and VM state to and from snapshot sections, in the orders the
// kernel needs (fork-and-snapshot.md section 2):
//   save:    mp_state first (it runs pending APIC events), vcpu_events last;
//   restore: CPUID, mp_state, regs, sregs, XSAVE, XCRs, debug regs, LAPIC,
//            MSRs, vcpu_events, then KVM_KVMCLOCK_CTRL.
// No vCPU may be running while either runs.
#pragma once

#include <cstdint>
#include <span>

#include "vmm/result.hpp"
#include "vmm/state_codec.hpp"
#include "vmm/vcpu.hpp"
#include "vmm/vm.hpp"

namespace forkvm::snapshot {

// `msr_indices`: what KVM_GET_MSR_INDEX_LIST returned; MSRs KVM refuses to
// read for this vCPU (features the guest's CPUID lacks) are left out.
Status save_vcpu(const Vcpu& vcpu, std::span<const uint32_t> msr_indices, StateWriter& out);
Status restore_vcpu(Vcpu& vcpu, StateReader& in);

// PIC master, PIC slave, IOAPIC, PIT2 and the kvmclock.
Status save_vm(const Vm& vm, StateWriter& out);
// The irqchip and PIT must exist (Vm::setup_x86). Runs before the vCPUs are restored.
Status restore_vm(Vm& vm, StateReader& in);

}  // namespace forkvm::snapshot
