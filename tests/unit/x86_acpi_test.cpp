#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/acpi.hpp"
#include "vmm/x86/layout.hpp"

namespace forkvm::x86::acpi {
namespace {

uint32_t u32_at(const std::vector<uint8_t>& b, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint64_t u64_at(const std::vector<uint8_t>& b, size_t at) {
  uint64_t v = 0;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
std::string sig_at(const std::vector<uint8_t>& b, size_t at) {
  return std::string(reinterpret_cast<const char*>(b.data() + at), 4);
}
// Length from the table's header; its bytes must sum to zero.
void check_table(const std::vector<uint8_t>& b, size_t at, const char* sig, uint32_t expected_len) {
  CAPTURE(sig);
  CHECK(sig_at(b, at) == sig);
  const uint32_t len = u32_at(b, at + 4);
  CHECK(len == expected_len);
  REQUIRE(at + len <= b.size());
  CHECK(checksum({b.data() + at, len}) == 0);
}

TEST_CASE("ACPI tables: checksums, lengths and pointers") {
  const uint64_t base = 0xe0000;
  for (uint32_t n : {1U, 2U, 8U, 255U}) {
    CAPTURE(n);
    auto t = build_tables(n, base);
    REQUIRE(t.ok());
    const auto& b = t->blob;
    CHECK(t->rsdp == base);
    CHECK(std::string(reinterpret_cast<const char*>(b.data()), 8) == "RSD PTR ");
    CHECK(b[15] == 2);
    CHECK(u32_at(b, 20) == 36);
    CHECK(checksum({b.data(), 20}) == 0);
    CHECK(checksum({b.data(), 36}) == 0);
    CHECK(u64_at(b, 24) == base + t->xsdt);

    check_table(b, t->xsdt, "XSDT", 36 + 16);
    CHECK(u64_at(b, t->xsdt + 36) == base + t->fadt);
    CHECK(u64_at(b, t->xsdt + 44) == base + t->madt);

    check_table(b, t->fadt, "FACP", 276);
    CHECK(b[t->fadt + 8] == 6);                           // revision
    CHECK(u64_at(b, t->fadt + 140) == base + t->dsdt);    // X_DSDT
    // Not hardware-reduced: Linux keeps the legacy PIC and maps ISA IRQs 0-15.
    CHECK((u32_at(b, t->fadt + 112) & (1U << 20)) == 0);
    CHECK(u32_at(b, t->fadt + 56) == kPm1EventPort);    // PM1a_EVT_BLK
    CHECK(u32_at(b, t->fadt + 64) == kPm1ControlPort);  // PM1a_CNT_BLK
    CHECK(b[t->fadt + 88] == 4);                        // PM1_EVT_LEN
    CHECK(b[t->fadt + 89] == 2);                        // PM1_CNT_LEN
    CHECK(u32_at(b, t->fadt + 48) == 0);                // no SMI_CMD: always in ACPI mode
    // X_PM1a_CNT_BLK: SystemIO, 16 bits, word access.
    CHECK(b[t->fadt + 172] == 1);
    CHECK(b[t->fadt + 173] == 16);
    CHECK(u64_at(b, t->fadt + 176) == kPm1ControlPort);
    // FACS: 64-byte aligned, pointed at by both FIRMWARE_CTRL fields.
    CHECK((base + t->facs) % 64 == 0);
    CHECK(u32_at(b, t->fadt + 36) == base + t->facs);
    CHECK(u64_at(b, t->fadt + 132) == base + t->facs);
    CHECK(std::memcmp(b.data() + t->facs, "FACS", 4) == 0);
    CHECK(u32_at(b, t->facs + 4) == 64);
    CHECK(u64_at(b, t->fadt + 120) == kResetPort);
    CHECK(b[t->fadt + 128] == kResetValue);

    // \_S5 (13 bytes), then \_SB with VGEN and GED0 (x86_aml_test.cpp).
    check_table(b, t->dsdt, "DSDT", 36 + 13 + 156);
    const uint8_t s5[] = {0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, 0x05, 0x00, 0x00, 0x00};
    CHECK(std::memcmp(b.data() + t->dsdt + 36, s5, sizeof(s5)) == 0);

    check_table(b, t->madt, "APIC", 44 + 8 * n + 12 + 10 + 10 + 6);
    CHECK(u32_at(b, t->madt + 36) == 0xfee00000);
    for (uint32_t i = 0; i < n; ++i) {
      const size_t e = t->madt + 44 + 8 * i;
      CHECK(b[e] == 0);
      CHECK(b[e + 1] == 8);
      CHECK(b[e + 3] == i);          // APIC id
      CHECK(u32_at(b, e + 4) == 1);  // enabled
    }
    const size_t io = t->madt + 44 + 8 * n;
    CHECK(b[io] == 1);
    CHECK(u32_at(b, io + 4) == 0xfec00000);
    CHECK(b[io + 12] == 2);  // IRQ0 override
    CHECK(u32_at(b, io + 16) == 2);
  }
}

TEST_CASE("ACPI tables: vCPU count limits") {
  CHECK_FALSE(build_tables(0, 0xe0000).ok());
  CHECK_FALSE(build_tables(256, 0xe0000).ok());
}

TEST_CASE("ACPI tables are written into the BIOS area") {
  auto mem = GuestMemory::create_anonymous(32ULL << 20);
  REQUIRE(mem.ok());
  auto rsdp = write_tables(*mem, 4);
  REQUIRE(rsdp.ok());
  CHECK(*rsdp == lowmem::kAcpi);
  char sig[8];
  REQUIRE(mem->read(*rsdp, {reinterpret_cast<uint8_t*>(sig), 8}));
  CHECK(std::string(sig, 8) == "RSD PTR ");
}

TEST_CASE("ACPI poweroff detection on the PM1a control register") {
  const auto s5 = static_cast<uint16_t>((5 << 10) | (1 << 13));
  CHECK(is_poweroff_write(kPm1ControlPort, s5));
  CHECK_FALSE(is_poweroff_write(kPm1ControlPort, 5 << 10));                  // SLP_EN missing
  CHECK_FALSE(is_poweroff_write(kPm1ControlPort, (3 << 10) | (1 << 13)));  // S3, not S5
  CHECK_FALSE(is_poweroff_write(kPm1EventPort, s5));
  CHECK_FALSE(is_poweroff_write(0x3f8, s5));
}

}  // namespace
}  // namespace forkvm::x86::acpi
