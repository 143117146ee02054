// What LocalEngine knows about one VM while its VMM runs (private to
// api/engine/).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "api/agent/agent_client.hpp"
#include "api/engine/engine.hpp"
#include "api/engine/vmm_process.hpp"

namespace forkvm::engine {

struct LiveVm {
  std::string id;
  std::string dir;      // <data>/vms/<id>
  std::string run_dir;  // <run>/<id>: the vsock socket
  std::string agent_socket;
  std::string control_socket;  // vmm/control.hpp: snapshot, pause, stop
  std::string instance_id;
  uint32_t net_slot = 0;
  std::shared_ptr<VmmProcess> vmm;
  bool vmm_died_starting = false;  // its VMM exited on its own before the agent answered

  // Its id, directories and socket paths: the one place that names them.
  void place(const std::string& vm_id, const std::string& vm_dir, const std::string& run_root) {
    id = vm_id;
    dir = vm_dir;
    run_dir = run_root + "/" + vm_id;
    agent_socket = run_dir + "/vsock.sock";
    control_socket = run_dir + "/control.sock";
  }
  std::atomic<int64_t> last_api_ms{0};  // epoch ms of the last API call into it (idle timeout)

  [[nodiscard]] agent::AgentClient agent(int64_t call_timeout_ms = 60000) const {
    agent::ClientOptions o;
    o.socket_path = agent_socket;
    o.vsock_mux = true;
    o.call_timeout_ms = call_timeout_ms;
    return agent::AgentClient(o);
  }
};

// Agent errors ("CODE: message") as API errors with the SDK's codes.
[[nodiscard]] api::ApiError from_agent_error(const Error& e);

template <typename T>
api::ApiResult<T> from_agent(Result<T> r) {
  if (!r.ok()) return from_agent_error(r.error());
  return std::move(*r);
}

}  // namespace forkvm::engine
