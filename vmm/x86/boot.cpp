#include "vmm/x86/boot.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>

#include "vmm/unique_fd.hpp"
#include "vmm/x86/acpi.hpp"
#include "vmm/x86/boot_params.hpp"
#include "vmm/x86/bzimage.hpp"
#include "vmm/x86/cpuid.hpp"
#include "vmm/x86/e820.hpp"
#include "vmm/x86/elf.hpp"
#include "vmm/x86/layout.hpp"
#include "vmm/x86/long_mode.hpp"
#include "vmm/x86/msrs.hpp"
#include "vmm/x86/pvh.hpp"
#include "vmm/x86/vmgenid.hpp"

namespace forkvm::x86 {
namespace {

// A read-only private mapping of a whole file: the kernel and initrd are
// copied from the page cache into guest RAM once, with no extra buffer.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return errno_error(fmt::format("open {}", path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return errno_error(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode)) return make_error("{} is not a regular file", path);
    if (st.st_size == 0) return make_error("{} is empty", path);
    const auto size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (p == MAP_FAILED) return errno_error(fmt::format("mmap {}", path));
    return MappedFile(static_cast<const uint8_t*>(p), size);
  }
  MappedFile(MappedFile&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  MappedFile& operator=(MappedFile&&) = delete;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  }
  [[nodiscard]] std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

struct LoadedKernel {
  uint64_t entry = 0;
  std::optional<uint64_t> pvh_entry;
  uint64_t end = 0;  // first byte the kernel does not need
  std::optional<setup_header> header;
  uint32_t cmdline_max = kDefaultCmdlineMax;
  uint64_t initrd_addr_max = kDefaultInitrdAddrMax;
};

Result<LoadedKernel> load_kernel(const GuestMemory& memory, std::span<const uint8_t> image) {
  LoadedKernel k;
  if (looks_like_elf(image)) {
    const ElfKernel elf = FORKVM_TRY(load_elf(image, memory));
    k.entry = elf.entry;
    k.pvh_entry = elf.pvh_entry;
    k.end = elf.load_end;
    return k;
  }
  if (looks_like_bzimage(image)) {
    const BzImage bz = FORKVM_TRY(parse_bzimage(image));
    // The decompressor works in [load_addr, load_addr + init_size); all of
    // it must be RAM, not only the compressed bytes.
    if (memory.host_ptr(bz.load_addr, bz.init_size) == nullptr) {
      return make_error("bzImage needs {} MiB from {:#x}, more than guest memory ({} MiB) holds",
                        bz.init_size >> 20, bz.load_addr, memory.size() >> 20);
    }
    if (!memory.write(bz.load_addr, bz.kernel)) return make_error("write bzImage at {:#x}", bz.load_addr);
    k.entry = bz.entry64;
    k.end = bz.load_addr + bz.init_size;
    k.header = bz.header;
    // Protocols before 2.06 have no cmdline_size field and allow 255 bytes.
    k.cmdline_max = bz.header.version >= 0x206 ? bz.cmdline_max : 255;
    if (bz.initrd_addr_max != 0) k.initrd_addr_max = bz.initrd_addr_max;
    return k;
  }
  return make_error("not a kernel: neither an ELF vmlinux nor a bzImage ({} bytes)", image.size());
}

}  // namespace

