// Runs only where /dev/kvm works (in `tools/rig -- build-core/tests/unit/unit-x86`);
// elsewhere each case returns early with a message. A hand-written 64-bit
// guest exercises the Kvm/Vm/Vcpu wrappers, the boot vCPU setup (CPUID,
// MSRs, LAPIC, long mode) and VcpuThread's exit dispatch and pause/resume.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "vmm/bus.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/kvm.hpp"
#include "vmm/vcpu.hpp"
#include "vmm/vcpu_thread.hpp"
#include "vmm/vm.hpp"
#include "vmm/x86/boot.hpp"
#include "vmm/x86/layout.hpp"
#include "vmm/x86/long_mode.hpp"
#include "vmm/x86/msrs.hpp"

namespace forkvm::x86 {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kCode = 0x100000;
constexpr uint16_t kTestPort = 0x3c1;
constexpr uint64_t kTestMmio = 0xd000'0000;

struct Recorder : BusDevice {
  std::atomic<int> writes{0};
  std::atomic<uint8_t> last{0};
  uint8_t fill = 0;
  void read(uint64_t /*offset*/, std::span<uint8_t> data) override {
    for (auto& b : data) b = fill;
  }
  void write(uint64_t /*offset*/, std::span<const uint8_t> data) override {
    last = data[0];
    ++writes;
  }
};

bool have_kvm() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

template <typename Pred>
bool wait_for(Pred pred, std::chrono::milliseconds bound) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

struct TestVm {
  Kvm kvm;
  Vm vm;
  GuestMemory mem;
  std::vector<Vcpu> vcpus;
};

Result<TestVm> make_vm(std::span<const uint8_t> code, uint32_t vcpu_count) {
  Kvm kvm = FORKVM_TRY(Kvm::open());
  Vm vm = FORKVM_TRY(Vm::create(kvm));
  GuestMemory mem = FORKVM_TRY(GuestMemory::create_anonymous(64ULL << 20));
  FORKVM_CHECK(vm.set_memory(mem));
  FORKVM_CHECK(vm.setup_x86());
  std::vector<Vcpu> vcpus;
  for (uint32_t i = 0; i < vcpu_count; ++i) vcpus.push_back(FORKVM_TRY(Vcpu::create(vm, kvm, i)));
  FORKVM_CHECK(write_boot_tables(mem));
  if (!mem.write(kCode, code)) return make_error("write guest code");
  FORKVM_CHECK(configure_vcpus(kvm, vcpus, BootEntry{BootProtocol::linux64, kCode, lowmem::kZeroPage}));
  return TestVm{std::move(kvm), std::move(vm), std::move(mem), std::move(vcpus)};
}

TEST_CASE("kvm smoke: PIO/MMIO dispatch, pause and resume of a long-mode guest") {
  if (!have_kvm()) {
    MESSAGE("no usable /dev/kvm: skipped (run through tools/rig)");
    return;
  }
  const std::vector<uint8_t> code = {
      0xB0, 0x42,                                                  // mov al, 0x42
      0x66, 0xBA, 0xC1, 0x03,                                      // mov dx, 0x3c1
      0xEE,                                                        // out dx, al
      0x48, 0xBB, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x00, 0x00, 0x00,  // mov rbx, 0xd0000000
      0x8B, 0x03,                                                  // mov eax, [rbx]
      0xEE,                                                        // out dx, al
      0x48, 0xFF, 0xC1,                                            // loop: inc rcx
      0xEB, 0xFB,                                                  // jmp loop
  };
  auto t = make_vm(code, 2);
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));

  // State getters a snapshot will use, on a configured vCPU.
  auto mtrr = t->vcpus[0].msrs(std::vector<uint32_t>{kMsrMtrrDefType});
  REQUIRE_MESSAGE(mtrr.ok(), (mtrr.ok() ? "" : mtrr.error().message));
  CHECK((*mtrr)[0].data == 0x806);
  CHECK(t->vcpus[0].cpuid2().ok());
  CHECK(t->vcpus[0].xsave().ok());
  CHECK(t->vcpus[0].xcrs().ok());
  CHECK(t->vcpus[0].debugregs().ok());
  CHECK(t->vcpus[0].vcpu_events().ok());
  auto ap = t->vcpus[1].mp_state();
  REQUIRE(ap.ok());
  CHECK(ap->mp_state == KVM_MP_STATE_UNINITIALIZED);  // waits for INIT-SIPI

  Bus pio;
  Bus mmio;
  auto port = std::make_shared<Recorder>();
  auto window = std::make_shared<Recorder>();
  window->fill = 0x5a;
  REQUIRE(pio.add(kTestPort, 1, port).ok());
  REQUIRE(mmio.add(kTestMmio, 0x1000, window).ok());
  std::atomic<int> exits{0};
  VcpuThread thread(t->vcpus[0], pio, mmio, [&](const VcpuExit&) { ++exits; });
  REQUIRE(thread.start().ok());
  REQUIRE(wait_for([&] { return port->writes.load() == 2; }, 5000ms));
  CHECK(port->last.load() == 0x5a);  // the MMIO read reached RAX

  auto paused = thread.pause(2000ms);
  REQUIRE_MESSAGE(paused.ok(), (paused.ok() ? "" : paused.error().message));
  CHECK(thread.state() == VcpuThread::State::paused);
  const uint64_t rcx1 = t->vcpus[0].regs()->rcx;
  std::this_thread::sleep_for(20ms);
  CHECK(t->vcpus[0].regs()->rcx == rcx1);  // really parked
  REQUIRE(thread.resume().ok());
  std::this_thread::sleep_for(50ms);
  REQUIRE(thread.pause(2000ms).ok());
  CHECK(t->vcpus[0].regs()->rcx > rcx1);
  REQUIRE(thread.resume().ok());
  thread.stop();
  CHECK(thread.state() == VcpuThread::State::stopped);
  CHECK(exits.load() == 0);
}

TEST_CASE("kvm smoke: a triple fault ends the vCPU through on_exit") {
  if (!have_kvm()) {
    MESSAGE("no usable /dev/kvm: skipped (run through tools/rig)");
    return;
  }
  // ud2 with an empty IDT: #UD -> #GP -> #DF -> shutdown.
  const std::vector<uint8_t> code = {0x0F, 0x0B};
  auto t = make_vm(code, 1);
  REQUIRE_MESSAGE(t.ok(), (t.ok() ? "" : t.error().message));
  Bus pio;
  Bus mmio;
  std::atomic<int> kind{-1};
  VcpuThread thread(t->vcpus[0], pio, mmio, [&](const VcpuExit& e) { kind = static_cast<int>(e.kind); });
  REQUIRE(thread.start().ok());
  REQUIRE(wait_for([&] { return kind.load() >= 0; }, 5000ms));
  CHECK(kind.load() == static_cast<int>(VcpuExitKind::triple_fault));
  CHECK_FALSE(thread.pause(100ms).ok());
  thread.stop();
}

}  // namespace
}  // namespace forkvm::x86
