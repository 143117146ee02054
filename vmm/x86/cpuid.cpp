#include "vmm/x86/cpuid.hpp"

#include <algorithm>

namespace forkvm::x86 {
namespace {

constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheParams = 0x4;
constexpr uint32_t kLeafPower = 0x6;
constexpr uint32_t kLeafPmu = 0xA;
constexpr uint32_t kLeafTopology = 0xB;
constexpr uint32_t kLeafTopologyV2 = 0x1F;
constexpr uint32_t kLeafKvmSignature = 0x4000'0000;
constexpr uint32_t kLeafKvmFeatures = 0x4000'0001;
constexpr uint32_t kLeafAmdSizes = 0x8000'0008;
constexpr uint32_t kLeafAmdCacheTopology = 0x8000'001D;
constexpr uint32_t kLeafAmdExtApicId = 0x8000'001E;

constexpr uint32_t kEcxHypervisor = 1U << 31;
constexpr uint32_t kEcxTscDeadline = 1U << 24;
constexpr uint32_t kEdxHtt = 1U << 28;
constexpr uint32_t kEaxArat = 1U << 2;  // APIC timer keeps running in deep C-states

// Replaces bits [lo, lo + width) of `reg` with `value` (truncated to width).
uint32_t set_bits(uint32_t reg, unsigned lo, unsigned width, uint32_t value) {
  const uint32_t mask = (width >= 32 ? ~0U : ((1U << width) - 1)) << lo;
  return (reg & ~mask) | ((value << lo) & mask);
}

// Bits of the APIC id that number the cores of a package: the x2APIC
// "shift to the next level" for the core level.
uint32_t bits_for(uint32_t count) {
  uint32_t bits = 0;
  while ((1U << bits) < count) ++bits;
  return bits;
}

// Leaves 0xB and 0x1F: subleaf 0 is the SMT level (one thread per core),
// subleaf 1 the core level (every vCPU a core of one package), subleaf 2 the
// invalid level that ends enumeration. EDX is the full x2APIC id.
void add_topology_leaf(std::vector<kvm_cpuid_entry2>& out, uint32_t leaf, uint32_t apic_id, uint32_t count) {
  constexpr uint32_t kLevelSmt = 1;
  constexpr uint32_t kLevelCore = 2;
  for (uint32_t sub = 0; sub < 3; ++sub) {
    kvm_cpuid_entry2 e{};
    e.function = leaf;
    e.index = sub;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.edx = apic_id;
    if (sub == 0) {
      e.eax = 0;
      e.ebx = 1;
      e.ecx = (kLevelSmt << 8) | sub;
    } else if (sub == 1) {
      e.eax = bits_for(count);
      e.ebx = count;
      e.ecx = (kLevelCore << 8) | sub;
    } else {
      e.ecx = sub;  // level type 0: invalid, no more levels
    }
    out.push_back(e);
  }
}

// Leaf 4 (Intel) and 0x8000001D (AMD) describe each cache. EAX[25:14] is
// "logical processors sharing this cache - 1": private L1/L2 per core, one
// L3 shared by the whole package.
uint32_t cache_sharing(uint32_t eax, uint32_t count) {
  const uint32_t level = (eax >> 5) & 0x7;
  const uint32_t sharing = level >= 3 ? count - 1 : 0;
  return set_bits(eax, 14, 12, std::min<uint32_t>(sharing, 0xFFF));
}

}  // namespace

std::vector<kvm_cpuid_entry2> filter_cpuid(std::vector<kvm_cpuid_entry2> supported, uint32_t vcpu_index,
                                           uint32_t vcpu_count) {
  const uint32_t count = std::max<uint32_t>(vcpu_count, 1);
  const uint32_t apic_id = vcpu_index;
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size() + 6);
  bool has_topology = false;
  bool has_topology_v2 = false;

  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case kLeafFeatures:
        // Initial APIC id and the number of addressable logical processors
        // in the package; the MADT lists the same ids.
        e.ebx = set_bits(e.ebx, 24, 8, apic_id);
        e.ebx = set_bits(e.ebx, 16, 8, std::min<uint32_t>(count, 0xFF));
        e.ecx |= kEcxHypervisor;
        // HTT means "EBX[23:16] is meaningful"; Linux reads it only when set.
        e.edx = count > 1 ? (e.edx | kEdxHtt) : (e.edx & ~kEdxHtt);
        break;
      case kLeafCacheParams:
        if ((e.eax & 0x1F) != 0) {  // type 0 is the end-of-list entry
          e.eax = set_bits(e.eax, 26, 6, std::min<uint32_t>(count - 1, 63));  // cores per package - 1
          e.eax = cache_sharing(e.eax, count);
        }
        break;
      case kLeafPower:
        // Thermal and power management (turbo, HWP, EPB) are host-owned;
        // only "APIC timer always running" is true of KVM's LAPIC.
        e.eax &= kEaxArat;
        e.ebx = e.ecx = e.edx = 0;
        break;
      case kLeafPmu:
        // Architectural PMU version 0: no guest perf counters. Counters
        // would need KVM PMU passthrough and they do not survive a fork.
        e.eax = e.ebx = e.ecx = e.edx = 0;
        break;
      case kLeafTopology:
        has_topology = true;
        continue;  // rebuilt below with every subleaf
      case kLeafTopologyV2:
        has_topology_v2 = true;
        continue;
      case kLeafKvmSignature:
        // "KVMKVMKVM\0\0\0" in EBX, ECX, EDX: Linux's KVM guest support
        // (kvmclock, PV EOI, steal time) keys on it.
        e.eax = kLeafKvmFeatures;
        e.ebx = 0x4b4d564b;  // "KVMK"
        e.ecx = 0x564b4d56;  // "VMKV"
        e.edx = 0x0000004d;  // "M\0\0\0"
        break;
      case kLeafAmdSizes:
        // ECX[7:0] NC: cores in the package - 1; ECX[15:12]: APIC id bits
        // that number the cores. EAX (address sizes) stays the host's.
        e.ecx = set_bits(e.ecx, 0, 8, std::min<uint32_t>(count - 1, 0xFF));
        e.ecx = set_bits(e.ecx, 12, 4, bits_for(count));
        break;
      case kLeafAmdCacheTopology:
        if ((e.eax & 0x1F) != 0) e.eax = cache_sharing(e.eax, count);
        break;
      case kLeafAmdExtApicId:
        // Extended APIC id, compute unit (= core) id with one thread per
        // unit, node 0 of one node per package.
        e.eax = apic_id;
        e.ebx = apic_id & 0xFF;
        e.ecx = 0;
        e.edx = 0;
        break;
      default:
        break;
    }
    out.push_back(e);
  }
  if (has_topology) add_topology_leaf(out, kLeafTopology, apic_id, count);
  if (has_topology_v2) add_topology_leaf(out, kLeafTopologyV2, apic_id, count);
  return out;
}

void enable_tsc_deadline(std::vector<kvm_cpuid_entry2>& entries) {
  for (auto& e : entries) {
    if (e.function == kLeafFeatures) e.ecx |= kEcxTscDeadline;
  }
}

const kvm_cpuid_entry2* find_cpuid(const std::vector<kvm_cpuid_entry2>& entries, uint32_t function,
                                   uint32_t index) {
  for (const auto& e : entries) {
    if (e.function != function) continue;
    if ((e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0 && e.index != index) continue;
    return &e;
  }
  return nullptr;
}

}  // namespace forkvm::x86