Result<BootEntry> load_images(const GuestMemory& memory, std::span<const uint8_t> kernel_image,
                              std::span<const uint8_t> initrd, const BootConfig& config) {
  const LoadedKernel k = FORKVM_TRY(load_kernel(memory, kernel_image).context("load kernel"));
  if (config.protocol == BootProtocol::pvh && !k.pvh_entry) {
    return make_error("PVH boot needs a vmlinux with the Xen PHYS32_ENTRY note (CONFIG_PVH)");
  }

  const uint64_t cmdline_max = std::min<uint64_t>(k.cmdline_max, lowmem::kCmdlineMax - 1);
  if (config.cmdline.size() > cmdline_max) {
    return make_error("kernel command line of {} bytes exceeds the kernel's limit of {}",
                      config.cmdline.size(), cmdline_max);
  }
  std::vector<uint8_t> cmdline(config.cmdline.begin(), config.cmdline.end());
  cmdline.push_back(0);
  if (!memory.write(lowmem::kCmdline, cmdline))
    return make_error("write command line at {:#x}", lowmem::kCmdline);

  uint64_t initrd_addr = 0;
  if (!initrd.empty()) {
    initrd_addr = FORKVM_TRY(place_initrd(initrd.size(), memory.size(), k.end, k.initrd_addr_max));
    if (!memory.write(initrd_addr, initrd)) return make_error("write initrd at {:#x}", initrd_addr);
  }

  const auto e820 = FORKVM_TRY(build_e820(memory.size()));
  const uint64_t rsdp = FORKVM_TRY(acpi::write_tables(memory, config.vcpu_count).context("ACPI tables"));
  FORKVM_CHECK(write_new_vm_generation_id(memory));
  FORKVM_CHECK(write_boot_tables(memory));

  BootEntry entry;
  entry.protocol = config.protocol;
  if (config.protocol == BootProtocol::pvh) {
    PvhConfig pvh{lowmem::kCmdline, initrd_addr, initrd.size(), e820, rsdp};
    entry.entry = *k.pvh_entry;
    entry.boot_data = FORKVM_TRY(write_pvh_start_info(memory, pvh));
    return entry;
  }
  ZeroPageConfig zp;
  zp.header = k.header ? &*k.header : nullptr;
  zp.cmdline_addr = lowmem::kCmdline;
  zp.cmdline_size = static_cast<uint32_t>(config.cmdline.size());
  zp.initrd_addr = initrd_addr;
  zp.initrd_size = initrd.size();
  zp.e820 = e820;
  zp.acpi_rsdp_addr = rsdp;
  const boot_params bp = FORKVM_TRY(build_zero_page(zp));
  if (!memory.write_obj(lowmem::kZeroPage, bp))
    return make_error("write zero page at {:#x}", lowmem::kZeroPage);
  entry.entry = k.entry;
  entry.boot_data = lowmem::kZeroPage;
  return entry;
}

Result<BootEntry> load_for_boot(const GuestMemory& memory, const BootConfig& config) {
  const MappedFile kernel = FORKVM_TRY(MappedFile::open(config.kernel_path).context("kernel"));
  if (!config.initrd_path) return load_images(memory, kernel.bytes(), {}, config);
  const MappedFile initrd = FORKVM_TRY(MappedFile::open(*config.initrd_path).context("initrd"));
  return load_images(memory, kernel.bytes(), initrd.bytes(), config);
}

Status configure_vcpus(const Kvm& kvm, std::span<Vcpu> vcpus, const BootEntry& entry) {
  const auto supported = FORKVM_TRY(kvm.supported_cpuid());
  const bool tsc_deadline = kvm.check_extension(KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  const auto count = static_cast<uint32_t>(vcpus.size());
  const auto msrs = boot_msrs();
  for (Vcpu& vcpu : vcpus) {
    // CPUID first: KVM derives the vCPU's MSR and XSAVE model from it.
    auto cpuid = filter_cpuid(supported, vcpu.index(), count);
    if (tsc_deadline) enable_tsc_deadline(cpuid);
    FORKVM_CHECK(vcpu.set_cpuid2(cpuid));
    FORKVM_CHECK(vcpu.set_msrs(msrs));
    FORKVM_CHECK(vcpu.set_fpu(boot_fpu()));
    kvm_lapic_state lapic = FORKVM_TRY(vcpu.lapic());
    set_lint_delivery(lapic);
    FORKVM_CHECK(vcpu.set_lapic(lapic));
    if (vcpu.index() != 0) continue;  // APs wait for INIT-SIPI from the BSP

    kvm_sregs sregs = FORKVM_TRY(vcpu.sregs());
    if (entry.protocol == BootProtocol::pvh) {
      setup_protected_mode_sregs(sregs);
      FORKVM_CHECK(vcpu.set_sregs(sregs));
      FORKVM_CHECK(vcpu.set_regs(pvh_regs(entry.entry, entry.boot_data)));
    } else {
      setup_long_mode_sregs(sregs);
      FORKVM_CHECK(vcpu.set_sregs(sregs));
      FORKVM_CHECK(vcpu.set_regs(long_mode_regs(entry.entry, entry.boot_data)));
    }
  }
  return {};
}

Status configure_for_boot(const Kvm& kvm, std::span<Vcpu> vcpus, const GuestMemory& memory,
                          const BootConfig& config) {
  if (vcpus.size() != config.vcpu_count) {
    return make_error("boot: {} vCPUs created for a {}-vCPU config", vcpus.size(), config.vcpu_count);
  }
  const BootEntry entry = FORKVM_TRY(load_for_boot(memory, config).context("boot"));
  return configure_vcpus(kvm, vcpus, entry).context("boot: vCPU setup");
}

}  // namespace forkvm::x86
