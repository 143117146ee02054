#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "vmm/x86/cpuid.hpp"

namespace forkvm::x86 {
namespace {

kvm_cpuid_entry2 leaf(uint32_t fn, uint32_t idx, uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx,
                      bool indexed = false) {
  kvm_cpuid_entry2 e{};
  e.function = fn;
  e.index = idx;
  e.flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// A small host: Intel-style basic leaves, caches, topology and the KVM and
// AMD extended leaves, with values a filter must change.
std::vector<kvm_cpuid_entry2> synthetic_host() {
  return {
      leaf(0x0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
      leaf(0x1, 0, 0x000906ea, 0x07100800, 0x7efafbff, 0xbfebfbff),  // host APIC id 7, 16 logical
      leaf(0x4, 0, 0x1c004121, 0x01c0003f, 0x3f, 0, true),           // L1d
      leaf(0x4, 1, 0x1c004143, 0x01c0003f, 0x3ff, 0, true),          // L2
      leaf(0x4, 2, 0x1c03c163, 0x02c0003f, 0x3fff, 6, true),         // L3
      leaf(0x4, 3, 0, 0, 0, 0, true),                                // end of list
      leaf(0x6, 0, 0x77, 0x2, 0x9, 0),
      leaf(0xa, 0, 0x07300404, 0, 0, 0x603),
      leaf(0xb, 0, 1, 2, 0x100, 7, true),
      leaf(0xb, 1, 4, 16, 0x201, 7, true),
      leaf(0x4000'0000, 0, 0x4000'0001, 0x4b4d564b, 0x564b4d56, 0x4d),
      leaf(0x4000'0001, 0, 0x01007afb, 0, 0, 0),
      leaf(0x8000'0008, 0, 0x3030, 0, 0x0000700f, 0),
      leaf(0x8000'001e, 0, 7, 0x0103, 0x0300, 0),
  };
}

TEST_CASE("cpuid: APIC ids, counts and hypervisor bit in leaf 1") {
  auto out = filter_cpuid(synthetic_host(), 2, 4);
  const auto* l1 = find_cpuid(out, 1);
  REQUIRE(l1 != nullptr);
  CHECK((l1->ebx >> 24) == 2);
  CHECK(((l1->ebx >> 16) & 0xff) == 4);
  CHECK((l1->ebx & 0xffff) == 0x0800);  // CLFLUSH size and brand kept
  CHECK((l1->ecx & (1U << 31)) != 0);
  CHECK((l1->edx & (1U << 28)) != 0);  // HTT with more than one logical CPU

  auto single = filter_cpuid(synthetic_host(), 0, 1);
  CHECK((find_cpuid(single, 1)->edx & (1U << 28)) == 0);
  CHECK((find_cpuid(single, 1)->ecx & (1U << 24)) == 0);
  enable_tsc_deadline(single);
  CHECK((find_cpuid(single, 1)->ecx & (1U << 24)) != 0);
}

TEST_CASE("cpuid: leaf 4 cores per package and cache sharing") {
  auto out = filter_cpuid(synthetic_host(), 0, 4);
  for (uint32_t sub = 0; sub < 3; ++sub) {
    const auto* e = find_cpuid(out, 4, sub);
    REQUIRE(e != nullptr);
    CHECK((e->eax >> 26) == 3);
    const uint32_t level = (e->eax >> 5) & 7;
    const uint32_t sharing = (e->eax >> 14) & 0xfff;
    CHECK(sharing == (level == 3 ? 3U : 0U));
    CHECK((e->eax & 0x3fff) == (synthetic_host()[2 + sub].eax & 0x3fff));  // type/level/flags kept
  }
  CHECK(find_cpuid(out, 4, 3)->eax == 0);  // the terminator stays zero
}

TEST_CASE("cpuid: leaf 0xB describes one package of N single-thread cores") {
  auto out = filter_cpuid(synthetic_host(), 5, 6);
  const auto* smt = find_cpuid(out, 0xb, 0);
  const auto* core = find_cpuid(out, 0xb, 1);
  const auto* end = find_cpuid(out, 0xb, 2);
  REQUIRE(smt != nullptr);
  REQUIRE(core != nullptr);
  REQUIRE(end != nullptr);
  CHECK(smt->eax == 0);
  CHECK(smt->ebx == 1);
  CHECK(smt->ecx == 0x100);
  CHECK(smt->edx == 5);
  CHECK(core->eax == 3);  // 6 cores need 3 bits of APIC id
  CHECK(core->ebx == 6);
  CHECK(core->ecx == 0x201);
  CHECK(core->edx == 5);
  CHECK(end->ebx == 0);
  CHECK(((end->ecx >> 8) & 0xff) == 0);
  size_t n = 0;
  for (const auto& e : out) n += e.function == 0xb ? 1 : 0;
  CHECK(n == 3);                               // host subleaves replaced, not duplicated
  CHECK(find_cpuid(out, 0x1f, 0) == nullptr);  // not invented when the host lacks it
}

TEST_CASE("cpuid: power management and PMU cleared, ARAT kept") {
  auto out = filter_cpuid(synthetic_host(), 0, 1);
  const auto* l6 = find_cpuid(out, 6);
  CHECK(l6->eax == 0x4);
  CHECK(l6->ecx == 0);
  const auto* la = find_cpuid(out, 0xa);
  CHECK(la->eax == 0);
  CHECK(la->edx == 0);
}

TEST_CASE("cpuid: KVM signature and features") {
  auto out = filter_cpuid(synthetic_host(), 0, 1);
  const auto* sig = find_cpuid(out, 0x4000'0000);
  REQUIRE(sig != nullptr);
  char name[13]{};
  std::memcpy(name, &sig->ebx, 4);
  std::memcpy(name + 4, &sig->ecx, 4);
  std::memcpy(name + 8, &sig->edx, 4);
  CHECK(std::string(name) == "KVMKVMKVM");
  CHECK(sig->eax == 0x4000'0001);
  CHECK(find_cpuid(out, 0x4000'0001)->eax == 0x01007afb);
}

TEST_CASE("cpuid: AMD core count and extended APIC id") {
  auto out = filter_cpuid(synthetic_host(), 3, 4);
  const auto* sizes = find_cpuid(out, 0x8000'0008);
  CHECK((sizes->ecx & 0xff) == 3);
  CHECK(((sizes->ecx >> 12) & 0xf) == 2);
  CHECK(sizes->eax == 0x3030);  // address sizes untouched
  const auto* ext = find_cpuid(out, 0x8000'001e);
  CHECK(ext->eax == 3);
  CHECK(ext->ebx == 3);
  CHECK(ext->ecx == 0);
}

}  // namespace
}  // namespace forkvm::x86
