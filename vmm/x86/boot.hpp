// The one entry the Machine calls to make a fresh VM bootable: load the
// kernel (ELF vmlinux or bzImage) and initrd, write the command line, zero
// page or PVH start info, ACPI tables, GDT and page tables, then set every
// vCPU's CPUID, MSRs, FPU and LAPIC, and the boot CPU's registers. APs are
// left in the wait-for-SIPI state the in-kernel irqchip gives them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/result.hpp"
#include "vmm/vcpu.hpp"

namespace forkvm::x86 {

enum class BootProtocol {
  linux64,  // Linux 64-bit boot protocol at the ELF entry or bzImage+0x200 (default)
  pvh,      // Xen PVH entry of a vmlinux with the PHYS32_ENTRY note
};

struct BootConfig {
  std::string kernel_path;
  std::optional<std::string> initrd_path;
  std::string cmdline;
  uint32_t vcpu_count = 1;
  BootProtocol protocol = BootProtocol::linux64;
};

// Where the boot CPU starts; the memory side of the boot, computed without KVM.
struct BootEntry {
  BootProtocol protocol = BootProtocol::linux64;
  uint64_t entry = 0;
  uint64_t boot_data = 0;  // zero page (RSI) or hvm_start_info (EBX)
};

// Everything that goes into guest memory. Testable without /dev/kvm.
[[nodiscard]] Result<BootEntry> load_for_boot(const GuestMemory& memory, const BootConfig& config);
// Kernel and initrd given as bytes instead of paths (load_for_boot maps the files).
[[nodiscard]] Result<BootEntry> load_images(const GuestMemory& memory, std::span<const uint8_t> kernel,
                                            std::span<const uint8_t> initrd, const BootConfig& config);

// vCPU state for every vCPU in `vcpus` (index i = APIC id i; 0 boots).
[[nodiscard]] Status configure_vcpus(const Kvm& kvm, std::span<Vcpu> vcpus, const BootEntry& entry);

// load_for_boot + configure_vcpus. vcpus.size() must equal config.vcpu_count.
[[nodiscard]] Status configure_for_boot(const Kvm& kvm, std::span<Vcpu> vcpus, const GuestMemory& memory,
                                        const BootConfig& config);

}  // namespace forkvm::x86
