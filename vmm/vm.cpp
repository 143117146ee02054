#include "vmm/vm.hpp"

#include <sys/ioctl.h>

namespace forkvm {

Result<Vm> Vm::create(const Kvm& kvm) {
  // EINTR here means a signal arrived while KVM built the VM; it is safe to
  // retry and common under load in the rig.
  int fd = -1;
  do {
    fd = ::ioctl(kvm.fd(), KVM_CREATE_VM, 0);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_error("KVM_CREATE_VM");
  return Vm(UniqueFd(fd));
}

Status Vm::set_memory(const GuestMemory& memory) {
  uint32_t slot = 0;
  for (const MemoryRegion& r : memory.regions()) {
    kvm_userspace_memory_region region{};
    region.slot = slot;
    region.guest_phys_addr = r.guest_addr;
    region.memory_size = r.size;
    region.userspace_addr = reinterpret_cast<uint64_t>(r.host);
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0) {
      return errno_error(
          fmt::format("KVM_SET_USER_MEMORY_REGION slot {} ({:#x}+{:#x})", slot, r.guest_addr, r.size));
    }
    ++slot;
  }
  return {};
}

Status Vm::setup_x86() {
  // The identity map address must be set before any vCPU exists, and the
  // irqchip before vCPUs so that each gets an in-kernel LAPIC.
  uint64_t identity = layout::kKvmIdentityMapAddr;
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) != 0) {
    return errno_error(fmt::format("KVM_SET_IDENTITY_MAP_ADDR {:#x}", identity));
  }
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, static_cast<unsigned long>(layout::kKvmTssAddr)) != 0) {
    return errno_error(fmt::format("KVM_SET_TSS_ADDR {:#x}", layout::kKvmTssAddr));
  }
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) != 0) return errno_error("KVM_CREATE_IRQCHIP");
  // A dummy speaker port so that guests probing port 0x61 get the PIT's
  // gate/output bits from the kernel instead of exiting to us.
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) != 0) return errno_error("KVM_CREATE_PIT2");
  return {};
}

Status Vm::register_irqfd(int fd, uint32_t gsi) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(fd);
  req.gsi = gsi;
  if (::ioctl(fd_.get(), KVM_IRQFD, &req) != 0) return errno_error(fmt::format("KVM_IRQFD gsi {}", gsi));
  return {};
}

Status Vm::unregister_irqfd(int fd, uint32_t gsi) {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(fd);
  req.gsi = gsi;
  req.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &req) != 0)
    return errno_error(fmt::format("KVM_IRQFD deassign gsi {}", gsi));
  return {};
}

Status Vm::ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch, bool deassign) {
  if (len != 1 && len != 2 && len != 4 && len != 8) {
    return make_error("ioeventfd at {:#x}: length {} is not 1, 2, 4 or 8", addr, len);
  }
  kvm_ioeventfd req{};
  req.fd = fd;
  req.addr = addr;
  req.len = len;
  req.datamatch = datamatch.value_or(0);
  if (datamatch) req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
  if (deassign) req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &req) != 0) {
    return errno_error(fmt::format("KVM_IOEVENTFD {}{:#x}/{}", deassign ? "deassign " : "", addr, len));
  }
  return {};
}

Status Vm::register_ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch) {
  return ioeventfd(fd, addr, len, datamatch, false);
}

Status Vm::unregister_ioeventfd(int fd, uint64_t addr, uint32_t len, std::optional<uint64_t> datamatch) {
  return ioeventfd(fd, addr, len, datamatch, true);
}

Result<kvm_irqchip> Vm::irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) != 0)
    return errno_error(fmt::format("KVM_GET_IRQCHIP {}", chip_id));
  return chip;
}

Status Vm::set_irqchip(const kvm_irqchip& chip) {
  kvm_irqchip copy = chip;  // _IOR in the header although KVM only reads it
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &copy) != 0) {
    return errno_error(fmt::format("KVM_SET_IRQCHIP {}", chip.chip_id));
  }
  return {};
}

Result<kvm_pit_state2> Vm::pit2() const {
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) != 0) return errno_error("KVM_GET_PIT2");
  return pit;
}

Status Vm::set_pit2(const kvm_pit_state2& pit) {
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &pit) != 0) return errno_error("KVM_SET_PIT2");
  return {};
}

Result<kvm_clock_data> Vm::clock() const {
  kvm_clock_data c{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &c) != 0) return errno_error("KVM_GET_CLOCK");
  return c;
}

Status Vm::set_clock(const kvm_clock_data& clock) {
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &clock) != 0) return errno_error("KVM_SET_CLOCK");
  return {};
}

int Vm::check_extension(int cap) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

}  // namespace forkvm
