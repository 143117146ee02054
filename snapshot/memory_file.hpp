// The snapshot memory file: guest RAM regions back to back (region i at the
// sum of the sizes before it), as GuestMemory::map_file_private() maps it.
// Written sparse: all-zero 4 KiB pages are holes, so a mostly idle 256 MiB
// guest costs only the pages it touched, and restore reads holes as zeros.
//
// The VM is paused for the whole write. A write-protect (userfaultfd) or
// fork()-based background copy can shorten that pause later (design doc 5.2).
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

}  // namespace forkvm::snapshot
