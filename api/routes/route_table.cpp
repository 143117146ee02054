// The whole API surface on one screen: every path of the Freestyle VMs
// OpenAPI document (freestyle-vm-api-openapi.yml), plus health and the
// served spec. Keep it in the document's order.
#include "api/routes/api.hpp"

namespace forkvm::api {

const std::vector<Route>& api_routes() {
  constexpr size_t kJson = kMaxJsonBody;
  static const std::vector<Route> kRoutes = {
      {"GET", "/v1/vms", list_vms, true, kJson},
      {"POST", "/v1/vms", create_vm, true, kJson},
      {"GET", "/v1/vms/builds/{build_id}", get_build, true, kJson},
      {"GET", "/v1/vms/builds/{build_id}/phases", list_build_phases, true, kJson},
      {"GET", "/v1/vms/snapshots", list_snapshots, true, kJson},
      {"POST", "/v1/vms/snapshots", create_snapshot, true, kJson},
      {"GET", "/v1/vms/snapshots/{snapshot_id}", get_snapshot, true, kJson},
      {"DELETE", "/v1/vms/snapshots/{snapshot_id}", delete_snapshot, true, kJson},
      {"PATCH", "/v1/vms/snapshots/{snapshot_id}", update_snapshot, true, kJson},
      {"POST", "/v1/vms/{id}/resize", resize_vm, true, kJson},
      {"GET", "/v1/vms/{vm_id}", get_vm, true, kJson},
      {"DELETE", "/v1/vms/{vm_id}", delete_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/await", await_vm, true, kJson},
      {"GET", "/v1/vms/{vm_id}/build", get_build_for_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/exec-await", exec_await, true, kJson},
      {"GET", "/v1/vms/{vm_id}/files/{*filepath}", get_file, true, kJson},
      {"PUT", "/v1/vms/{vm_id}/files/{*filepath}", put_file, true, kMaxFileBody},
      {"POST", "/v1/vms/{vm_id}/fork", fork_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/kill", kill_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/optimize", optimize_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/snapshot", snapshot_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/start", start_vm, true, kJson},
      {"GET", "/v1/vms/{vm_id}/stats/stream", stats_stream, true, kJson},
      {"POST", "/v1/vms/{vm_id}/stop", stop_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/suspend", suspend_vm, true, kJson},
      {"POST", "/v1/vms/{vm_id}/systemd/restart", restart_services, true, kJson},
      {"GET", "/v1/vms/{vm_id}/systemd/services", list_services, true, kJson},
      {"POST", "/v1/vms/{vm_id}/systemd/services", create_service, true, kJson},
      {"DELETE", "/v1/vms/{vm_id}/systemd/services/{service_id}", delete_service, true, kJson},
      {"GET", "/v1/vms/{vm_id}/systemd/services/{service_id}/logs", service_logs, true, kJson},
      {"GET", "/v1/vms/{vm_id}/systemd/services/{service_id}/status", service_status, true, kJson},
      {"POST", "/v1/vms/{vm_id}/systemd/start", start_services, true, kJson},
      {"POST", "/v1/vms/{vm_id}/systemd/stop", stop_services, true, kJson},
      {"GET", "/v1/vms/{vm_id}/terminals", list_terminals, true, kJson},
      {"GET", "/v1/vms/{vm_id}/terminals/{terminal_id}/logs", terminal_logs, true, kJson},
      {"GET", "/v1/vms/{vm_id}/terminals/{terminal_id}/xterm-256color", terminal_output, true, kJson},
      {"POST", "/v1/vms/{vm_id}/watch-files", watch_files, true, kJson},
      // Not in the Freestyle document: liveness for supervisors, and the spec we serve.
      {"GET", "/healthz", health, false, kJson},
      {"GET", "/openapi.json", openapi, false, kJson},
  };
  return kRoutes;
}

}  // namespace forkvm::api
