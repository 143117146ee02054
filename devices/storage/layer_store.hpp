// The layers root: one directory per layer, <root>/<id>/{data,map,refs}.
// `data` is a sparse file the size of the virtual disk, `map` its
// allocation map (layer_map.hpp), `refs` the names of whoever holds the
// layer (a chain descriptor's path, "snapshot:<id>", ...), one per line.
//
// A holder set instead of a counter: retain and release are idempotent, so a
// retried or crashed operation cannot drive a count wrong, and `disk info`
// can say who keeps a layer alive. Every change to refs, creation and gc
// happen under an flock on <root>/.lock, so gc never races a retain.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::storage {

[[nodiscard]] bool valid_layer_id(std::string_view id);  // 16 lowercase hex digits

[[nodiscard]] std::string layer_dir(const std::string& root, const std::string& id);
[[nodiscard]] std::string layer_data_path(const std::string& root, const std::string& id);
[[nodiscard]] std::string layer_map_path(const std::string& root, const std::string& id);

// Makes a new empty layer (sparse data of `size` bytes, an empty map) held
// by `holder`; returns its id. The root is created if missing.
[[nodiscard]] Result<std::string> create_layer(const std::string& root, uint64_t size, uint32_t cluster_shift,
                                               const std::string& holder);

[[nodiscard]] Status retain(const std::string& root, const std::string& id, const std::string& holder);
[[nodiscard]] Status release(const std::string& root, const std::string& id, const std::string& holder);
[[nodiscard]] Result<std::vector<std::string>> holders(const std::string& root, const std::string& id);

// Removes every layer nobody holds and no process has open (open layers are
// flock'ed by LayeredDisk); returns the ids removed.
[[nodiscard]] Result<std::vector<std::string>> gc(const std::string& root);

}  // namespace forkvm::storage
