#include "vmm/x86/acpi.hpp"

#include <cstring>
#include <string_view>

#include "vmm/x86/aml.hpp"
#include "vmm/x86/layout.hpp"

namespace forkvm::x86::acpi {
namespace {

constexpr std::string_view kOemId = "FORKVM";         // 6 bytes
constexpr std::string_view kOemTableId = "FORKVMTB";  // 8 bytes
constexpr std::string_view kCreatorId = "FKVM";       // 4 bytes
constexpr size_t kHeaderSize = 36;
constexpr size_t kFadtSize = 276;  // ACPI 6.0+ FADT, through the hypervisor vendor id

constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasAccessByte = 1;
constexpr uint8_t kGasAccessWord = 2;

constexpr size_t kFacsSize = 64;
constexpr uint32_t kFadtFlagWbinvd = 1U << 0;
constexpr uint32_t kFadtFlagPowerButton = 1U << 4;  // no fixed power button: none to press
constexpr uint32_t kFadtFlagSleepButton = 1U << 5;  // no fixed sleep button either
constexpr uint32_t kFadtFlagResetRegSup = 1U << 10;
// IA-PC boot architecture flags; no "8042 present", as in Firecracker: the
// guest does not probe for a keyboard, and reset still uses port 0x64.
constexpr uint16_t kIapcVgaNotPresent = 1U << 2;
constexpr uint16_t kIapcMsiNotSupported = 1U << 3;
constexpr uint16_t kIapcPcieAspmControls = 1U << 4;

constexpr uint32_t kMadtPcatCompat = 1;  // dual 8259s present (KVM's PIC)
constexpr uint8_t kMadtLocalApic = 0;
constexpr uint8_t kMadtIoApic = 1;
constexpr uint8_t kMadtIntSrcOverride = 2;
constexpr uint8_t kMadtLocalApicNmi = 4;

// Little-endian byte writer: tables are assembled byte by byte so that no
// packed struct (and no unaligned access) is needed.
class Writer {
 public:
  explicit Writer(std::vector<uint8_t>& out) : out_(out) {}
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { le(v, 2); }
  void u32(uint32_t v) { le(v, 4); }
  void u64(uint64_t v) { le(v, 8); }
  void str(std::string_view s) { out_.insert(out_.end(), s.begin(), s.end()); }
  void zeros(size_t n) { out_.insert(out_.end(), n, 0); }
  // Generic Address Structure for an I/O register of `bytes` bytes.
  void gas_io(uint16_t port, uint8_t bytes) {
    u8(kGasSystemIo);
    u8(static_cast<uint8_t>(bytes * 8));  // register bit width
    u8(0);                                // bit offset
    u8(bytes == 1 ? kGasAccessByte : kGasAccessWord);
    u64(port);
  }

