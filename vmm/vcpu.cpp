#include "vmm/vcpu.hpp"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "vmm/x86/kvm_abi.hpp"

namespace forkvm {

namespace abi = x86::abi;

Result<Vcpu> Vcpu::create(const Vm& vm, const Kvm& kvm, uint32_t index) {
  const int fd = ::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index));
  if (fd < 0) return errno_error(fmt::format("KVM_CREATE_VCPU {}", index));
  UniqueFd owned(fd);
  const size_t run_size = FORKVM_TRY(kvm.vcpu_mmap_size());
  void* p = ::mmap(nullptr, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return errno_error(fmt::format("mmap kvm_run of vCPU {}", index));
  // A live-forked child builds its own vCPUs; this page is useless there.
  (void)::madvise(p, run_size, MADV_DONTFORK);
  // KVM_CAP_XSAVE2 answers the XSAVE buffer size for this VM, at least 4 KiB;
  // 0 means an older kernel where KVM_GET_XSAVE's 4 KiB is all there is.
  const int xsave2 = vm.check_extension(KVM_CAP_XSAVE2);
  const size_t xsave_size = xsave2 > 0 ? static_cast<size_t>(xsave2) : abi::kXsaveSize;
  return Vcpu(std::move(owned), static_cast<kvm_run*>(p), run_size, index, xsave_size);
}

Vcpu::Vcpu(UniqueFd fd, kvm_run* run, size_t run_size, uint32_t index, size_t xsave_size)
    : fd_(std::move(fd)), run_(run), run_size_(run_size), index_(index), xsave_size_(xsave_size) {}

Vcpu::Vcpu(Vcpu&& other) noexcept
    : fd_(std::move(other.fd_)),
      run_(std::exchange(other.run_, nullptr)),
      run_size_(std::exchange(other.run_size_, 0)),
      index_(other.index_),
      xsave_size_(other.xsave_size_) {}

Vcpu& Vcpu::operator=(Vcpu&& other) noexcept {
  if (this != &other) {
    if (run_ != nullptr) ::munmap(run_, run_size_);
    fd_ = std::move(other.fd_);
    run_ = std::exchange(other.run_, nullptr);
    run_size_ = std::exchange(other.run_size_, 0);
    index_ = other.index_;
    xsave_size_ = other.xsave_size_;
  }
  return *this;
}

Vcpu::~Vcpu() {
  if (run_ != nullptr) ::munmap(run_, run_size_);
}

Result<Vcpu::RunResult> Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return RunResult::exit;
  const int err = errno;
  if (err == EINTR) return RunResult::interrupted;
  if (err == EAGAIN) return RunResult::again;
  return errno_error(fmt::format("KVM_RUN vCPU {}", index_), err);
}

template <typename T>
Result<T> Vcpu::get(unsigned long request, const char* name) const {
  T value{};
  if (::ioctl(fd_.get(), request, &value) != 0) return errno_error(fmt::format("{} vCPU {}", name, index_));
  return value;
}

template <typename T>
Status Vcpu::set(unsigned long request, const char* name, const T& value) const {
  if (::ioctl(fd_.get(), request, &value) != 0) return errno_error(fmt::format("{} vCPU {}", name, index_));
  return {};
}

