// Minimal ACPI for an x86 guest: RSDP -> XSDT -> {FADT -> DSDT + FACS, MADT}.
// The MADT is what brings up the APs; the FADT's PM1 control register and
// the DSDT's \_S5 are how Linux powers off. The DSDT also holds the VM
// generation ID device (\_SB.VGEN, Linux's vmgenid driver) and a Generic
// Event Device (\_SB.GED0) whose interrupt makes the guest re-read it.
//
// Not hardware-reduced, on purpose: in hardware-reduced mode Linux drops the
// legacy PIC and leaves ISA IRQs 0-15 unmapped, so the serial port's IRQ 4
// and the virtio_mmio.device= IRQs from the command line would have no
// Linux IRQ (request_irq fails with EINVAL and console output stalls).
// A PM1 event + control block (no PM timer, no GPEs, SMI_CMD 0 = always in
// ACPI mode) is all the fixed hardware it then needs.
//
// Power off: Linux writes SLP_TYP(5) << 10 | SLP_EN to the 16-bit PM1a
// control register at kPm1ControlPort; the PIO device there calls
// is_poweroff_write(). Reboot: the FADT reset register is the i8042's command
// port with 0xFE, the pulse-reset command the i8042 model already handles.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace forkvm::x86::acpi {

// Where QEMU's PIIX4 puts its PM block; free in our port map (serial
// 0x3f8-0x3ff, i8042 0x60/0x64, PIT 0x40-0x43, PIC 0x20/0xa0).
inline constexpr uint16_t kPm1EventPort = 0x600;    // PM1a_STS (2 bytes) + PM1a_EN (2 bytes)
inline constexpr uint16_t kPm1ControlPort = 0x604;  // PM1a_CNT (2 bytes)
inline constexpr uint8_t kPm1EventLength = 4;
inline constexpr uint8_t kPm1ControlLength = 2;
inline constexpr uint16_t kResetPort = 0x64;
inline constexpr uint8_t kResetValue = 0xfe;
// SCI on IRQ 9 as on real boards, with a MADT override making it level,
// active-high. Nothing raises it (no fixed events are enabled), but Linux
// programs the pin, so the machine must not give GSI 9 to a device.
inline constexpr uint16_t kSciIrq = 9;

// The Generic Event Device's interrupt (the last IOAPIC pin; virtio devices
// stop below it): the VMM pulses it after a restore or fork, and the GED's
// _EVT method then notifies the VM generation ID device (see vmgenid.hpp).
inline constexpr uint32_t kGedGsi = 23;

inline constexpr uint8_t kSlpTypS5 = 5;
inline constexpr uint16_t kSlpEn = 1U << 13;  // PM1_CNT.SLP_EN
inline constexpr unsigned kSlpTypShift = 10;  // PM1_CNT.SLP_TYP is bits 10-12

// True when `value` written to PM1a_CNT requests S5 (soft off).
[[nodiscard]] constexpr bool is_poweroff_write(uint16_t port, uint16_t value) {
  return port == kPm1ControlPort && (value & kSlpEn) != 0 && ((value >> kSlpTypShift) & 0x7) == kSlpTypS5;
}

// Sum of all bytes mod 256; a valid table sums to 0.
[[nodiscard]] uint8_t checksum(std::span<const uint8_t> bytes);

struct Tables {
  std::vector<uint8_t> blob;  // to be written at `base`; the RSDP is first
  uint64_t base = 0;
  uint64_t rsdp = 0;
  // Offsets into blob, for tests and debugging.
  size_t xsdt = 0, fadt = 0, dsdt = 0, madt = 0, facs = 0;
};

// Builds every table for `vcpu_count` vCPUs (APIC ids 0..n-1) at `base`.
[[nodiscard]] Result<Tables> build_tables(uint32_t vcpu_count, uint64_t base);
// Builds at lowmem::kAcpi and writes to guest memory; returns the RSDP address.
[[nodiscard]] Result<uint64_t> write_tables(const GuestMemory& memory, uint32_t vcpu_count);

}  // namespace forkvm::x86::acpi