 private:
  void le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t>& out_;
};

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (size_t i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// The common 36-byte header; length and checksum are patched by finish().
void header(Writer& w, std::string_view signature, uint8_t revision) {
  w.str(signature);
  w.u32(0);  // length, patched
  w.u8(revision);
  w.u8(0);  // checksum, patched
  w.str(kOemId);
  w.str(kOemTableId);
  w.u32(1);  // OEM revision
  w.str(kCreatorId);
  w.u32(1);  // creator revision
}

void finish(std::vector<uint8_t>& b, size_t start) {
  put32(b, start + 4, static_cast<uint32_t>(b.size() - start));
  b[start + 9] = 0;
  b[start + 9] = static_cast<uint8_t>(-checksum({b.data() + start, b.size() - start}));
}

void align16(std::vector<uint8_t>& b) { b.resize((b.size() + 15) & ~size_t{15}, 0); }

// The VM generation ID (Microsoft's spec; Linux drivers/virt/vmgenid.c binds
// "VMGENCTR"): ADDR names the 16 bytes the VMM rewrites on every restore and
// fork; the GED's interrupt runs _EVT, whose Notify makes the guest read them
// and reseed its RNG.
aml::Bytes vm_generation_devices() {
  using namespace aml;
  const Bytes addr[] = {integer(lowmem::kVmGenId & 0xffffffff), integer(lowmem::kVmGenId >> 32)};
  const Bytes vgen = device("VGEN", join({
                                        name("_HID", string("VMGENCTR")),
                                        name("_CID", string("VM_GEN_COUNTER")),
                                        name("_DDN", string("VM_GEN_COUNTER")),
                                        name("ADDR", package(addr)),
                                    }));
  const Bytes ged = device("GED0", join({
                                       name("_HID", string("ACPI0013")),
                                       name("_UID", integer(0)),
                                       name("_CRS", edge_interrupt_resource(kGedGsi)),
                                       method("_EVT", 1, notify("\\_SB.VGEN", 0x80)),
                                   }));
  return scope("\\_SB", join({vgen, ged}));
}

void build_dsdt(std::vector<uint8_t>& b) {
  const size_t start = b.size();
  Writer w(b);
  header(w, "DSDT", 2);
  // Name (_S5, Package (4) { 5, 0, 0, 0 }): the SLP_TYP values for soft off.
  const aml::Bytes s5[] = {aml::integer(kSlpTypS5), aml::integer(0), aml::integer(0), aml::integer(0)};
  for (uint8_t byte : aml::name("_S5", aml::package(s5))) w.u8(byte);
  for (uint8_t byte : vm_generation_devices()) w.u8(byte);
  finish(b, start);
}

void build_fadt(std::vector<uint8_t>& b, uint64_t dsdt_addr, uint64_t facs_addr) {
  const size_t start = b.size();
  Writer w(b);
  header(w, "FACP", 6);
  w.u32(static_cast<uint32_t>(facs_addr));  // 36 FIRMWARE_CTRL
  w.u32(static_cast<uint32_t>(dsdt_addr));  // 40 DSDT
  w.u8(0);                                  // 44 reserved
  w.u8(0);                                  // 45 preferred PM profile: unspecified
  w.u16(kSciIrq);                           // 46 SCI_INT
  w.u32(0);                  // 48 SMI_CMD: none, the machine is always in ACPI mode
  w.zeros(56 - 52);          // 52..55 ACPI_ENABLE/DISABLE, S4BIOS_REQ, PSTATE_CNT
  w.u32(kPm1EventPort);      // 56 PM1a_EVT_BLK
  w.u32(0);                  // 60 PM1b_EVT_BLK
  w.u32(kPm1ControlPort);    // 64 PM1a_CNT_BLK
  w.zeros(88 - 68);          // 68..87 PM1b_CNT, PM2_CNT, PM_TMR, GPE0, GPE1: none
  w.u8(kPm1EventLength);     // 88 PM1_EVT_LEN
  w.u8(kPm1ControlLength);   // 89 PM1_CNT_LEN
  w.zeros(109 - 90);         // 90..108 other lengths, C-state latencies, RTC alarms
  w.u16(kIapcVgaNotPresent | kIapcMsiNotSupported | kIapcPcieAspmControls);  // 109 IAPC_BOOT_ARCH
  w.u8(0);                                                                   // 111 reserved
  w.u32(kFadtFlagWbinvd | kFadtFlagPowerButton | kFadtFlagSleepButton | kFadtFlagResetRegSup);  // 112
  w.gas_io(kResetPort, 1);                 // 116 RESET_REG
  w.u8(kResetValue);                       // 128 RESET_VALUE
  w.u16(0);                                // 129 ARM boot flags
  w.u8(0);                                 // 131 FADT minor version
  w.u64(facs_addr);                        // 132 X_FIRMWARE_CTRL
  w.u64(dsdt_addr);                        // 140 X_DSDT
  w.gas_io(kPm1EventPort, kPm1EventLength / 2);    // 148 X_PM1a_EVT_BLK (status, then enable)
  w.zeros(12);                                     // 160 X_PM1b_EVT_BLK
  w.gas_io(kPm1ControlPort, kPm1ControlLength);    // 172 X_PM1a_CNT_BLK
  w.zeros(244 - 184);                              // 184..243 PM1b_CNT, PM2, PM timer, GPEs: none
  w.zeros(24);                                     // 244 SLEEP_CONTROL_REG, 256 SLEEP_STATUS_REG
  w.str(std::string_view("FORKVM\0\0", 8));      // 268 hypervisor vendor identity (8 bytes)
  finish(b, start);
}

// The firmware control structure a non-reduced FADT must point at; nothing
// here uses its waking vector or global lock.
void build_facs(std::vector<uint8_t>& b) {
  Writer w(b);
  w.str("FACS");
  w.u32(kFacsSize);
  w.u32(0);  // hardware signature
  w.u32(0);  // firmware waking vector
  w.u32(0);  // global lock
  w.u32(0);  // flags
  w.u64(0);  // X firmware waking vector
  w.u8(2);   // version
  w.zeros(kFacsSize - 33);
}

void build_madt(std::vector<uint8_t>& b, uint32_t vcpu_count) {
  const size_t start = b.size();
  Writer w(b);
  header(w, "APIC", 5);
  w.u32(static_cast<uint32_t>(layout::kLapicBase));
  w.u32(kMadtPcatCompat);
  for (uint32_t i = 0; i < vcpu_count; ++i) {
    w.u8(kMadtLocalApic);
    w.u8(8);
    w.u8(static_cast<uint8_t>(i));  // ACPI processor UID
    w.u8(static_cast<uint8_t>(i));  // APIC id: the vCPU index, as in CPUID
    w.u32(1);                       // enabled
  }
  w.u8(kMadtIoApic);
  w.u8(12);
  w.u8(0);  // IOAPIC id: KVM's IOAPIC resets with id 0
  w.u8(0);
  w.u32(static_cast<uint32_t>(layout::kIoapicBase));
  w.u32(0);  // GSI base
  // ISA IRQ 0 (the PIT) is wired to IOAPIC pin 2 on every PC and in KVM.
  w.u8(kMadtIntSrcOverride);
  w.u8(10);
  w.u8(0);   // bus: ISA
  w.u8(0);   // source IRQ
  w.u32(2);  // GSI
  w.u16(0);  // flags: conforms to the bus
  // The SCI: level-triggered, active-high (flags 0b1101), as QEMU's boards.
  w.u8(kMadtIntSrcOverride);
  w.u8(10);
  w.u8(0);
  w.u8(static_cast<uint8_t>(kSciIrq));
  w.u32(kSciIrq);
  w.u16(0x000d);
  // LINT1 of every processor (UID 0xff) is NMI.
  w.u8(kMadtLocalApicNmi);
  w.u8(6);
  w.u8(0xff);
  w.u16(0);  // flags: conforms
  w.u8(1);   // LINT1
  finish(b, start);
}

}  // namespace

uint8_t checksum(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t v : bytes) sum = static_cast<uint8_t>(sum + v);
  return sum;
}

Result<Tables> build_tables(uint32_t vcpu_count, uint64_t base) {
  // A Local APIC entry has an 8-bit APIC id; beyond 255 needs x2APIC entries.
  if (vcpu_count == 0 || vcpu_count > 255)
    return make_error("ACPI MADT: {} vCPUs is not in 1..255", vcpu_count);
  Tables t;
  t.base = base;
  auto& b = t.blob;

  // RSDP first; its XSDT pointer is patched once the XSDT is placed.
  t.rsdp = base;
  b.resize(36, 0);
  std::memcpy(b.data(), "RSD PTR ", 8);
  std::memcpy(b.data() + 9, kOemId.data(), 6);
  b[15] = 2;  // revision: ACPI 2.0+, has XSDT
  put32(b, 20, 36);
  align16(b);

  // The FACS must be 64-byte aligned (ACPI 6.4, 5.2.10).
  b.resize((b.size() + 63) & ~size_t{63}, 0);
  t.facs = b.size();
  build_facs(b);
  t.dsdt = b.size();
  build_dsdt(b);
  align16(b);
  t.fadt = b.size();
  build_fadt(b, base + t.dsdt, base + t.facs);
  align16(b);
  t.madt = b.size();
  build_madt(b, vcpu_count);
  align16(b);

  t.xsdt = b.size();
  {
    Writer w(b);
    header(w, "XSDT", 1);
    w.u64(base + t.fadt);
    w.u64(base + t.madt);
    finish(b, t.xsdt);
  }

  const uint64_t xsdt_addr = base + t.xsdt;
  for (size_t i = 0; i < 8; ++i) b[24 + i] = static_cast<uint8_t>(xsdt_addr >> (8 * i));
  b[8] = static_cast<uint8_t>(-checksum({b.data(), 20}));   // ACPI 1.0 part
  b[32] = static_cast<uint8_t>(-checksum({b.data(), 36}));  // whole RSDP
  return t;
}

Result<uint64_t> write_tables(const GuestMemory& memory, uint32_t vcpu_count) {
  Tables t = FORKVM_TRY(build_tables(vcpu_count, lowmem::kAcpi));
  if (t.blob.size() > lowmem::kVmGenId - lowmem::kAcpi) {
    return make_error("ACPI tables of {} bytes overflow the BIOS area", t.blob.size());
  }
  if (!memory.write(lowmem::kAcpi, t.blob)) return make_error("write ACPI tables at {:#x}", lowmem::kAcpi);
  return t.rsdp;
}

}  // namespace forkvm::x86::acpi
