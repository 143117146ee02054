// One KVM virtual machine: its memory slots, the in-kernel interrupt
// controllers, and the irqfd/ioeventfd bindings that let devices raise
// interrupts and receive doorbells without a userspace exit.
#pragma once

#include <cstdint>
#include <optional>

#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

namespace layout {
// KVM on Intel needs three pages for a real-mode TSS and one for an identity
// page table, somewhere the guest will not use. They sit just below the BIOS
// ROM, in the MMIO hole, far from the virtio-mmio windows and the (IO)APICs.
inline constexpr uint64_t kKvmIdentityMapAddr = 0xFFFB'C000;
inline constexpr uint64_t kKvmTssAddr = 0xFFFB'D000;  // 3 pages, up to 0xFFFC'0000
}  // namespace layout

class Vm {
 public:
  static Result<Vm> create(const Kvm& kvm);

  // One KVM_SET_USER_MEMORY_REGION slot per GuestMemory region, slot i for
  // region i. Call once, before the first vCPU runs.
  Status set_memory(const GuestMemory& memory);

  // The x86 platform KVM emulates in the kernel: TSS and identity-map pages,
  // PIC + IOAPIC + LAPICs, and the PIT. Call before creating vCPUs.
  Status setup_x86();

  // Writing 1 to `fd` (an eventfd) raises `gsi` on the in-kernel IOAPIC.
  Status register_irqfd(int fd, uint32_t gsi);
  Status unregister_irqfd(int fd, uint32_t gsi);
  // Guest MMIO writes of `len` bytes (1, 2, 4 or 8) to `addr`, optionally
  // only of value `datamatch`, signal `fd` instead of exiting.
  Status register_ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch);
  Status unregister_ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch);

  // In-kernel platform state for snapshots. chip_id is KVM_IRQCHIP_PIC_MASTER,
  // KVM_IRQCHIP_PIC_SLAVE or KVM_IRQCHIP_IOAPIC.
  Result<kvm_irqchip> irqchip(uint32_t chip_id) const;
  Status set_irqchip(const kvm_irqchip& chip);
  Result<kvm_pit_state2> pit2() const;
  Status set_pit2(const kvm_pit_state2& pit);
  // The kvmclock base (ns). set_clock() makes the guest's kvmclock continue
  // from clock.clock; only KVM_CLOCK_REALTIME in flags is acted on.
  Result<kvm_clock_data> clock() const;
  Status set_clock(const kvm_clock_data& clock);

  // KVM_CHECK_EXTENSION on the VM fd (some answers are per VM, e.g. XSAVE2).
  [[nodiscard]] int check_extension(int cap) const;
  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
  Status ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch, bool deassign);
  UniqueFd fd_;
};

}  // namespace forkvm
