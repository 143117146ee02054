// kvm_probe: can this /dev/kvm run a standard 64-bit Linux guest?
//
// tools/rig compiles this file with plain `g++ -O2 -std=c++20` (no project headers) and runs
// it to choose between running a command directly and running it inside a nested-KVM QEMU.
// Some KVMs (kvm_pvm, see rig-notes.md in the design notes) run real-mode guests fine but stop with
// "KVM internal error" on the instructions a 64-bit Linux needs early: lock cmpxchg16b and
// xsave/xrstor. So the probe boots a vCPU straight into 64-bit long mode with paging and
// runs exactly those instructions.
//
// Exit 0: the guest reported the expected value through port I/O and halted.
// Exit 1: one line on stderr saying what failed. Never hangs: alarm(10) and a bounded
// number of exits.
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

namespace {

// Guest-physical layout (all inside the first 64 KiB, identity mapped by one 2 MiB page).
constexpr uint64_t kMemSize = 0x10000;
constexpr uint64_t kGdt = 0x1000;
constexpr uint64_t kPml4 = 0x2000;
constexpr uint64_t kPdpt = 0x3000;
constexpr uint64_t kPd = 0x4000;
constexpr uint64_t kStackTop = 0x7000;
constexpr uint64_t kCode = 0x8000;
constexpr uint64_t kData = 0x9000;   // 16-byte aligned cmpxchg16b target
constexpr uint64_t kXcr0Out = 0x9100;  // XCR0 read back after xrstor, for the failure report
constexpr uint64_t kXsave = 0xA000;  // 64-byte aligned xsave area, up to 0x10000
constexpr uint16_t kPort = 0x3f0;
constexpr uint32_t kFailCx16 = 0xdead0001;
constexpr uint32_t kExpectNoXsave = 0x77777777;  // low half of 0x3333.. + 0x4444..
constexpr uint32_t kExpectXsave = 0x77777777 ^ 0x5a5a5a5a ^ 3;  // ^ xmm0 round trip ^ XCR0

// clang-format off
const uint8_t kGuestCode[] = {
    // --- lock cmpxchg16b: [0x9000] holds 0x2222..:0x1111.., swap in 0x4444..:0x3333..
    0x48, 0xB8, 0x11,0x11,0x11,0x11,0x11,0x11,0x11,0x11,  // 00 mov rax, 0x1111111111111111
    0x48, 0xBA, 0x22,0x22,0x22,0x22,0x22,0x22,0x22,0x22,  // 0a mov rdx, 0x2222222222222222
    0x48, 0xBB, 0x33,0x33,0x33,0x33,0x33,0x33,0x33,0x33,  // 14 mov rbx, 0x3333333333333333
    0x48, 0xB9, 0x44,0x44,0x44,0x44,0x44,0x44,0x44,0x44,  // 1e mov rcx, 0x4444444444444444
    0xBF, 0x00, 0x90, 0x00, 0x00,                         // 28 mov edi, 0x9000
    0xF0, 0x48, 0x0F, 0xC7, 0x0F,                         // 2d lock cmpxchg16b [rdi]
    0x75, 0x6E,                                           // 32 jnz fail (0xa2)
    0x48, 0x8B, 0x37,                                     // 34 mov rsi, [rdi]
    0x48, 0x03, 0x77, 0x08,                               // 37 add rsi, [rdi+8]   (esi = 0x77777777)
    // --- xsave/xrstor, only if CPUID.1:ECX.XSAVE[26] (we pass KVM's supported CPUID in)
    0xB8, 0x01, 0x00, 0x00, 0x00,                         // 3b mov eax, 1
    0x0F, 0xA2,                                           // 40 cpuid
    0x0F, 0xBA, 0xE1, 0x1A,                               // 42 bt ecx, 26
    0x73, 0x4F,                                           // 46 jnc done (0x97)
    0x0F, 0x20, 0xE0,                                     // 48 mov rax, cr4
    0x48, 0x0D, 0x00, 0x00, 0x04, 0x00,                   // 4b or rax, 0x40000 (CR4.OSXSAVE)
    0x0F, 0x22, 0xE0,                                     // 51 mov cr4, rax
    0x31, 0xC9,                                           // 54 xor ecx, ecx   (XCR0)
    0x31, 0xD2,                                           // 56 xor edx, edx
    0xB8, 0x03, 0x00, 0x00, 0x00,                         // 58 mov eax, 3     (x87 | SSE)
    0x0F, 0x01, 0xD1,                                     // 5d xsetbv
    0x0F, 0x01, 0xD0,                                     // 60 xgetbv         (eax = 3)
    0x89, 0xC5,                                           // 63 mov ebp, eax
    0xB8, 0x5A, 0x5A, 0x5A, 0x5A,                         // 65 mov eax, 0x5a5a5a5a
    0x66, 0x0F, 0x6E, 0xC0,                               // 6a movd xmm0, eax
    0xBF, 0x00, 0xA0, 0x00, 0x00,                         // 6e mov edi, 0xA000
    0x89, 0xE8,                                           // 73 mov eax, ebp   (RFBM = XCR0, edx = 0)
    0x0F, 0xAE, 0x27,                                     // 75 xsave [rdi]
    0x66, 0x0F, 0xEF, 0xC0,                               // 78 pxor xmm0, xmm0
    0x0F, 0xAE, 0x2F,                                     // 7c xrstor [rdi]   (xmm0 = 0x5a5a5a5a again)
    0x66, 0x0F, 0x7E, 0xC0,                               // 7f movd eax, xmm0
    0x89, 0xC3,                                           // 83 mov ebx, eax
    0x31, 0xC9,                                           // 85 xor ecx, ecx
    0x0F, 0x01, 0xD0,                                     // 87 xgetbv         (XCR0 again, for the report)
    0x89, 0x04, 0x25, 0x00, 0x91, 0x00, 0x00,             // 8a mov [0x9100], eax
    0x89, 0xD8,                                           // 91 mov eax, ebx
    0x31, 0xC6,                                           // 93 xor esi, eax
    0x31, 0xEE,                                           // 95 xor esi, ebp   (esi = 0x77777777 ^ 0x5a5a5a5a ^ 3)
    // done:
    0x89, 0xF0,                                           // 97 mov eax, esi
    0x66, 0xBA, 0xF0, 0x03,                               // 99 mov dx, 0x3f0
    0xEF,                                                 // 9d out dx, eax
    0xF4,                                                 // 9e hlt
    0xEB, 0xFD,                                           // 9f jmp hlt (never reached)
    0x90,                                                 // a1 nop (pad)
    // fail:
    0xB8, 0x01, 0x00, 0xAD, 0xDE,                         // a2 mov eax, 0xdead0001 (kFailCx16)
    0xEB, 0xF0,                                           // a7 jmp 0x99 (report eax)
};
// clang-format on

// linux/kvm.h declares kvm_cpuid2::entries with __DECLARE_FLEX_ARRAY, which in C++ (6.1 uapi
// headers) adds a 1-byte empty struct: sizeof(kvm_cpuid2) becomes 12 and entries moves to
// offset 12, so KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2 get the wrong ioctl number (EINVAL)
// and the wrong layout. Use the kernel's real layout and numbers instead.
struct Cpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
static_assert(sizeof(Cpuid2Header) == 8);
constexpr int kMaxCpuidEntries = 256;
struct CpuidBuffer {
  Cpuid2Header header;
  kvm_cpuid_entry2 entries[kMaxCpuidEntries];
};
static_assert(offsetof(CpuidBuffer, entries) == 8);
constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, Cpuid2Header);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, Cpuid2Header);

