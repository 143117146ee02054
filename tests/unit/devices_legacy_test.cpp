#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "devices/acpi_pm.hpp"
#include "devices/i8042.hpp"
#include "devices/serial.hpp"
#include "tests/unit/virtio_test_queue.hpp"

namespace forkvm {
namespace {

using virtio::testing::CountingInterrupt;

uint8_t rd(BusDevice& d, uint64_t off) {
  uint8_t v = 0xee;
  d.read(off, {&v, 1});
  return v;
}
void wr(BusDevice& d, uint64_t off, uint8_t v) { d.write(off, {&v, 1}); }

struct SerialFixture {
  CountingInterrupt irq;
  std::string out;
  std::vector<std::string> lines;
  Serial s{irq, [this](std::span<const uint8_t> b) { out.append(b.begin(), b.end()); },
           [this](std::string_view l) { lines.emplace_back(l); }};
};

TEST_CASE("serial: output reaches the sink and lines reach the watcher") {
  SerialFixture f;
  for (char c : std::string("hello\r\nKernel panic - not syncing: VFS\nx"))
    wr(f.s, 0, static_cast<uint8_t>(c));
  CHECK(f.out == "hello\r\nKernel panic - not syncing: VFS\nx");
  REQUIRE(f.lines.size() == 2);
  CHECK(f.lines[0] == "hello");
  CHECK(Serial::is_kernel_panic(f.lines[1]));
  CHECK_FALSE(Serial::is_kernel_panic(f.lines[0]));
  CHECK(f.irq.count == 0);  // no interrupts enabled
}

TEST_CASE("serial: LSR, scratch, DLAB and FIFO identification") {
  SerialFixture f;
  CHECK((rd(f.s, 5) & 0x60) == 0x60);  // THRE | TEMT
  CHECK((rd(f.s, 5) & 0x01) == 0);     // no data
  wr(f.s, 7, 0xa5);
  CHECK(rd(f.s, 7) == 0xa5);
  wr(f.s, 3, 0x80);  // DLAB
  wr(f.s, 0, 0x01);
  wr(f.s, 1, 0x00);
  CHECK(rd(f.s, 0) == 0x01);
  wr(f.s, 3, 0x03);
  CHECK(f.out.empty());       // divisor writes are not output
  CHECK(rd(f.s, 2) == 0x01);  // no interrupt, no FIFO
  wr(f.s, 2, 0x01);           // enable FIFO
  CHECK((rd(f.s, 2) & 0xc0) == 0xc0);
  wr(f.s, 1, 0x0f);
  CHECK(rd(f.s, 1) == 0x0f);
}

TEST_CASE("serial: loopback reflects MCR in MSR and returns written bytes") {
  SerialFixture f;
  wr(f.s, 4, 0x10 | 0x0a);             // LOOP | RTS | OUT2
  CHECK((rd(f.s, 6) & 0xf0) == 0x90);  // CTS | DCD, what Linux's autoconfig checks
  wr(f.s, 0, 'Z');
  CHECK(f.out.empty());
  CHECK((rd(f.s, 5) & 0x01) == 0x01);
  CHECK(rd(f.s, 0) == 'Z');
  wr(f.s, 4, 0x08);
  CHECK((rd(f.s, 6) & 0xb0) == 0xb0);
}

TEST_CASE("serial: THRE interrupt when enabled, and on received data") {
  SerialFixture f;
  wr(f.s, 1, 0x02);  // enable THRI: transmitter is empty, so it fires at once
  CHECK(f.irq.count == 1);
  CHECK((rd(f.s, 2) & 0x0f) == 0x02);
  CHECK((rd(f.s, 2) & 0x0f) == 0x01);  // reading IIR acknowledged it
  wr(f.s, 0, 'a');
  CHECK(f.irq.count == 2);
  wr(f.s, 1, 0x00);
  wr(f.s, 0, 'b');
  CHECK(f.irq.count == 2);

  wr(f.s, 1, 0x01);  // received data interrupt
  const uint8_t in[] = {'x', 'y'};
  f.s.enqueue_input(in);
  CHECK(f.irq.count == 3);
  CHECK((rd(f.s, 2) & 0x0f) == 0x04);
  CHECK((rd(f.s, 5) & 0x01) == 1);
  CHECK(rd(f.s, 0) == 'x');
  CHECK(rd(f.s, 0) == 'y');
  CHECK((rd(f.s, 5) & 0x01) == 0);
  CHECK((rd(f.s, 2) & 0x0f) == 0x01);
}

TEST_CASE("i8042: 0xFE on the command port resets; the command byte round-trips") {
  int resets = 0;
  I8042 k([&] { ++resets; });
  CHECK((rd(k, 4) & 0x01) == 0);
  wr(k, 4, 0x20);
  CHECK((rd(k, 4) & 0x01) == 1);
  const uint8_t cb = rd(k, 0);
  wr(k, 4, 0x60);
  wr(k, 0, static_cast<uint8_t>(cb & ~1));
  wr(k, 4, 0x20);
  CHECK(rd(k, 0) == static_cast<uint8_t>(cb & ~1));
  wr(k, 4, 0xaa);
  CHECK(rd(k, 0) == 0x55);
  CHECK(resets == 0);
  CHECK((rd(k, 4) & 0x02) == 0);  // input buffer empty: kb_wait() passes
  wr(k, 4, 0xfe);
  CHECK(resets == 1);
  CHECK(rd(k, 1) == 0);  // 0x61 is not ours
}

TEST_CASE("acpi_pm: SLP_EN with SLP_TYP 5 in PM1a_CNT powers off, nothing else does") {
  int offs = 0;
  AcpiPm pm([&] { ++offs; });
  auto cnt = [&](uint16_t v) {
    const uint8_t bytes[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    pm.write(4, bytes);
  };
  CHECK((rd(pm, 4) & kSciEnable) != 0);  // always in ACPI mode
  cnt(static_cast<uint16_t>(kS5SleepType << kSleepTypeShift));        // no SLP_EN
  cnt(static_cast<uint16_t>((3 << kSleepTypeShift) | kSleepEnable));  // S3
  wr(pm, 0, 0xff);                                                    // status: write-1-to-clear
  CHECK(rd(pm, 0) == 0);
  wr(pm, 2, 0x21);  // enable bits stick
  CHECK(rd(pm, 2) == 0x21);
  CHECK(offs == 0);
  cnt(static_cast<uint16_t>((kS5SleepType << kSleepTypeShift) | kSleepEnable));
  CHECK(offs == 1);
  CHECK((rd(pm, 5) & (kSleepEnable >> 8)) == 0);  // SLP_EN never reads back
}

}  // namespace
}  // namespace forkvm
