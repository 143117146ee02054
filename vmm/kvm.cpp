#include "vmm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>

#include "vmm/x86/kvm_abi.hpp"

namespace forkvm {

Result<Kvm> Kvm::open(const char* path) {
  const int fd = ::open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) {
      return make_error(
          "open {}: no such device; KVM is not available on this host (is the kvm module loaded?)", path);
    }
    if (err == EACCES) return make_error("open {}: permission denied; add the user to the kvm group", path);
    return errno_error(fmt::format("open {}", path), err);
  }
  UniqueFd owned(fd);
  const int version = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  if (version < 0) return errno_error("KVM_GET_API_VERSION");
  if (version != KVM_API_VERSION) {
    return make_error("KVM API version is {}, forkvm needs {}", version, KVM_API_VERSION);
  }
  return Kvm(std::move(owned));
}

int Kvm::check_extension(int cap) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

Result<size_t> Kvm::vcpu_mmap_size() const {
  const int r = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (r < 0) return errno_error("KVM_GET_VCPU_MMAP_SIZE");
  return static_cast<size_t>(r);
}

namespace abi = x86::abi;

Result<std::vector<kvm_cpuid_entry2>> Kvm::supported_cpuid() const {
  // KVM answers E2BIG until the buffer holds every leaf; hosts report ~60-100
  // entries today, so start there and double.
  for (uint32_t n = 128; n <= 8192; n *= 2) {
    abi::FlexBuffer<abi::Cpuid2Header, kvm_cpuid_entry2> buf(n);
    buf.header()->nent = n;
    if (::ioctl(fd_.get(), abi::kGetSupportedCpuid, buf.data()) == 0) {
      const kvm_cpuid_entry2* first = buf.entries();
      return std::vector<kvm_cpuid_entry2>(first, first + buf.header()->nent);
    }
    if (errno != E2BIG) return errno_error("KVM_GET_SUPPORTED_CPUID");
  }
  return make_error("KVM_GET_SUPPORTED_CPUID: more than 8192 entries");
}

Result<std::vector<uint32_t>> Kvm::msr_index_list() const {
  // The first call with nmsrs = 0 fails with E2BIG and reports the count.
  abi::MsrListHeader probe{};
  if (::ioctl(fd_.get(), abi::kGetMsrIndexList, &probe) == 0) return std::vector<uint32_t>{};
  if (errno != E2BIG) return errno_error("KVM_GET_MSR_INDEX_LIST");
  const uint32_t n = probe.nmsrs;
  abi::FlexBuffer<abi::MsrListHeader, uint32_t> buf(n);
  buf.header()->nmsrs = n;
  if (::ioctl(fd_.get(), abi::kGetMsrIndexList, buf.data()) != 0)
    return errno_error("KVM_GET_MSR_INDEX_LIST");
  const uint32_t* first = buf.entries();
  return std::vector<uint32_t>(first, first + buf.header()->nmsrs);
}

}  // namespace forkvm