Result<kvm_regs> Vcpu::regs() const { return get<kvm_regs>(KVM_GET_REGS, "KVM_GET_REGS"); }
Status Vcpu::set_regs(const kvm_regs& r) { return set(KVM_SET_REGS, "KVM_SET_REGS", r); }
Result<kvm_sregs> Vcpu::sregs() const { return get<kvm_sregs>(KVM_GET_SREGS, "KVM_GET_SREGS"); }
Status Vcpu::set_sregs(const kvm_sregs& s) { return set(KVM_SET_SREGS, "KVM_SET_SREGS", s); }
Result<kvm_fpu> Vcpu::fpu() const { return get<kvm_fpu>(KVM_GET_FPU, "KVM_GET_FPU"); }
Status Vcpu::set_fpu(const kvm_fpu& f) { return set(KVM_SET_FPU, "KVM_SET_FPU", f); }
Result<kvm_lapic_state> Vcpu::lapic() const { return get<kvm_lapic_state>(KVM_GET_LAPIC, "KVM_GET_LAPIC"); }
Status Vcpu::set_lapic(const kvm_lapic_state& l) { return set(KVM_SET_LAPIC, "KVM_SET_LAPIC", l); }
Result<kvm_mp_state> Vcpu::mp_state() const {
  return get<kvm_mp_state>(KVM_GET_MP_STATE, "KVM_GET_MP_STATE");
}
Status Vcpu::set_mp_state(const kvm_mp_state& m) { return set(KVM_SET_MP_STATE, "KVM_SET_MP_STATE", m); }
Result<kvm_xcrs> Vcpu::xcrs() const { return get<kvm_xcrs>(KVM_GET_XCRS, "KVM_GET_XCRS"); }
Status Vcpu::set_xcrs(const kvm_xcrs& x) { return set(KVM_SET_XCRS, "KVM_SET_XCRS", x); }
Result<kvm_debugregs> Vcpu::debugregs() const {
  return get<kvm_debugregs>(KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS");
}
Status Vcpu::set_debugregs(const kvm_debugregs& d) { return set(KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", d); }
Result<kvm_vcpu_events> Vcpu::vcpu_events() const {
  return get<kvm_vcpu_events>(KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS");
}
Status Vcpu::set_vcpu_events(const kvm_vcpu_events& e) {
  return set(KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", e);
}

Result<std::vector<kvm_msr_entry>> Vcpu::msrs(std::span<const uint32_t> indices) const {
  abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buf(indices.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
  const int n = ::ioctl(fd_.get(), abi::kGetMsrs, buf.data());
  if (n < 0) return errno_error(fmt::format("KVM_GET_MSRS vCPU {}", index_));
  // KVM returns how many it read and stops at the first it does not know.
  if (static_cast<size_t>(n) != indices.size()) {
    return make_error("KVM_GET_MSRS vCPU {}: read {} of {}, MSR {:#x} refused", index_, n, indices.size(),
                      indices[static_cast<size_t>(n)]);
  }
  const kvm_msr_entry* first = buf.entries();
  return std::vector<kvm_msr_entry>(first, first + n);
}

Status Vcpu::set_msrs(std::span<const kvm_msr_entry> entries) {
  abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  const int n = ::ioctl(fd_.get(), abi::kSetMsrs, buf.data());
  if (n < 0) return errno_error(fmt::format("KVM_SET_MSRS vCPU {}", index_));
  if (static_cast<size_t>(n) != entries.size()) {
    return make_error("KVM_SET_MSRS vCPU {}: wrote {} of {}, MSR {:#x} refused", index_, n, entries.size(),
                      entries[static_cast<size_t>(n)].index);
  }
  return {};
}

Result<std::vector<kvm_msr_entry>> Vcpu::read_msrs_prefix(std::span<const uint32_t> indices) const {
  abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buf(indices.size());
  buf.header()->nmsrs = static_cast<uint32_t>(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) buf.entries()[i].index = indices[i];
  const int n = ::ioctl(fd_.get(), abi::kGetMsrs, buf.data());
  if (n < 0) return errno_error(fmt::format("KVM_GET_MSRS vCPU {}", index_));
  const kvm_msr_entry* first = buf.entries();
  return std::vector<kvm_msr_entry>(first, first + std::min(static_cast<size_t>(n), indices.size()));
}

Result<size_t> Vcpu::write_msrs_prefix(std::span<const kvm_msr_entry> entries) {
  abi::FlexBuffer<abi::MsrsHeader, kvm_msr_entry> buf(entries.size());
  buf.header()->nmsrs = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  const int n = ::ioctl(fd_.get(), abi::kSetMsrs, buf.data());
  if (n < 0) return errno_error(fmt::format("KVM_SET_MSRS vCPU {}", index_));
  return std::min(static_cast<size_t>(n), entries.size());
}

Result<uint32_t> Vcpu::tsc_khz() const {
  const int r = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  if (r < 0) return errno_error(fmt::format("KVM_GET_TSC_KHZ vCPU {}", index_));
  return static_cast<uint32_t>(r);
}

Status Vcpu::set_tsc_khz(uint32_t khz) {
  if (::ioctl(fd_.get(), KVM_SET_TSC_KHZ, static_cast<unsigned long>(khz)) != 0) {
    return errno_error(fmt::format("KVM_SET_TSC_KHZ {} vCPU {}", khz, index_));
  }
  return {};
}

Status Vcpu::kvmclock_ctrl() {
  if (::ioctl(fd_.get(), KVM_KVMCLOCK_CTRL, 0) != 0)
    return errno_error(fmt::format("KVM_KVMCLOCK_CTRL vCPU {}", index_));
  return {};
}

Result<std::vector<kvm_cpuid_entry2>> Vcpu::cpuid2() const {
  for (uint32_t n = 128; n <= 8192; n *= 2) {
    abi::FlexBuffer<abi::Cpuid2Header, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = n;
    if (::ioctl(fd_.get(), abi::kGetCpuid2, buf.data()) == 0) {
      const kvm_cpuid_entry2* first = buf.entries();
      return std::vector<kvm_cpuid_entry2>(first, first + buf.header()->nent);
    }
    if (errno != E2BIG) return errno_error(fmt::format("KVM_GET_CPUID2 vCPU {}", index_));
  }
  return make_error("KVM_GET_CPUID2 vCPU {}: more than 8192 entries", index_);
}

Status Vcpu::set_cpuid2(std::span<const kvm_cpuid_entry2> entries) {
  abi::FlexBuffer<abi::Cpuid2Header, kvm_cpuid_entry2> buf(entries.size());
  buf.header()->nent = static_cast<uint32_t>(entries.size());
  std::memcpy(buf.entries(), entries.data(), entries.size_bytes());
  if (::ioctl(fd_.get(), abi::kSetCpuid2, buf.data()) != 0) {
    return errno_error(fmt::format("KVM_SET_CPUID2 vCPU {} ({} entries)", index_, entries.size()));
  }
  return {};
}

Result<std::vector<uint8_t>> Vcpu::xsave() const {
  // KVM_GET_XSAVE2 writes xsave_size_ bytes; the plain ioctl exactly 4 KiB.
  std::vector<uint8_t> area(std::max(xsave_size_, abi::kXsaveSize));
  const bool big = xsave_size_ > abi::kXsaveSize;
  if (::ioctl(fd_.get(), big ? abi::kGetXsave2 : abi::kGetXsave, area.data()) != 0) {
    return errno_error(fmt::format("{} vCPU {}", big ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE", index_));
  }
  return area;
}

Status Vcpu::set_xsave(std::span<const uint8_t> area) {
  if (area.size() < abi::kXsaveSize || area.size() < xsave_size_) {
    return make_error("KVM_SET_XSAVE vCPU {}: area of {} bytes, KVM needs {}", index_, area.size(),
                      std::max(xsave_size_, abi::kXsaveSize));
  }
  // KVM reads through the pointer but the ioctl is declared _IOW on a
  // non-const struct; copy rather than cast away const.
  std::vector<uint8_t> copy(area.begin(), area.end());
  if (::ioctl(fd_.get(), abi::kSetXsave, copy.data()) != 0) {
    return errno_error(fmt::format("KVM_SET_XSAVE vCPU {}", index_));
  }
  return {};
}

}  // namespace forkvm