int g_vcpu = -1;

[[noreturn]] void die(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::fputs("kvm-probe: ", stderr);
  std::vfprintf(stderr, fmt, ap);
  std::fputc('\n', stderr);
  va_end(ap);
  std::exit(1);
}

void on_alarm(int) {
  static const char msg[] = "kvm-probe: guest did not finish within 10 s\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(1);
}

int xioctl(int fd, unsigned long req, const char* what, unsigned long arg = 0) {
  int r = ioctl(fd, req, arg);
  if (r < 0) die("%s: %s", what, std::strerror(errno));
  return r;
}

uint64_t guest_rip() {
  kvm_regs regs{};
  if (ioctl(g_vcpu, KVM_GET_REGS, &regs) < 0) return ~0ull;
  return regs.rip;
}

kvm_segment seg(uint16_t selector, uint8_t type, uint8_t s, uint8_t l, uint8_t db) {
  kvm_segment sg{};
  sg.base = 0;
  sg.limit = 0xffffffff;
  sg.selector = selector;
  sg.type = type;
  sg.present = 1;
  sg.dpl = 0;
  sg.db = db;
  sg.s = s;
  sg.l = l;
  sg.g = 1;
  return sg;
}

}  // namespace

int main() {
  std::signal(SIGALRM, on_alarm);
  alarm(10);

  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("/dev/kvm: %s", std::strerror(errno));
  int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
  if (api != KVM_API_VERSION) die("KVM_GET_API_VERSION returned %d, expected %d", api, KVM_API_VERSION);

  int vm = xioctl(kvm, KVM_CREATE_VM, "KVM_CREATE_VM");
  // Intel VMX needs these two pages of guest-physical space for real-mode emulation; harmless on AMD.
  xioctl(vm, KVM_SET_TSS_ADDR, "KVM_SET_TSS_ADDR", 0xfffbd000);
  if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
    uint64_t idmap = 0xfffbc000;
    xioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, "KVM_SET_IDENTITY_MAP_ADDR", reinterpret_cast<unsigned long>(&idmap));
  }

  void* memp = mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memp == MAP_FAILED) die("mmap guest memory: %s", std::strerror(errno));
  auto* mem = static_cast<uint8_t*>(memp);
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = kMemSize;
  region.userspace_addr = reinterpret_cast<uint64_t>(mem);
  xioctl(vm, KVM_SET_USER_MEMORY_REGION, "KVM_SET_USER_MEMORY_REGION", reinterpret_cast<unsigned long>(&region));

  // Page tables: PML4[0] -> PDPT[0] -> PD[0] = one 2 MiB identity page (P|RW|PS).
  auto put64 = [&](uint64_t gpa, uint64_t v) { std::memcpy(mem + gpa, &v, sizeof v); };
  put64(kPml4, kPdpt | 0x3);
  put64(kPdpt, kPd | 0x3);
  put64(kPd, 0x0 | 0x83);
  // GDT: null, 64-bit code (0x08), data (0x10). Loaded into the hidden segment state below too.
  put64(kGdt + 0x00, 0);
  put64(kGdt + 0x08, 0x00af9b000000ffffull);
  put64(kGdt + 0x10, 0x00cf93000000ffffull);
  std::memcpy(mem + kCode, kGuestCode, sizeof kGuestCode);
  put64(kData, 0x1111111111111111ull);
  put64(kData + 8, 0x2222222222222222ull);

  g_vcpu = xioctl(vm, KVM_CREATE_VCPU, "KVM_CREATE_VCPU");
  int run_size = xioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, "KVM_GET_VCPU_MMAP_SIZE");
  void* runp = mmap(nullptr, static_cast<size_t>(run_size), PROT_READ | PROT_WRITE, MAP_SHARED, g_vcpu, 0);
  if (runp == MAP_FAILED) die("mmap kvm_run: %s", std::strerror(errno));
  auto* run = static_cast<kvm_run*>(runp);

  // CPUID: what KVM supports, so the guest may use cmpxchg16b and xsave.
  static CpuidBuffer cpuid{};
  cpuid.header.nent = kMaxCpuidEntries;
  xioctl(kvm, kGetSupportedCpuid, "KVM_GET_SUPPORTED_CPUID", reinterpret_cast<unsigned long>(&cpuid));
  bool cx16 = false, xsave = false;
  for (uint32_t i = 0; i < cpuid.header.nent; i++) {
    if (cpuid.entries[i].function == 1) {
      cx16 = cpuid.entries[i].ecx & (1u << 13);
      xsave = cpuid.entries[i].ecx & (1u << 26);
    }
  }
  if (!cx16) die("KVM_GET_SUPPORTED_CPUID lacks CX16 (cmpxchg16b) -- this KVM cannot run 64-bit Linux guests");
  xioctl(g_vcpu, kSetCpuid2, "KVM_SET_CPUID2", reinterpret_cast<unsigned long>(&cpuid));

  // 64-bit long mode with paging, SSE enabled (CR4.OSFXSR|OSXMMEXCPT); the guest sets OSXSAVE.
  kvm_sregs sregs{};
  xioctl(g_vcpu, KVM_GET_SREGS, "KVM_GET_SREGS", reinterpret_cast<unsigned long>(&sregs));
  sregs.cs = seg(0x08, 11, 1, 1, 0);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = seg(0x10, 3, 1, 0, 1);
  sregs.tr = seg(0, 11, 0, 0, 0);  // busy 64-bit TSS; VMX refuses entry without a usable TR
  sregs.tr.limit = 0x67;
  sregs.tr.g = 0;
  sregs.gdt.base = kGdt;
  sregs.gdt.limit = 3 * 8 - 1;
  sregs.cr3 = kPml4;
  sregs.cr4 = 0x20 | 0x200 | 0x400;            // PAE | OSFXSR | OSXMMEXCPT
  sregs.cr0 = 0x80000000 | 0x10000 | 0x20 | 0x10 | 0x2 | 0x1;  // PG | WP | NE | ET | MP | PE
  sregs.efer = 0x500;                          // LME | LMA
  xioctl(g_vcpu, KVM_SET_SREGS, "KVM_SET_SREGS", reinterpret_cast<unsigned long>(&sregs));

  kvm_regs regs{};
  regs.rip = kCode;
  regs.rsp = kStackTop;
  regs.rflags = 0x2;
  xioctl(g_vcpu, KVM_SET_REGS, "KVM_SET_REGS", reinterpret_cast<unsigned long>(&regs));

  const uint32_t expect = xsave ? kExpectXsave : kExpectNoXsave;
  bool got_value = false;
  for (int exits = 0; exits < 16; exits++) {
    if (ioctl(g_vcpu, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      die("KVM_RUN: %s", std::strerror(errno));
    }
    switch (run->exit_reason) {
      case KVM_EXIT_IO: {
        if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != kPort || run->io.size != 4)
          die("unexpected port I/O (port 0x%x size %u dir %u) at rip=0x%llx", run->io.port, run->io.size,
              run->io.direction, static_cast<unsigned long long>(guest_rip()));
        uint32_t v;
        std::memcpy(&v, reinterpret_cast<uint8_t*>(run) + run->io.data_offset, sizeof v);
        if (v == kFailCx16) die("lock cmpxchg16b did not swap in the guest");
        if (v != expect) {
          uint32_t xcr0_after, xmm0_saved;
          uint64_t xstate_bv;
          std::memcpy(&xcr0_after, mem + kXcr0Out, 4);
          std::memcpy(&xmm0_saved, mem + kXsave + 160, 4);  // legacy area: XMM0 at 160
          std::memcpy(&xstate_bv, mem + kXsave + 512, 8);   // XSAVE header
          die("guest wrote 0x%x to port 0x%x, expected 0x%x (after xrstor: XCR0=0x%x; xsave area: "
              "XMM0=0x%x XSTATE_BV=0x%llx) -- xsave/xrstor state is not kept",
              v, kPort, expect, xcr0_after, xmm0_saved, static_cast<unsigned long long>(xstate_bv));
        }
        got_value = true;
        break;
      }
      case KVM_EXIT_HLT:
        if (!got_value) die("guest halted at rip=0x%llx before reporting", static_cast<unsigned long long>(guest_rip()));
        return 0;
      case KVM_EXIT_INTERNAL_ERROR:
        die("KVM internal error (suberror %u) at rip=0x%llx -- this KVM cannot run 64-bit guests",
            run->internal.suberror, static_cast<unsigned long long>(guest_rip()));
      case KVM_EXIT_SHUTDOWN:
        die("guest triple-faulted (KVM_EXIT_SHUTDOWN) at rip=0x%llx -- this KVM cannot run 64-bit guests",
            static_cast<unsigned long long>(guest_rip()));
      case KVM_EXIT_FAIL_ENTRY:
        die("VM entry failed (hardware reason 0x%llx) -- this KVM cannot run 64-bit guests",
            static_cast<unsigned long long>(run->fail_entry.hardware_entry_failure_reason));
      case KVM_EXIT_INTR:
        break;
      default:
        die("unexpected KVM exit reason %u at rip=0x%llx", run->exit_reason,
            static_cast<unsigned long long>(guest_rip()));
    }
  }
  die("guest did not halt within 16 exits");
}
