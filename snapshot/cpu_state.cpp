#include "snapshot/cpu_state.hpp"

#include <vector>

#include "vmm/log.hpp"

namespace forkvm::snapshot {
namespace {

constexpr uint32_t kMsrTsc = 0x10;
constexpr uint32_t kMsrTscDeadline = 0x6e0;
// Bounds on what a state file may claim; far above any real vCPU.
constexpr size_t kMaxCpuidEntries = 8192;
constexpr size_t kMaxMsrs = 4096;
constexpr size_t kMaxXsave = 1U << 20;
// KVM_GET_MSRS takes any count, but smaller batches keep a refusal cheap.
constexpr size_t kMsrBatch = 64;

// Reads every MSR in `indices` that KVM will read, skipping refused ones.
Result<std::vector<kvm_msr_entry>> read_msrs(const Vcpu& vcpu, std::span<const uint32_t> indices) {
  std::vector<kvm_msr_entry> out;
  size_t pos = 0;
  while (pos < indices.size()) {
    const auto batch = indices.subspan(pos, std::min(kMsrBatch, indices.size() - pos));
    auto got = FORKVM_TRY(vcpu.read_msrs_prefix(batch));
    out.insert(out.end(), got.begin(), got.end());
    pos += got.size();
    if (got.size() < batch.size()) {
      log(LogLevel::debug, "snapshot: vCPU {}: MSR {:#x} not readable, left out", vcpu.index(), indices[pos]);
      ++pos;
    }
  }
  return out;
}

Status write_msrs(Vcpu& vcpu, std::span<const kvm_msr_entry> entries) {
  size_t pos = 0;
  while (pos < entries.size()) {
    const auto batch = entries.subspan(pos, std::min(kMsrBatch, entries.size() - pos));
    const size_t n = FORKVM_TRY(vcpu.write_msrs_prefix(batch));
    pos += n;
    if (n < batch.size()) {
      // Read on this host a moment ago but refused now: a host difference
      // the guest may or may not notice. Say so and go on.
      log(LogLevel::warn, "restore: vCPU {}: KVM refused MSR {:#x} = {:#x}; skipped", vcpu.index(),
          entries[pos].index, entries[pos].data);
      ++pos;
    }
  }
  return {};
}

}  // namespace

Status save_vcpu(const Vcpu& vcpu, std::span<const uint32_t> msr_indices, StateWriter& out) {
  const kvm_mp_state mp = FORKVM_TRY(vcpu.mp_state());  // first: it runs pending APIC events
  const auto cpuid = FORKVM_TRY(vcpu.cpuid2());
  const kvm_regs regs = FORKVM_TRY(vcpu.regs());
  const kvm_sregs sregs = FORKVM_TRY(vcpu.sregs());
  const auto xsave = FORKVM_TRY(vcpu.xsave());
  const kvm_xcrs xcrs = FORKVM_TRY(vcpu.xcrs());
  const kvm_debugregs debugregs = FORKVM_TRY(vcpu.debugregs());
  const kvm_lapic_state lapic = FORKVM_TRY(vcpu.lapic());
  const auto msrs = FORKVM_TRY(read_msrs(vcpu, msr_indices));
  const uint32_t tsc_khz = FORKVM_TRY(vcpu.tsc_khz());
  const kvm_vcpu_events events = FORKVM_TRY(vcpu.vcpu_events());  // last
  out.u32(vcpu.index());
  out.pod_array(std::span<const kvm_cpuid_entry2>(cpuid));
  out.pod(mp);
  out.pod(regs);
  out.pod(sregs);
  out.bytes(xsave);
  out.pod(xcrs);
  out.pod(debugregs);
  out.pod(lapic);
  out.pod_array(std::span<const kvm_msr_entry>(msrs));
  out.pod(events);
  out.u32(tsc_khz);
  return {};
}

Status restore_vcpu(Vcpu& vcpu, StateReader& in) {
  const uint32_t index = FORKVM_TRY(in.u32());
  if (index != vcpu.index())
    return make_error("state of vCPU {} found where vCPU {} was expected", index, vcpu.index());
  const auto cpuid = FORKVM_TRY(in.pod_array<kvm_cpuid_entry2>(kMaxCpuidEntries));
  const auto mp = FORKVM_TRY(in.pod<kvm_mp_state>());
  const auto regs = FORKVM_TRY(in.pod<kvm_regs>());
  const auto sregs = FORKVM_TRY(in.pod<kvm_sregs>());
  const auto xsave = FORKVM_TRY(in.bytes(kMaxXsave));
  const auto xcrs = FORKVM_TRY(in.pod<kvm_xcrs>());
  const auto debugregs = FORKVM_TRY(in.pod<kvm_debugregs>());
  const auto lapic = FORKVM_TRY(in.pod<kvm_lapic_state>());
  auto msrs = FORKVM_TRY(in.pod_array<kvm_msr_entry>(kMaxMsrs));
  const auto events = FORKVM_TRY(in.pod<kvm_vcpu_events>());
  const uint32_t tsc_khz = FORKVM_TRY(in.u32());

  // A different TSC frequency would make every guest deadline wrong; hosts
  // without TSC scaling refuse to change it, which is then the right error.
  if (tsc_khz != 0 && FORKVM_TRY(vcpu.tsc_khz()) != tsc_khz) FORKVM_CHECK(vcpu.set_tsc_khz(tsc_khz));

  // A saved TSC_DEADLINE of 0 means no timer armed, or one that fired while
  // we saved. Firecracker's fix: make it the saved TSC, so at worst the
  // guest takes one timer interrupt at once instead of never again.
  uint64_t tsc = 0;
  for (const auto& m : msrs) {
    if (m.index == kMsrTsc) tsc = m.data;
  }
  for (auto& m : msrs) {
    if (m.index == kMsrTscDeadline && m.data == 0) m.data = tsc;
  }

  FORKVM_CHECK(vcpu.set_cpuid2(cpuid));
  FORKVM_CHECK(vcpu.set_mp_state(mp));
  FORKVM_CHECK(vcpu.set_regs(regs));
  FORKVM_CHECK(vcpu.set_sregs(sregs));  // the APIC base MSR comes with sregs, before the LAPIC
  FORKVM_CHECK(vcpu.set_xsave(xsave));
  // KVM reports no XCRs when the host lacks XSAVE, and then refuses SET_XCRS.
  if (xcrs.nr_xcrs > 0) FORKVM_CHECK(vcpu.set_xcrs(xcrs));
  FORKVM_CHECK(vcpu.set_debugregs(debugregs));
  // LAPIC before MSRs: KVM drops a TSC_DEADLINE written while the LAPIC's
  // timer is not yet in TSC-deadline mode, and the guest's timer never fires
  // again (kata-containers #13798).
  FORKVM_CHECK(vcpu.set_lapic(lapic));
  FORKVM_CHECK(write_msrs(vcpu, msrs));
  // SET_REGS clears pending exceptions, so events go after it.
  FORKVM_CHECK(vcpu.set_vcpu_events(events));
  // Only fails when the guest never enabled kvmclock: nothing to tell it then.
  if (auto s = vcpu.kvmclock_ctrl(); !s.ok()) log(LogLevel::debug, "restore: {}", s.error().message);
  return {};
}

Status save_vm(const Vm& vm, StateWriter& out) {
  const kvm_clock_data clock = FORKVM_TRY(vm.clock());
  out.pod(FORKVM_TRY(vm.irqchip(KVM_IRQCHIP_PIC_MASTER)));
  out.pod(FORKVM_TRY(vm.irqchip(KVM_IRQCHIP_PIC_SLAVE)));
  out.pod(FORKVM_TRY(vm.irqchip(KVM_IRQCHIP_IOAPIC)));
  out.pod(FORKVM_TRY(vm.pit2()));
  out.pod(clock);
  return {};
}

Status restore_vm(Vm& vm, StateReader& in) {
  for (uint32_t chip :
       {uint32_t{KVM_IRQCHIP_PIC_MASTER}, uint32_t{KVM_IRQCHIP_PIC_SLAVE}, uint32_t{KVM_IRQCHIP_IOAPIC}}) {
    const auto c = FORKVM_TRY(in.pod<kvm_irqchip>());
    if (c.chip_id != chip)
      return make_error("state of the VM: irqchip {} found where {} was expected", c.chip_id, chip);
    FORKVM_CHECK(vm.set_irqchip(c));
  }
  FORKVM_CHECK(vm.set_pit2(FORKVM_TRY(in.pod<kvm_pit_state2>())));
  kvm_clock_data clock = FORKVM_TRY(in.pod<kvm_clock_data>());
  // Continue the guest's clock from the saved value: its monotonic time does
  // not jump by however long the snapshot sat on disk. (Stepping wall time
  // forward is the in-guest agent's job; KVM_CLOCK_REALTIME would do it here.)
  clock.flags = 0;
  FORKVM_CHECK(vm.set_clock(clock));
  return {};
}

}  // namespace forkvm::snapshot
