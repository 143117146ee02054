// The snapshot state file: a versioned container of checksummed sections.
//
//   file    = header section* end
//   header  = magic "FKVMSNAP" | u16 major | u16 minor | u32 flags (0) |
//             u64 reserved (0) | u32 reserved (0) | u32 crc32c(previous 28 bytes)
//   section = u32 id | u32 instance | u64 length | u32 crc32c(payload) |
//             u32 crc32c(previous 20 bytes) | payload[length]
//   end     = a section with id kEnd whose payload is the u32 count of the
//             sections before it; nothing may follow it.
//
// All integers little-endian. A reader refuses another major version and
// accepts any minor one: minor versions only add sections, and readers skip
// ids they do not know, which is how the format grows. Every length is
// checked against the bytes actually present before it is used; the header
// checksum of each section is verified before its length is trusted, so a
// flipped bit reads as "corrupt section header", not as a huge allocation.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::snapshot {

inline constexpr char kMagic[8] = {'F', 'K', 'V', 'M', 'S', 'N', 'A', 'P'};
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 0;
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kSectionHeaderSize = 24;
// A state file holds registers and device state: KiBs per vCPU. Anything
// near this bound is not one of ours.
inline constexpr uint64_t kMaxStateFileSize = 64ULL << 20;

// Section ids. New ids may be added in a minor version; ids are never reused.
enum SectionId : uint32_t {
  kEnd = 0,
  kMachine = 1,  // machine configuration (memory size, vCPUs, devices, disks)
  kVm = 2,       // per-VM KVM state: irqchips, PIT, clock
  kVcpu = 3,     // one per vCPU, instance = vCPU index
  kVirtio = 4,   // one per virtio-mmio transport, instance = its index
  kLegacy = 5,   // serial, i8042, ACPI PM
  kMemory = 6,   // the memory file: name, size
  // Instead of kMemory (so that a reader without it refuses the file rather
  // than mapping a delta as if it were all of memory): a base memory file,
  // a file of the pages that differ from it (extents: written pages, holes:
  // the base's), and the size.
  kMemoryDelta = 7,
};

// CRC-32C (Castagnoli), the iSCSI/ext4 polynomial; crc32c("123456789") == 0xE3069283.
[[nodiscard]] uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc = 0);

struct Section {
  uint32_t id = 0;
  uint32_t instance = 0;
  std::vector<uint8_t> payload;
};

// Writes path.tmp, fsyncs and renames it over path, so a crash never leaves
// a half-written file under the final name.
[[nodiscard]] Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

class StateFileWriter {
 public:
  void add(uint32_t id, uint32_t instance, std::vector<uint8_t> payload);
  // The whole file as bytes (header, sections, end).
  [[nodiscard]] std::vector<uint8_t> encode() const;
  // write_file_atomic of encode().
  [[nodiscard]] Status write(const std::string& path) const;

 private:
  std::vector<Section> sections_;
};

class StateFile {
 public:
  // `name` (a path) is what error messages call the file.
  static Result<StateFile> parse(std::span<const uint8_t> bytes, const std::string& name);
  static Result<StateFile> read(const std::string& path);

  [[nodiscard]] uint16_t minor() const { return minor_; }
  [[nodiscard]] const std::vector<Section>& sections() const { return sections_; }
  // The section with this id and instance, or nullptr.
  [[nodiscard]] const Section* find(uint32_t id, uint32_t instance = 0) const;
  // Like find(), but a missing section is an error naming the file.
  [[nodiscard]] Result<const Section*> require(uint32_t id, uint32_t instance, const char* what) const;
  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string name_;
  uint16_t minor_ = 0;
  std::vector<Section> sections_;
};

}  // namespace forkvm::snapshot
