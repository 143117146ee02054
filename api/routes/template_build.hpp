// Template builds: a VmTemplate, or a SnapshotSpec chain, becomes a snapshot
// one layer at a time, innermost first. Each layer's snapshot is cached per
// account under a hash of the layer's canonical JSON and its base, so a layer
// is built once and every later request for it (and every VM created from
// it) restores the cached snapshot; `skipCache` builds it again, and the new
// snapshot becomes the cache entry.
//
// Building a layer is the engine's own create and snapshot: a VM is restored
// from the layer's base (the snapshot below it, or the default image), the
// create applies the layer's groups, users, files, packages, repositories and
// services, the VM is snapshotted and then deleted. One build row per request
// records what it did as phases; a request whose layers were all cached opens
// no build.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "api/models/api_error.hpp"
#include "api/models/requests.hpp"
#include "api/routes/api.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

struct BuiltSnapshot {
  SnapshotRecord snapshot;  // ready
  // The build that made the snapshot: this request's, or, when every layer
  // was cached, the earlier one's.
  std::optional<std::string> build_id;
};

// Name and persistence for the outermost layer's snapshot when it is built.
struct OuterSnapshotFields {
  std::optional<std::string> name;
  std::optional<Persistence> persistence;
};

// `bad_input` is the endpoint's code for a request the build cannot serve
// (CREATE_VM_BAD_REQUEST or CREATE_SNAPSHOT_BAD_REQUEST).
[[nodiscard]] ApiResult<BuiltSnapshot> build_template(RouteContext& ctx, const LayerSpec& outermost,
                                                      const OuterSnapshotFields& outer, ErrorCode bad_input);

// The cache key of a layer over `base` (a snapshot id, or "default-image").
[[nodiscard]] std::string layer_hash(const LayerSpec& layer, std::string_view base);

}  // namespace forkvm::api
