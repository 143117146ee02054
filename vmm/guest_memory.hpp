// Guest RAM: host mappings for guest-physical ranges, and the only way the
// VMM turns a guest-physical address into a host pointer. Every address and
// length a guest hands us goes through host_ptr()/read()/write(), which
// refuse anything that is not wholly inside one RAM region.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm {

// Guest-physical layout. RAM runs from 0 up to the 32-bit MMIO hole and
// continues above 4 GiB; the hole holds virtio-mmio windows, the IOAPIC and
// the LAPIC.
namespace layout {
inline constexpr uint64_t kMmioHoleStart = 0xC000'0000;  // 3 GiB
inline constexpr uint64_t kMmioHoleEnd = 0x1'0000'0000;  // 4 GiB
inline constexpr uint64_t kVirtioMmioBase = 0xD000'0000;
inline constexpr uint64_t kVirtioMmioStride = 0x1000;
inline constexpr uint64_t kIoapicBase = 0xFEC0'0000;
inline constexpr uint64_t kLapicBase = 0xFEE0'0000;
}  // namespace layout

struct MemoryRegion {
  uint64_t guest_addr = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;  // start of the host mapping for guest_addr

  [[nodiscard]] uint64_t end() const { return guest_addr + size; }
};

class GuestMemory {
 public:
  // Maps `size` bytes of anonymous memory (MADV_HUGEPAGE), split around the
  // MMIO hole. The mapping is one contiguous host range so that a fork()
  // copies one VMA.
  static Result<GuestMemory> create_anonymous(uint64_t size);
  // The same layout over the first `size` bytes of file `fd` (a snapshot's
  // memory file: the regions back to back), mapped MAP_PRIVATE: the file's
  // pages are shared in the page cache until the guest writes one, which
  // then gets a private copy. Nothing is read up front.
  static Result<GuestMemory> map_file_private(int fd, uint64_t size);

  GuestMemory(GuestMemory&& other) noexcept;
  GuestMemory& operator=(GuestMemory&& other) noexcept;
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;
  ~GuestMemory();

  // In a fork()ed child only: a second owner of this mapping (the child's
  // copy-on-write copy of it) for a machine built in the child. `this` must
  // then never be destroyed, or it would unmap the new owner's memory.
  [[nodiscard]] GuestMemory adopt_after_fork() const { return GuestMemory(base_, mapped_, regions_, total_); }

  [[nodiscard]] std::span<const MemoryRegion> regions() const { return regions_; }
  [[nodiscard]] uint64_t size() const { return total_; }

  // Host pointer for [gpa, gpa + len) or nullptr if any byte of it is not
  // RAM or the range wraps. len == 0 is valid only at a RAM address.
  [[nodiscard]] uint8_t* host_ptr(uint64_t gpa, uint64_t len) const;

  [[nodiscard]] bool read(uint64_t gpa, std::span<uint8_t> out) const;
  [[nodiscard]] bool write(uint64_t gpa, std::span<const uint8_t> in) const;

  template <typename T>
  [[nodiscard]] std::optional<T> read_obj(uint64_t gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    if (!read(gpa, {reinterpret_cast<uint8_t*>(&value), sizeof(T)})) return std::nullopt;
    return value;
  }
  template <typename T>
  [[nodiscard]] bool write_obj(uint64_t gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

 private:
  GuestMemory(uint8_t* base, uint64_t mapped, std::vector<MemoryRegion> regions, uint64_t total);

  uint8_t* base_ = nullptr;  // the single host mapping
  uint64_t mapped_ = 0;
  std::vector<MemoryRegion> regions_;
  uint64_t total_ = 0;
};

}  // namespace forkvm
