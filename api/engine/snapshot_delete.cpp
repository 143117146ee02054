// Deleting a snapshot (api/engine/snapshots.cpp makes them): its frozen disk
// layers lose the "snapshot:<id>" hold that snapshot_vm took and the hold of
// the chain file the VMM wrote (delete_chain), gc removes the
// ones nothing else holds, and its directory (state, memory, chain) goes.
// VMs created from it keep working: fork_chain_from gave each its own holds
// on the same layers, and a running VM's mapping of the memory file keeps
// that file's pages alive after the unlink.
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

#include "api/engine/local_engine_impl.hpp"
#include "devices/storage/chain_ops.hpp"
#include "devices/storage/layer_store.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {

ApiStatus LocalEngine::delete_snapshot(const CallContext& /*ctx*/, const SnapshotRecord& snapshot) {
  const std::string dir = o_.data_dir + "/snapshots/" + snapshot.id;
  if (::access(dir.c_str(), F_OK) != 0) return {};  // never made here (a failed save), or already gone
  const std::string chain_path = dir + "/chain";
  if (::access(chain_path.c_str(), F_OK) == 0) {
    auto chain = storage::load_chain(chain_path);
    if (!chain.ok())
      return api_error(ErrorCode::InternalError, fmt::format("snapshot {}: reading its disk chain: {}",
                                                             snapshot.id, chain.error().message));
    if (auto s = storage::release_chain(*chain, "snapshot:" + snapshot.id); !s.ok())
      return api_error(ErrorCode::InternalError, fmt::format("snapshot {}: releasing its disk layers: {}",
                                                             snapshot.id, s.error().message));
    // The VMM that froze the disk held the layers for the chain file too.
    if (auto s = storage::delete_chain(chain_path); !s.ok())
      return api_error(ErrorCode::InternalError, fmt::format("snapshot {}: releasing its disk chain: {}",
                                                             snapshot.id, s.error().message));
    auto removed = storage::gc(layers_root());
    if (!removed.ok())
      log(LogLevel::warn, "engine: collecting unused disk layers after snapshot {}: {}", snapshot.id,
          removed.error().message);
    else
      log(LogLevel::info, "engine: snapshot {} deleted; {} disk layer(s) no longer held were removed",
          snapshot.id, removed->size());
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec)
    return api_error(ErrorCode::InternalError,
                     fmt::format("snapshot {}: removing {}: {}", snapshot.id, dir, ec.message()));
  return {};
}

}  // namespace forkvm::engine
