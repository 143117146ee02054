// The /dev/kvm system handle: API version check, capabilities and the
// host-wide lists (supported CPUID, MSR indices) every VM is built from.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

class Kvm {
 public:
  // Opens /dev/kvm (or `path`) and refuses any API version but 12, the only
  // one Linux has shipped since 2.6.22.
  static Result<Kvm> open(const char* path = "/dev/kvm");

  // KVM_CHECK_EXTENSION on the system fd: 0 when absent, otherwise a
  // capability-specific positive value (a count, a size, or 1).
  [[nodiscard]] int check_extension(int cap) const;
  // Size of the per-vCPU kvm_run mapping.
  [[nodiscard]] Result<size_t> vcpu_mmap_size() const;
  // Every CPUID leaf KVM can virtualise on this host, unfiltered.
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  // MSR indices KVM saves and restores for a vCPU (for snapshots).
  [[nodiscard]] Result<std::vector<uint32_t>> msr_index_list() const;

  [[nodiscard]] int fd() const { return fd_.get(); }

 private:
  explicit Kvm(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace forkvm
