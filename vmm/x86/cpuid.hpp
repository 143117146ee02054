// The CPUID a vCPU sees: KVM's supported list with the topology made
// consistent (APIC id = vCPU index, one thread per core, all cores in one
// socket), the hypervisor bit and KVM signature present, and features that
// cannot work in a guest removed. Pure functions, tested without KVM.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace forkvm::x86 {

[[nodiscard]] std::vector<kvm_cpuid_entry2> filter_cpuid(std::vector<kvm_cpuid_entry2> supported,
                                                         uint32_t vcpu_index, uint32_t vcpu_count);

// KVM_GET_SUPPORTED_CPUID never reports the TSC-deadline timer (leaf 1 ECX
// bit 24) because it depends on the in-kernel LAPIC; set it when
// KVM_CAP_TSC_DEADLINE_TIMER says the LAPIC emulates it.
void enable_tsc_deadline(std::vector<kvm_cpuid_entry2>& entries);

// The entry for (function, index), honouring KVM_CPUID_FLAG_SIGNIFCANT_INDEX.
[[nodiscard]] const kvm_cpuid_entry2* find_cpuid(const std::vector<kvm_cpuid_entry2>& entries,
                                                 uint32_t function, uint32_t index = 0);

}  // namespace forkvm::x86
