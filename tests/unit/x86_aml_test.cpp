#include <doctest/doctest.h>

#include <algorithm>
#include <string_view>

#include "vmm/x86/acpi.hpp"
#include "vmm/x86/aml.hpp"
#include "vmm/x86/layout.hpp"

using namespace forkvm::x86;
using aml::Bytes;

namespace {

bool contains(const std::vector<uint8_t>& hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

Bytes text(std::string_view s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("AML PkgLength: one byte up to 63, then 4 + 8n bits") {
  CHECK(aml::pkg_length(0) == Bytes{0x01});
  CHECK(aml::pkg_length(62) == Bytes{0x3f});
  // 63 bytes of body + 2 of length = 65 = 0x41: low nibble in byte 0, the rest after.
  CHECK(aml::pkg_length(63) == Bytes{0x41, 0x04});
  CHECK(aml::pkg_length(4093) == Bytes{0x4f, 0xff});  // 4095: the largest with one extra byte
  CHECK(aml::pkg_length(4094) == Bytes{0x81, 0x00, 0x01});
}

TEST_CASE("AML names: padded segments, root and dual-name prefixes") {
  CHECK(aml::name_string("_S5") == text("_S5_"));
  CHECK(aml::name_string("\\_SB") == text("\\_SB_"));
  CHECK(aml::name_string("\\_SB.VGEN") == Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N'});
  CHECK(aml::name_string("A.B.C") ==
        Bytes{0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'});
}

TEST_CASE("AML integers take the smallest encoding") {
  CHECK(aml::integer(0) == Bytes{0x00});
  CHECK(aml::integer(1) == Bytes{0x01});
  CHECK(aml::integer(0x80) == Bytes{0x0a, 0x80});
  CHECK(aml::integer(0x1234) == Bytes{0x0b, 0x34, 0x12});
  CHECK(aml::integer(0xff000) == Bytes{0x0c, 0x00, 0xf0, 0x0f, 0x00});
  CHECK(aml::integer(1ULL << 32) == Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0});
}

TEST_CASE("the DSDT declares the VM generation ID device and the GED that notifies it") {
  auto t = acpi::build_tables(2, lowmem::kAcpi);
  REQUIRE(t.ok());
  const auto& b = t->blob;
  const size_t len = b[t->dsdt + 4] | (b[t->dsdt + 5] << 8);
  const std::vector<uint8_t> dsdt(b.begin() + static_cast<long>(t->dsdt),
                                  b.begin() + static_cast<long>(t->dsdt + len));
  CHECK(acpi::checksum(dsdt) == 0);
  CHECK(contains(dsdt, aml::name("_HID", aml::string("VMGENCTR"))));
  CHECK(contains(dsdt, aml::name("_CID", aml::string("VM_GEN_COUNTER"))));
  // ADDR: Package { low dword, high dword } of the generation ID's address.
  CHECK(contains(dsdt, Bytes{'A', 'D', 'D', 'R', 0x12, 0x08, 0x02, 0x0c, 0x00, 0xf0, 0x0f, 0x00, 0x00}));
  CHECK(contains(dsdt, aml::name("_HID", aml::string("ACPI0013"))));
  // Extended Interrupt descriptor: consumer, edge, active high, one GSI.
  CHECK(contains(dsdt, Bytes{0x89, 0x06, 0x00, 0x03, 0x01, acpi::kGedGsi, 0x00, 0x00, 0x00, 0x79, 0x00}));
  // _EVT: Notify (\_SB.VGEN, 0x80).
  CHECK(contains(dsdt, Bytes{0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'V', 'G', 'E', 'N', 0x0a, 0x80}));
  CHECK(lowmem::kVmGenId % 8 == 0);
  CHECK(lowmem::kVmGenId / 4096 == (lowmem::kVmGenId + lowmem::kVmGenIdSize - 1) / 4096);
}
