// libFuzzer target: the snapshot state file parser and the field decoder,
// fed arbitrary bytes. A state file comes from disk and may be truncated,
// corrupted or hostile: parsing must fail cleanly, never read out of bounds
// or allocate what a length field claims.
#include <cstddef>
#include <cstdint>
#include <span>

#include "snapshot/format.hpp"
#include "vmm/state_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  auto file = forkvm::snapshot::StateFile::parse(bytes, "fuzz");
  if (file.ok()) {
    for (const auto& s : file->sections()) {
      forkvm::StateReader r(s.payload, "fuzz");
      (void)r.u32();
      (void)r.str(64);
      (void)r.pod_array<uint64_t>(16);
    }
  }
  // The decoder on raw input too: every field type against every prefix.
  forkvm::StateReader r(bytes, "fuzz");
  while (r.remaining() > 0) {
    if (!r.bytes(4096).ok() && !r.u8().ok()) break;
  }
  return 0;
}
