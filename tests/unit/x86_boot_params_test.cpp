#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "vmm/x86/boot_params.hpp"
#include "vmm/x86/bzimage.hpp"

namespace forkvm::x86 {
namespace {

// A minimal bzImage: boot sector + 1 setup sector, header at 0x1f1, then a
// "protected-mode kernel" of 4 KiB.
std::vector<uint8_t> synthetic_bzimage(uint16_t version = 0x20f, uint16_t xloadflags = XLF_KERNEL_64) {
  std::vector<uint8_t> img(2 * 512 + 4096, 0);
  setup_header h{};
  h.setup_sects = 1;
  h.boot_flag = kBootFlagMagic;
  h.header = kHdrSMagic;
  h.version = version;
  h.loadflags = LOADED_HIGH;
  h.code32_start = 0x100000;
  h.relocatable_kernel = 1;
  h.pref_address = 0x1000000;
  h.init_size = 0x800000;
  h.cmdline_size = 4095;
  h.initrd_addr_max = 0x7fffffff;
  h.xloadflags = xloadflags;
  h.kernel_alignment = 0x200000;
  std::memcpy(img.data() + kSetupHeaderOffset, &h, sizeof(h));
  for (size_t i = 1024; i < img.size(); ++i) img[i] = static_cast<uint8_t>(i);
  return img;
}

TEST_CASE("bzImage header: load address, entry and limits") {
  auto img = synthetic_bzimage();
  REQUIRE(looks_like_bzimage(img));
  auto bz = parse_bzimage(img);
  REQUIRE(bz.ok());
  CHECK(bz->load_addr == 0x1000000);  // relocatable: its preferred address
  CHECK(bz->entry64 == 0x1000200);
  CHECK(bz->kernel.size() == 4096);
  CHECK(bz->kernel.data() == img.data() + 1024);
  CHECK(bz->init_size == 0x800000);
  CHECK(bz->cmdline_max == 4095);
  CHECK(bz->initrd_addr_max == 0x7fffffff);
}

TEST_CASE("bzImage header: refusals") {
  CHECK_FALSE(parse_bzimage(synthetic_bzimage(0x20b)).ok());     // no 64-bit entry field
  CHECK_FALSE(parse_bzimage(synthetic_bzimage(0x20f, 0)).ok());  // not XLF_KERNEL_64
  auto img = synthetic_bzimage();
  img[kSetupHeaderOffset + offsetof(setup_header, header)] = 'X';
  CHECK_FALSE(looks_like_bzimage(img));
  CHECK_FALSE(parse_bzimage(img).ok());
  std::vector<uint8_t> tiny(100, 0);
  CHECK_FALSE(parse_bzimage(tiny).ok());
  img = synthetic_bzimage();
  img[kSetupHeaderOffset] = 200;  // setup_sects beyond the file
  CHECK_FALSE(parse_bzimage(img).ok());
}

TEST_CASE("zero page from a bzImage header") {
  auto img = synthetic_bzimage();
  auto bz = parse_bzimage(img);
  REQUIRE(bz.ok());
  ZeroPageConfig zc;
  zc.header = &bz->header;
  zc.cmdline_addr = 0x20000;
  zc.cmdline_size = 42;
  zc.initrd_addr = 0x1f000000;
  zc.initrd_size = 0x123456;
  zc.e820 = {{0, 0x9fc00, kE820Ram}, {0x100000, 0x7f00000, kE820Ram}};
  zc.acpi_rsdp_addr = 0xe0000;
  auto bp = build_zero_page(zc);
  REQUIRE(bp.ok());
  CHECK(+(bp->hdr.header) == kHdrSMagic);
  CHECK(+(bp->hdr.version) == 0x20f);  // copied from the image
  CHECK(+(bp->hdr.kernel_alignment) == 0x200000);
  CHECK(+(bp->hdr.cmdline_size) == 4095);  // the kernel's limit, not ours
  CHECK(+(bp->hdr.type_of_loader) == 0xff);
  CHECK(+(bp->hdr.vid_mode) == 0xffff);
  CHECK(+(bp->hdr.cmd_line_ptr) == 0x20000);
  CHECK(+(bp->ext_cmd_line_ptr) == 0);
  CHECK(+(bp->hdr.ramdisk_image) == 0x1f000000);
  CHECK(+(bp->hdr.ramdisk_size) == 0x123456);
  CHECK(+(bp->e820_entries) == 2);
  CHECK(+(bp->e820_table[1].addr) == 0x100000);
  CHECK(+(bp->e820_table[1].size) == 0x7f00000);
  CHECK(+(bp->e820_table[1].type) == kE820Ram);
  CHECK(+(bp->acpi_rsdp_addr) == 0xe0000);
  // Field offsets the kernel reads, checked against the protocol document.
  CHECK(offsetof(boot_params, hdr) == 0x1f1);
  CHECK(offsetof(boot_params, e820_table) == 0x2d0);
  CHECK(offsetof(boot_params, acpi_rsdp_addr) == 0x70);
}

TEST_CASE("zero page for a vmlinux has the magics and no initrd") {
  ZeroPageConfig zc;
  zc.cmdline_addr = 0x20000;
  zc.cmdline_size = 10;
  auto bp = build_zero_page(zc);
  REQUIRE(bp.ok());
  CHECK(+(bp->hdr.boot_flag) == 0xaa55);
  CHECK(+(bp->hdr.header) == kHdrSMagic);
  CHECK(+(bp->hdr.cmdline_size) == 10);
  CHECK(+(bp->hdr.ramdisk_image) == 0);
  CHECK(+(bp->hdr.ramdisk_size) == 0);
  CHECK(+(bp->e820_entries) == 0);
}

TEST_CASE("zero page refuses an oversized e820 map") {
  ZeroPageConfig zc;
  zc.e820.resize(E820_MAX_ENTRIES_ZEROPAGE + 1, {0, 4096, kE820Ram});
  CHECK_FALSE(build_zero_page(zc).ok());
}

TEST_CASE("initrd goes page-aligned at the top of low RAM") {
  auto a = place_initrd(0x1800, 256ULL << 20, 0x2000000, kDefaultInitrdAddrMax);
  REQUIRE(a.ok());
  CHECK(*a == (256ULL << 20) - 0x2000);
  CHECK(*a % 4096 == 0);
  // Capped by initrd_addr_max, not by a large memory.
  auto b = place_initrd(0x100000, 8ULL << 30, 0x2000000, kDefaultInitrdAddrMax);
  REQUIRE(b.ok());
  CHECK(*b + 0x100000 <= 0x38000000ULL);
  CHECK(*b == 0x38000000ULL - 0x100000);
  // Does not fit above the kernel.
  CHECK_FALSE(place_initrd(200ULL << 20, 256ULL << 20, 0x4000000, kDefaultInitrdAddrMax).ok());
  CHECK_FALSE(place_initrd(1ULL << 40, 256ULL << 20, 0x4000000, kDefaultInitrdAddrMax).ok());
}

}  // namespace
}  // namespace forkvm::x86
