// The snapshot memory file: guest RAM regions back to back (region i at the
// sum of the sizes before it), as GuestMemory::map_file_private() maps it.
// Written sparse: all-zero 4 KiB pages are holes, so a mostly idle 256 MiB
// guest costs only the pages it touched, and restore reads holes as zeros.
//
// A machine restored from a memory file maps it MAP_PRIVATE: the pages the
// guest wrote since are the mapping's anonymous (copy-on-write) pages, and
// /proc/self/pagemap tells them from the file's. A delta file holds just
// those, so a suspend after a restore writes O(pages changed), not O(RAM).
//
// The writers only read guest RAM; the VMM calls them from a fork()ed copy
// of itself so the guest runs on meanwhile (vmm/machine_snapshot.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"

namespace forkvm::snapshot {

struct MemoryFileStats {
  uint64_t size = 0;        // the file's length (= guest RAM)
  uint64_t data_bytes = 0;  // bytes actually written (non-zero pages)
};

// Writes the file but does not fsync it: the caller resumes the guest first
// and then calls sync_file(), so the disk flush is not part of the pause.
Result<MemoryFileStats> write_memory_file(const GuestMemory& memory, const std::string& path);
Status sync_file(const std::string& path);

// Writes the pages of `memory` (a map_file_private() mapping) that no longer
// come from the file it maps, zero or not, as a delta file: a checksummed
// bitmap of those pages, then the pages packed (memory_file.cpp has the
// layout). Nothing depends on the filesystem keeping holes.
Result<MemoryFileStats> write_memory_delta(const GuestMemory& memory, const std::string& path);
// Copies the pages of delta file `fd` into `memory` (the base mapping),
// which makes them private. A delta for other RAM, a bad checksum or a
// truncated file is refused before any page is copied; `path` names it.
Status apply_memory_delta(const GuestMemory& memory, int fd, const std::string& path);

}  // namespace forkvm::snapshot
