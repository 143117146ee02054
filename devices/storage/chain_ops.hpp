// Whole-chain operations, offline (no VM has the chain open) unless said
// otherwise. These are what `forkvm disk` and the API engine call:
//
//   per-VM disk:   create_chain(rootfs, vm_dir)          -> vm_dir/chain
//   fork (live):   frozen = disk.freeze();  fork_chain_from(frozen, child_dir)
//   fork (offline) fork_chain(parent_chain, child_dir)
//   snapshot:      frozen = disk.freeze(); retain_chain(frozen, "snapshot:ID");
//                  save_chain(snap_dir/chain, frozen); restore = fork_chain_from(frozen, new_vm_dir)
//   delete VM:     delete_chain(vm_dir/chain); gc(layers_root)
//   optimise:      flatten_chain(chain, out_dir)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "devices/storage/chain_descriptor.hpp"
#include "vmm/result.hpp"

namespace forkvm::storage {

struct CreateOptions {
  std::string base;              // raw image; empty: no base (reads zeros)
  std::optional<uint64_t> size;  // default: the base's size (required without a base)
  std::string layers_root;       // default: DIR/layers
  uint32_t cluster_shift = 16;
};

// Makes DIR/chain: the base plus one empty writable layer. Returns the
// descriptor's path. Refuses if DIR/chain exists.
[[nodiscard]] Result<std::string> create_chain(const std::string& dir, const CreateOptions& options);

// Offline freeze: a new empty top over the current one. Refused while a VM
// has the chain open (its top is locked). Returns the frozen chain.
[[nodiscard]] Result<ChainDescriptor> freeze_chain(const std::string& chain_path);

// Offline: the top layer is replaced by a new empty one, and what was written
// to it is let go (run gc after). For a restore that died before its guest
// answered: those writes came from a guest that no longer exists, and the
// retry's guest, restored from the same memory, must not see them. Refused
// while a VM has the chain open.
[[nodiscard]] Status discard_top(const std::string& chain_path);

// Offline grow (LayeredDisk::grow for a chain no VM has open).
[[nodiscard]] Status grow_chain(const std::string& chain_path, uint64_t new_size);

// A new chain at DIR/chain sharing every layer of `frozen` (all treated as
// read-only from now on) under a new empty top in the same layers root.
[[nodiscard]] Result<std::string> fork_chain_from(const ChainDescriptor& frozen, const std::string& dir);
// freeze_chain + fork_chain_from: afterwards both chains have their own top.
[[nodiscard]] Result<std::string> fork_chain(const std::string& chain_path, const std::string& dir);

// Holds (or lets go of) every layer of a chain, as `holder`.
[[nodiscard]] Status retain_chain(const ChainDescriptor& chain, const std::string& holder);
[[nodiscard]] Status release_chain(const ChainDescriptor& chain, const std::string& holder);
// Releases the chain's own holds and removes its descriptor; run gc after.
[[nodiscard]] Status delete_chain(const std::string& chain_path);

// Merges every layer into one, in a new chain OUT_DIR/chain over the same
// base with its own layers root (OUT_DIR/layers). The source is untouched.
[[nodiscard]] Result<std::string> flatten_chain(const std::string& chain_path, const std::string& out_dir);

// Offline, in place: the chain becomes its base plus one new layer (in the
// same layers root) holding every cluster its layers held; it lets go of the
// old layers (run gc after). Refused while a VM has the chain open. Returns
// how many layers were merged. A chain of one layer is left as it is.
[[nodiscard]] Result<size_t> flatten_chain_in_place(const std::string& chain_path);

// The disk as the guest sees it, as a sparse raw image.
[[nodiscard]] Status export_raw(const std::string& chain_path, const std::string& out_file);

// Human-readable summary: geometry, base, each layer's clusters and holders.
[[nodiscard]] Result<std::string> chain_info(const std::string& chain_path);

}  // namespace forkvm::storage
