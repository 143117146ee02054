// Identifier formats of the Freestyle API and a generator for them. VM ids
// are 20 lowercase alphanumerics; other ids carry a kind prefix
// ("sc-" snapshots, "bld-" builds, "bph-" build phases, "sl-" snapshot
// layers, "ri-" request ids). Randomness comes from getrandom(2), so ids are
// unguessable: an id is never proof of access, but guessing one is useless.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace forkvm::api {

inline constexpr size_t kIdRandomChars = 20;
inline constexpr std::string_view kSnapshotIdPrefix = "sc-";
inline constexpr std::string_view kBuildIdPrefix = "bld-";
inline constexpr std::string_view kPhaseIdPrefix = "bph-";
inline constexpr std::string_view kLayerIdPrefix = "sl-";  // 16 characters after it, per the spec
inline constexpr std::string_view kRequestIdPrefix = "ri-";
inline constexpr std::string_view kApiKeyPrefix = "fvm_";
inline constexpr size_t kApiKeyRandomChars = 40;  // base62: about 238 bits

[[nodiscard]] bool is_vm_id(std::string_view id);
[[nodiscard]] bool is_snapshot_id(std::string_view id);
[[nodiscard]] bool is_build_id(std::string_view id);
[[nodiscard]] bool is_lower_alnum(std::string_view s);

// `n` characters drawn uniformly from `alphabet` (at most 256 symbols).
[[nodiscard]] std::string random_string(size_t n, std::string_view alphabet);

[[nodiscard]] std::string new_vm_id();
[[nodiscard]] std::string new_snapshot_id();
[[nodiscard]] std::string new_build_id();
[[nodiscard]] std::string new_phase_id();
[[nodiscard]] std::string new_layer_id();
[[nodiscard]] std::string new_request_id();
[[nodiscard]] std::string new_instance_id();
[[nodiscard]] std::string new_api_key();
[[nodiscard]] bool looks_like_api_key(std::string_view key);

}  // namespace forkvm::api
