// One KVM vCPU: its fd, its mmapped kvm_run page, and thin wrappers over
// every state ioctl a boot or a snapshot needs. No policy lives here; the
// thread that runs it is VcpuThread, the boot values come from vmm/x86/.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/kvm.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"
#include "vmm/vm.hpp"

namespace forkvm {

class Vcpu {
 public:
  // `index` is both the KVM vCPU id and the APIC id; index 0 is the BSP.
  static Result<Vcpu> create(const Vm& vm, const Kvm& kvm, uint32_t index);

  Vcpu(Vcpu&& other) noexcept;
  Vcpu& operator=(Vcpu&& other) noexcept;
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;
  ~Vcpu();

  // What one KVM_RUN ended with. `interrupted` (EINTR: a signal or
  // immediate_exit) and `again` (EAGAIN) are not errors: the caller checks
  // why it was kicked and calls run() again.
  enum class RunResult { exit, interrupted, again };
  Result<RunResult> run();

  // The shared kvm_run page: exit reason and exit data after run().
  [[nodiscard]] kvm_run* run_state() const { return run_; }
  // Makes the next (or current) KVM_RUN return EINTR before entering the
  // guest. The kernel reads the byte at KVM_RUN entry.
  void set_immediate_exit(bool on) { run_->immediate_exit = on ? 1 : 0; }

  [[nodiscard]] uint32_t index() const { return index_; }
  [[nodiscard]] int fd() const { return fd_.get(); }

  Result<kvm_regs> regs() const;
  Status set_regs(const kvm_regs& r);
  Result<kvm_sregs> sregs() const;
  Status set_sregs(const kvm_sregs& s);
  Result<kvm_fpu> fpu() const;
  Status set_fpu(const kvm_fpu& f);
  // Reads the given MSRs; KVM stops at the first it refuses, which is an
  // error here (the caller asked for a list KVM claimed to support).
  Result<std::vector<kvm_msr_entry>> msrs(std::span<const uint32_t> indices) const;
  Status set_msrs(std::span<const kvm_msr_entry> entries);
  Result<std::vector<kvm_cpuid_entry2>> cpuid2() const;
  Status set_cpuid2(std::span<const kvm_cpuid_entry2> entries);
  Result<kvm_lapic_state> lapic() const;
  Status set_lapic(const kvm_lapic_state& l);
  Result<kvm_mp_state> mp_state() const;
  Status set_mp_state(const kvm_mp_state& m);
  // XSAVE area: 4 KiB, or the larger KVM_CAP_XSAVE2 size when the VM has
  // dynamic features (AMX) enabled. Stored as raw bytes for snapshots.
  Result<std::vector<uint8_t>> xsave() const;
  Status set_xsave(std::span<const uint8_t> area);
  Result<kvm_xcrs> xcrs() const;
  Status set_xcrs(const kvm_xcrs& x);
  Result<kvm_debugregs> debugregs() const;
  Status set_debugregs(const kvm_debugregs& d);
  Result<kvm_vcpu_events> vcpu_events() const;
  Status set_vcpu_events(const kvm_vcpu_events& e);

  // For snapshots of every MSR KVM lists: KVM reads/writes a prefix of the
  // list and stops at the first MSR it refuses. These return how far it got
  // instead of failing, so the caller can skip that MSR and go on.
  Result<std::vector<kvm_msr_entry>> read_msrs_prefix(std::span<const uint32_t> indices) const;
  Result<size_t> write_msrs_prefix(std::span<const kvm_msr_entry> entries);
  // Guest TSC frequency in kHz (KVM_GET_TSC_KHZ / KVM_SET_TSC_KHZ).
  Result<uint32_t> tsc_khz() const;
  Status set_tsc_khz(uint32_t khz);
  // KVM_KVMCLOCK_CTRL: tells the guest (PVCLOCK_GUEST_STOPPED) that it was
  // paused by the host, so its watchdogs do not report soft lockups. Fails
  // with EINVAL while the guest has not enabled kvmclock.
  Status kvmclock_ctrl();

 private:
  Vcpu(UniqueFd fd, kvm_run* run, size_t run_size, uint32_t index, size_t xsave_size);
  template <typename T>
  Result<T> get(unsigned long request, const char* name) const;
  template <typename T>
  Status set(unsigned long request, const char* name, const T& value) const;

  UniqueFd fd_;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  uint32_t index_ = 0;
  size_t xsave_size_ = 4096;  // the classic KVM_GET_XSAVE size
};

}  // namespace forkvm
