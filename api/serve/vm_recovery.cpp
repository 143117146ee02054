#include "api/serve/vm_recovery.hpp"

#include "vmm/log.hpp"

namespace forkvm::api {
namespace {

// Rows whose VMM should be running. "suspending" never outlives a request,
// so a row left in it lost its VMM mid-save, or still has it: ask the engine.
const std::vector<std::string> kRunningStates = {"starting", "running", "suspending"};

void mark(Store& store, VmRecord vm, const std::string& state, const std::string& reason) {
  vm.state = state;
  vm.error_reason = state == "lost" ? std::optional<std::string>(reason) : std::nullopt;
  vm.vmm_pid.reset();
  vm.updated_at_ms = now_ms();
  if (auto s = store.update_vm(vm); !s.ok())
    log(LogLevel::error, "serve: recording that VM {} is {}: {}", vm.id, state, s.error().message);
}

}  // namespace

size_t recover_vms(Store& store, VmEngine& engine) {
  auto rows = store.list_vms_in_states(kRunningStates);
  if (!rows.ok()) {
    log(LogLevel::error, "serve: listing the VMs to find again: {}", rows.error().message);
    return 0;
  }
  size_t adopted = 0;
  for (auto& vm : *rows) {
    auto found = engine.adopt_vm(vm);
    if (!found.ok()) {
      log(LogLevel::warn, "serve: VM {} is lost: {}", vm.id, found.error().message);
      mark(store, vm, "lost", found.error().message);
      continue;
    }
    vm.state = "running";
    vm.instance_id = found->instance_id;
    vm.vmm_pid = found->runtime.vmm_pid;
    vm.agent_socket = found->runtime.agent_socket;
    vm.control_socket = found->runtime.control_socket;
    vm.error_reason.reset();
    vm.updated_at_ms = now_ms();
    if (auto s = store.update_vm(vm); !s.ok())
      log(LogLevel::error, "serve: recording VM {} found again: {}", vm.id, s.error().message);
    adopted++;
  }
  if (!rows->empty())
    log(LogLevel::info, "serve: {} of {} running VMs found again after the restart", adopted, rows->size());
  return adopted;
}

VmExitListener store_exit_listener(Store& store) {
  return [&store](const std::string& vm_id, const std::string& state, const std::string& reason) {
    auto rows = store.list_vms_in_states(kRunningStates);
    if (!rows.ok()) {
      log(LogLevel::error, "serve: VM {} is {} but the store could not be read: {}", vm_id, state,
          rows.error().message);
      return;
    }
    for (auto& vm : *rows)
      if (vm.id == vm_id) mark(store, vm, state, reason);
  };
}

}  // namespace forkvm::api
