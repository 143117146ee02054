#include "vmm/x86/elf.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include "vmm/x86/layout.hpp"

namespace forkvm::x86 {
namespace {

template <typename T>
T read_at(std::span<const uint8_t> image, uint64_t offset) {
  T v{};
  std::memcpy(&v, image.data() + offset, sizeof(T));
  return v;
}

// True if [offset, offset + len) lies inside a buffer of `size` bytes,
// written so that offset + len cannot overflow.
bool in_bounds(uint64_t size, uint64_t offset, uint64_t len) {
  return offset <= size && len <= size - offset;
}

uint64_t align4(uint64_t v) { return (v + 3) & ~uint64_t{3}; }

// Walks the notes of one PT_NOTE segment for Xen's PHYS32_ENTRY.
std::optional<uint64_t> find_pvh_entry(std::span<const uint8_t> notes) {
  uint64_t off = 0;
  while (in_bounds(notes.size(), off, sizeof(Elf64_Nhdr))) {
    const auto nh = read_at<Elf64_Nhdr>(notes, off);
    const uint64_t name_off = off + sizeof(Elf64_Nhdr);
    const uint64_t desc_off = name_off + align4(nh.n_namesz);
    const uint64_t next = desc_off + align4(nh.n_descsz);
    if (!in_bounds(notes.size(), name_off, align4(nh.n_namesz)) ||
        !in_bounds(notes.size(), desc_off, nh.n_descsz)) {
      break;
    }
    const std::string_view name(reinterpret_cast<const char*>(notes.data() + name_off), nh.n_namesz);
    if (nh.n_type == kXenElfNotePhys32Entry && (name == std::string_view("Xen\0", 4) || name == "Xen")) {
      // The note is 32 bits in Linux (.long) but other kernels emit a quad.
      if (nh.n_descsz == 4) return read_at<uint32_t>(notes, desc_off);
      if (nh.n_descsz == 8) return read_at<uint64_t>(notes, desc_off);
    }
    off = next;
  }
  return std::nullopt;
}

}  // namespace

bool looks_like_elf(std::span<const uint8_t> image) {
  return image.size() >= SELFMAG && std::memcmp(image.data(), ELFMAG, SELFMAG) == 0;
}

Result<ElfKernel> load_elf(std::span<const uint8_t> image, const GuestMemory& memory) {
  if (!looks_like_elf(image) || image.size() < sizeof(Elf64_Ehdr)) return make_error("not an ELF file");
  const auto eh = read_at<Elf64_Ehdr>(image, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB) {
    return make_error("ELF kernel is not 64-bit little-endian");
  }
  if (eh.e_machine != EM_X86_64) return make_error("ELF kernel is for machine {}, not x86-64", eh.e_machine);
  if (eh.e_type != ET_EXEC) return make_error("ELF kernel is not an executable (type {})", eh.e_type);
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
      !in_bounds(image.size(), eh.e_phoff, uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr))) {
    return make_error("ELF kernel has a malformed program header table");
  }

  std::vector<Elf64_Phdr> loads;
  ElfKernel k;
  k.entry = eh.e_entry;
  k.load_start = ~uint64_t{0};
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph = read_at<Elf64_Phdr>(image, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr));
    if (ph.p_type == PT_NOTE && in_bounds(image.size(), ph.p_offset, ph.p_filesz) && !k.pvh_entry) {
      k.pvh_entry = find_pvh_entry(image.subspan(ph.p_offset, ph.p_filesz));
    }
    if (ph.p_type != PT_LOAD) continue;
    if (!in_bounds(image.size(), ph.p_offset, ph.p_filesz) || ph.p_filesz > ph.p_memsz) {
      return make_error("ELF segment {} ({:#x}+{:#x}) lies outside the {}-byte file", i, ph.p_offset,
                        ph.p_filesz, image.size());
    }
    if (ph.p_paddr < lowmem::kHighMem) {
      return make_error("ELF segment {} at {:#x} overlaps the boot data below 1 MiB", i, ph.p_paddr);
    }
    if (memory.host_ptr(ph.p_paddr, ph.p_memsz) == nullptr) {
      return make_error("ELF segment {} at {:#x}+{:#x} does not fit in guest memory ({} MiB)", i, ph.p_paddr,
                        ph.p_memsz, memory.size() >> 20);
    }
    loads.push_back(ph);
    k.load_start = std::min(k.load_start, ph.p_paddr);
    k.load_end = std::max(k.load_end, ph.p_paddr + ph.p_memsz);
  }
  if (loads.empty()) return make_error("ELF kernel has no loadable segments");
  if (k.entry < k.load_start || k.entry >= k.load_end) {
    return make_error("ELF entry {:#x} is outside the loaded range {:#x}-{:#x}", k.entry, k.load_start,
                      k.load_end);
  }

  for (const auto& ph : loads) {
    uint8_t* dst = memory.host_ptr(ph.p_paddr, ph.p_memsz);
    std::memcpy(dst, image.data() + ph.p_offset, ph.p_filesz);
    // .bss: the mapping may be reused (reboot), so zero it explicitly.
    std::memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
  }
  return k;
}

}  // namespace forkvm::x86
