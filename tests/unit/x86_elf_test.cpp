#include <doctest/doctest.h>
#include <elf.h>

#include <cstring>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/x86/elf.hpp"

namespace forkvm::x86::testing {

// Shared with x86_boot_test.cpp.
std::vector<uint8_t> make_test_elf(uint64_t paddr, uint64_t filesz, uint64_t memsz,
                                   std::optional<uint32_t> pvh);

std::vector<uint8_t> make_test_elf(uint64_t paddr, uint64_t filesz, uint64_t memsz,
                                   std::optional<uint32_t> pvh) {
  // Layout: ehdr | 2 phdrs | note | segment bytes.
  const uint64_t phoff = sizeof(Elf64_Ehdr);
  const uint64_t note_off = phoff + 2 * sizeof(Elf64_Phdr);
  const uint64_t note_size = sizeof(Elf64_Nhdr) + 4 + 4;  // "Xen\0" + 32-bit entry
  const uint64_t seg_off = 0x1000;
  std::vector<uint8_t> f(seg_off + filesz, 0);

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = paddr;
  eh.e_phoff = phoff;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 2;
  std::memcpy(f.data(), &eh, sizeof(eh));

  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = seg_off;
  load.p_vaddr = 0xffffffff80000000ULL + paddr;
  load.p_paddr = paddr;
  load.p_filesz = filesz;
  load.p_memsz = memsz;
  std::memcpy(f.data() + phoff, &load, sizeof(load));

  Elf64_Phdr note{};
  note.p_type = pvh ? PT_NOTE : PT_NULL;
  note.p_offset = note_off;
  note.p_filesz = note_size;
  std::memcpy(f.data() + phoff + sizeof(Elf64_Phdr), &note, sizeof(note));

  Elf64_Nhdr nh{4, 4, kXenElfNotePhys32Entry};
  std::memcpy(f.data() + note_off, &nh, sizeof(nh));
  std::memcpy(f.data() + note_off + sizeof(nh), "Xen", 4);
  const uint32_t entry = pvh.value_or(0);
  std::memcpy(f.data() + note_off + sizeof(nh) + 4, &entry, 4);

  for (uint64_t i = 0; i < filesz; ++i) f[seg_off + i] = static_cast<uint8_t>(0xa0 + (i % 16));
  return f;
}

}  // namespace forkvm::x86::testing

namespace forkvm::x86 {
namespace {

using testing::make_test_elf;

TEST_CASE("ELF segments load at p_paddr with .bss zeroed") {
  auto mem = GuestMemory::create_anonymous(64ULL << 20);
  REQUIRE(mem.ok());
  // Pre-dirty the .bss range: loading must clear it.
  std::vector<uint8_t> junk(0x100, 0x55);
  REQUIRE(mem->write(0x1000000 + 0x200, junk));
  auto img = make_test_elf(0x1000000, 0x200, 0x400, std::nullopt);
  auto k = load_elf(img, *mem);
  REQUIRE(k.ok());
  CHECK(k->entry == 0x1000000);
  CHECK(k->load_start == 0x1000000);
  CHECK(k->load_end == 0x1000400);
  CHECK_FALSE(k->pvh_entry.has_value());
  CHECK(mem->read_obj<uint8_t>(0x1000000) == 0xa0);
  CHECK(mem->read_obj<uint8_t>(0x100001f) == 0xaf);
  CHECK(mem->read_obj<uint8_t>(0x1000200) == 0);
  CHECK(mem->read_obj<uint8_t>(0x10002ff) == 0);
}

TEST_CASE("ELF PVH note is found") {
  auto mem = GuestMemory::create_anonymous(64ULL << 20);
  REQUIRE(mem.ok());
  auto k = load_elf(make_test_elf(0x1000000, 0x100, 0x100, 0x1000080), *mem);
  REQUIRE(k.ok());
  REQUIRE(k->pvh_entry.has_value());
  CHECK(*k->pvh_entry == 0x1000080);
}

TEST_CASE("ELF segment past the end of guest memory is refused, memory untouched") {
  auto mem = GuestMemory::create_anonymous(16ULL << 20);
  REQUIRE(mem.ok());
  // Starts inside RAM, ends 4 KiB past it.
  auto img = make_test_elf((16ULL << 20) - 0x1000, 0x100, 0x2000, std::nullopt);
  auto k = load_elf(img, *mem);
  REQUIRE_FALSE(k.ok());
  CHECK(k.error().message.find("does not fit in guest memory") != std::string::npos);
  CHECK(mem->read_obj<uint8_t>((16ULL << 20) - 0x1000) == 0);
  // Wholly outside, in the MMIO hole.
  CHECK_FALSE(load_elf(make_test_elf(0xd0000000, 0x100, 0x100, std::nullopt), *mem).ok());
}

TEST_CASE("ELF refusals: below 1 MiB, truncated, wrong machine, filesz > memsz") {
  auto mem = GuestMemory::create_anonymous(16ULL << 20);
  REQUIRE(mem.ok());
  CHECK_FALSE(load_elf(make_test_elf(0x7000, 0x100, 0x100, std::nullopt), *mem).ok());
  auto img = make_test_elf(0x200000, 0x800, 0x800, std::nullopt);
  auto truncated = img;
  truncated.resize(truncated.size() - 1);
  CHECK_FALSE(load_elf(truncated, *mem).ok());
  auto wrong = img;
  wrong[offsetof(Elf64_Ehdr, e_machine)] = EM_386;
  CHECK_FALSE(load_elf(wrong, *mem).ok());
  CHECK_FALSE(load_elf(make_test_elf(0x200000, 0x800, 0x400, std::nullopt), *mem).ok());
  std::vector<uint8_t> not_elf(64, 0);
  CHECK_FALSE(looks_like_elf(not_elf));
  CHECK_FALSE(load_elf(not_elf, *mem).ok());
}

}  // namespace
}  // namespace forkvm::x86
