// LocalEngine: the VmEngine that runs every VM on this host. Each VM is a
// `forkvm run` process (api/engine/vmm_process.hpp) booting a guest image
// with its own root disk, network slot (netns + TAP + NAT) and vsock socket;
// everything inside the guest goes through the forkvm-agent over that socket
// (api/agent/). Per-VM files live in <data>/vms/<id>/; sockets in
// <run>/<id>/ (Unix socket paths must stay short).
#pragma once

#include <memory>
#include <string>

#include "api/engine/engine.hpp"

namespace forkvm::engine {

struct LocalEngineOptions {
  std::string data_dir;                  // <data>/vms/<id>/ per VM
  std::string run_dir = "/run/forkvm";   // sockets
  std::string forkvm_binary;             // default: this executable (/proc/self/exe)
  std::string image = "default";         // api/engine/image.hpp
  uint64_t default_mem_mib = 1024;
  uint32_t default_vcpus = 2;
  // Boot to agent-ready; generous because nested emulation (tools/rig) is slow.
  int64_t boot_timeout_ms = 600000;
  uint32_t first_net_slot = 16;  // below it: free for `forkvm run` by hand and tests
  // Network slots kept set up ahead of time, so that a VM start (create,
  // restore, fork child) runs none of the `ip`/`nft` commands; 0: none.
  uint32_t prepared_net_slots = 2;
  // Standby VMMs kept ready for restores (api/engine/vmm_pool.hpp); 0: none.
  // Each idle one costs about 6 MiB and no CPU.
  uint32_t standby_vmms = 2;
  // Make the golden snapshot (what a create restores) in the background at start.
  bool warm_up = true;
};

[[nodiscard]] Result<std::unique_ptr<api::VmEngine>> make_local_engine(const LocalEngineOptions& options);

}  // namespace forkvm::engine
