#include <asm/bootparam.h>
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/boot.hpp"
#include "vmm/x86/layout.hpp"
#include "vmm/x86/pvh.hpp"

namespace forkvm::x86::testing {
// Defined in x86_elf_test.cpp.
std::vector<uint8_t> make_test_elf(uint64_t paddr, uint64_t filesz, uint64_t memsz,
                                   std::optional<uint32_t> pvh);
}  // namespace forkvm::x86::testing

namespace forkvm::x86 {
namespace {

using testing::make_test_elf;

TEST_CASE("boot: vmlinux + initrd through the 64-bit protocol") {
  auto mem = GuestMemory::create_anonymous(128ULL << 20);
  REQUIRE(mem.ok());
  const auto kernel = make_test_elf(0x1000000, 0x1000, 0x2000, 0x1000040);
  const std::vector<uint8_t> initrd(10000, 0x77);
  BootConfig cfg;
  cfg.cmdline = "console=ttyS0 reboot=k";
  cfg.vcpu_count = 2;
  auto entry = load_images(*mem, kernel, initrd, cfg);
  REQUIRE(entry.ok());
  CHECK(entry->protocol == BootProtocol::linux64);
  CHECK(entry->entry == 0x1000000);
  CHECK(entry->boot_data == lowmem::kZeroPage);

  auto bp = mem->read_obj<boot_params>(lowmem::kZeroPage);
  REQUIRE(bp.has_value());
  CHECK(+(bp->hdr.cmd_line_ptr) == lowmem::kCmdline);
  CHECK(+(bp->hdr.type_of_loader) == 0xff);
  CHECK(+(bp->hdr.ramdisk_size) == 10000);
  const uint64_t initrd_addr = bp->hdr.ramdisk_image;
  CHECK(initrd_addr % 4096 == 0);
  CHECK(initrd_addr + 10000 <= (128ULL << 20));
  CHECK(initrd_addr >= 0x1002000);
  CHECK(mem->read_obj<uint8_t>(initrd_addr) == 0x77);
  CHECK(+(bp->e820_entries) == 4);
  CHECK(+(bp->acpi_rsdp_addr) == lowmem::kAcpi);

  std::string cmdline(cfg.cmdline.size() + 1, '?');
  REQUIRE(mem->read(lowmem::kCmdline, {reinterpret_cast<uint8_t*>(cmdline.data()), cmdline.size()}));
  CHECK(cmdline == std::string(cfg.cmdline) + '\0');
  CHECK(mem->read_obj<uint64_t>(lowmem::kPml4) == (lowmem::kPdpt | 3));
}

TEST_CASE("boot: PVH entry with start info and module") {
  auto mem = GuestMemory::create_anonymous(64ULL << 20);
  REQUIRE(mem.ok());
  const auto kernel = make_test_elf(0x1000000, 0x1000, 0x1000, 0x1000040);
  const std::vector<uint8_t> initrd(5000, 1);
  BootConfig cfg;
  cfg.cmdline = "console=ttyS0";
  cfg.protocol = BootProtocol::pvh;
  auto entry = load_images(*mem, kernel, initrd, cfg);
  REQUIRE(entry.ok());
  CHECK(entry->entry == 0x1000040);
  CHECK(entry->boot_data == lowmem::kPvhStartInfo);
  auto info = mem->read_obj<HvmStartInfo>(lowmem::kPvhStartInfo);
  REQUIRE(info.has_value());
  CHECK(info->magic == kHvmStartMagic);
  CHECK(info->version == 1);
  CHECK(info->cmdline_paddr == lowmem::kCmdline);
  CHECK(info->rsdp_paddr == lowmem::kAcpi);
  CHECK(info->nr_modules == 1);
  CHECK(info->memmap_entries == 4);
  auto mod = mem->read_obj<HvmModlistEntry>(info->modlist_paddr);
  CHECK(mod->size == 5000);
  auto last = mem->read_obj<HvmMemmapEntry>(info->memmap_paddr + 3 * sizeof(HvmMemmapEntry));
  CHECK(last->addr == 0x100000);
  CHECK(last->type == 1);
}

TEST_CASE("boot: clear refusals") {
  auto mem = GuestMemory::create_anonymous(32ULL << 20);
  REQUIRE(mem.ok());
  BootConfig cfg;
  const auto kernel = make_test_elf(0x1000000, 0x1000, 0x1000, std::nullopt);

  SUBCASE("not a kernel") {
    std::vector<uint8_t> junk(4096, 0x90);
    auto r = load_images(*mem, junk, {}, cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("not a kernel") != std::string::npos);
  }
  SUBCASE("command line too long") {
    cfg.cmdline = std::string(2048, 'x');
    auto r = load_images(*mem, kernel, {}, cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("command line") != std::string::npos);
  }
  SUBCASE("initrd does not fit") {
    std::vector<uint8_t> initrd(16ULL << 20, 1);  // kernel ends at 16 MiB + 4 KiB
    auto r = load_images(*mem, kernel, initrd, cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("initrd") != std::string::npos);
  }
  SUBCASE("kernel too big for memory") {
    auto big = make_test_elf(0x1000000, 0x1000, 32ULL << 20, std::nullopt);
    CHECK_FALSE(load_images(*mem, big, {}, cfg).ok());
  }
  SUBCASE("PVH without the note") {
    cfg.protocol = BootProtocol::pvh;
    CHECK_FALSE(load_images(*mem, kernel, {}, cfg).ok());
  }
  SUBCASE("kernel file missing") {
    cfg.kernel_path = "/nonexistent/vmlinux";
    auto r = load_for_boot(*mem, cfg);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("/nonexistent/vmlinux") != std::string::npos);
  }
}

}  // namespace
}  // namespace forkvm::x86
