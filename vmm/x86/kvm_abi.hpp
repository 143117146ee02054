// Kernel layouts and ioctl numbers for the KVM structs that <linux/kvm.h>
// gets wrong in C++. The 6.1 uapi headers declare their trailing arrays with
// __DECLARE_FLEX_ARRAY, whose empty struct has size 1 in C++ (0 in C): that
// moves the array, changes sizeof, and so changes the ioctl numbers, which
// encode sizeof. KVM then answers EINVAL (seen on kvm_cpuid2 in the rig).
// Affected here: kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_xsave. Use these
// instead of the header's macros for them; the numbers are the C values.
#pragma once

#include <linux/kvm.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace forkvm::x86::abi {

struct Cpuid2Header {  // kvm_cpuid2 without its entries; entries at offset 8
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // kvm_msrs; entries at offset 8
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {  // kvm_msr_list; indices at offset 4
  uint32_t nmsrs;
};
inline constexpr size_t kXsaveSize = 4096;  // sizeof(struct kvm_xsave) in C

inline constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
inline constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
inline constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
inline constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
inline constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);
inline constexpr unsigned long kGetCpuid2 = _IOWR(KVMIO, 0x91, Cpuid2Header);
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kXsaveSize);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kXsaveSize);
inline constexpr unsigned long kGetXsave2 = _IOC(_IOC_READ, KVMIO, 0xcf, kXsaveSize);

// The values a C compiler computes from <linux/kvm.h> (x86-64).
static_assert(kGetMsrIndexList == 0xc004ae02);
static_assert(kGetSupportedCpuid == 0xc008ae05);
static_assert(kGetMsrs == 0xc008ae88);
static_assert(kSetMsrs == 0x4008ae89);
static_assert(kSetCpuid2 == 0x4008ae90);
static_assert(kGetCpuid2 == 0xc008ae91);
static_assert(kGetXsave == 0x9000aea4);
static_assert(kSetXsave == 0x5000aea5);
static_assert(kGetXsave2 == 0x9000aecf);

// A zeroed buffer holding Header followed by n Elems, at the kernel's offsets.
template <typename Header, typename Elem>
class FlexBuffer {
 public:
  static_assert(sizeof(Header) % alignof(Elem) == 0);
  explicit FlexBuffer(size_t n)
      : storage_(new std::max_align_t[(sizeof(Header) + n * sizeof(Elem)) / sizeof(std::max_align_t) + 1]()) {
  }
  Header* header() { return reinterpret_cast<Header*>(storage_.get()); }
  Elem* entries() {
    return reinterpret_cast<Elem*>(reinterpret_cast<unsigned char*>(storage_.get()) + sizeof(Header));
  }
  void* data() { return storage_.get(); }

 private:
  std::unique_ptr<std::max_align_t[]> storage_;
};

}  // namespace forkvm::x86::abi
