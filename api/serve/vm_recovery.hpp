// The store's side of VMs that outlive the server: at start, every VM the
// store has as running is handed to the engine to take back, or marked
// `lost` with the engine's reason; while serving, a VM whose VMM ended on
// its own gets its row updated the same way.
#pragma once

#include "api/engine/engine.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

// Before the server listens. Returns how many VMs were taken back.
size_t recover_vms(Store& store, VmEngine& engine);

// The engine's VmExitListener writing to `store` (which must outlive the engine).
[[nodiscard]] VmExitListener store_exit_listener(Store& store);

}  // namespace forkvm::api
