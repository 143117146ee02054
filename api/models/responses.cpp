#include "api/models/responses.hpp"

#include "api/models/json_out.hpp"

namespace forkvm::api::wire {

namespace {

std::optional<std::string> ts(const std::optional<int64_t>& ms) {
  if (!ms) return std::nullopt;
  return format_timestamp(*ms);
}

void vm_info(JsonOut& o, const VmRecord& vm) {
  o.begin_object();
  o.field("id", vm.id).field("name", vm.name).field("state", vm.state);
  o.field("createdAt", format_timestamp(vm.created_at_ms));
  o.field("lastNetworkActivity", ts(vm.last_activity_ms));
  o.field("cpuTimeSeconds", vm.cpu_time_seconds);
  o.key("persistence");
  if (vm.persistence_json)
    o.raw(*vm.persistence_json);
  else
    o.null();
  o.field("snapshotId", vm.snapshot_id).field("deleted", vm.deleted).field("createdDeclaratively", false);
  o.field("buildId", vm.build_id).key("metrics").null();
  o.end_object();
}

void snapshot(JsonOut& o, const SnapshotRecord& s) {
  o.begin_object();
  o.field("snapshotId", s.id).field("state", s.state).field("sourceVmId", s.source_vm_id);
  o.field("accountId", s.account_id).field("createdAt", format_timestamp(s.created_at_ms));
  o.field("name", s.name);
  o.field("failed", s.state == "failed")
      .field("cancelled", s.state == "cancelled")
      .field("lost", s.state == "lost");
  o.field("failureReason", s.failure_reason).field("deleted", s.deleted);
  o.key("snapshotPersistence").raw(s.persistence_json);
  o.field("buildId", s.build_id).field("templateHash", s.template_hash);
  o.field("vcpuCount", s.vcpu_count)
      .field("memSizeMib", s.mem_size_mib)
      .field("rootfsSizeMb", s.rootfs_size_mb);
  o.end_object();
}

}  // namespace

std::string persistence(const Persistence& p) {
  JsonOut o;
  o.begin_object();
  switch (p.kind) {
    case Persistence::Kind::sticky:
      o.field("type", "sticky").field("priority", p.priority);
      break;
    case Persistence::Kind::ephemeral:
      o.field("type", "ephemeral").field("deleteEvent", p.delete_event);
      break;
    case Persistence::Kind::persistent:
      o.field("type", "persistent");
      break;
  }
  o.end_object();
  return o.take();
}

std::string vm_list(const VmList& list) {
  JsonOut o;
  o.begin_object().key("vms").begin_array();
  for (const auto& vm : list.vms) vm_info(o, vm);
  o.end_array();
  const VmCounts& c = list.counts;
  o.field("totalCount", c.total).field("buildingCount", c.building).field("runningCount", c.running);
  o.field("startingCount", c.starting)
      .field("suspendingCount", c.suspending)
      .field("suspendedCount", c.suspended);
  o.field("stoppedCount", c.stopped).field("lostCount", c.lost);
  o.end_object();
  return o.take();
}

std::string get_vm(const VmRecord& vm) {
  JsonOut o;
  o.begin_object();
  o.field("id", vm.id).field("name", vm.name).field("vmInstanceId", vm.instance_id);
  o.field("lastNetworkActivity", ts(vm.last_activity_ms)).field("state", vm.state);
  o.field("cpuTimeSeconds", vm.cpu_time_seconds).field("buildId", vm.build_id);
  // Why a VM is lost (its VMM died, or was gone when the server restarted).
  if (vm.state == "lost" && vm.error_reason) o.field("message", *vm.error_reason);
  o.end_object();
  return o.take();
}

std::string created_vm(const CreatedVm& vm, const std::string& id) {
  JsonOut o;
  // `domains` must be an array: the SDK calls .filter on it.
  o.begin_object().field("id", id).key("domains").begin_array();
  for (const auto& d : vm.domains) o.str(d);
  o.end_array().field("consoleUrl", vm.console_url).field("snapshotId", vm.snapshot_id).end_object();
  return o.take();
}

std::string snapshot_info(const SnapshotRecord& s) {
  JsonOut o;
  snapshot(o, s);
  return o.take();
}

std::string snapshot_list(const SnapshotList& list) {
  JsonOut o;
  o.begin_object().key("snapshots").begin_array();
  for (const auto& s : list.snapshots) snapshot(o, s);
  o.end_array();
  const SnapshotCounts& c = list.counts;
  o.field("totalCount", c.total).field("buildingCount", c.building).field("readyCount", c.ready);
  o.field("failedCount", c.failed).field("cancelledCount", c.cancelled).field("lostCount", c.lost);
  o.field("deletedCount", c.deleted).end_object();
  return o.take();
}

std::string build(const BuildRecord& b) {
  JsonOut o;
  o.begin_object().field("buildId", b.id).field("accountId", b.account_id).field("requestId", b.request_id);
  o.field("state", b.state).field("templateHash", b.template_hash).field("failureReason", b.failure_reason);
  o.key("plannedPhases").begin_array();
  for (const auto& p : b.planned_phases) o.str(p);
  o.end_array();
  o.field("startedAt", format_timestamp(b.started_at_ms)).field("finishedAt", ts(b.finished_at_ms));
  o.field("updatedAt", format_timestamp(b.updated_at_ms)).end_object();
  return o.take();
}

std::string build_phases(const std::vector<BuildPhaseRecord>& phases) {
  JsonOut o;
  o.begin_object().key("phases").begin_array();
  for (const auto& p : phases) {
    o.begin_object().field("phaseId", p.id).field("buildId", p.build_id).field("name", p.name);
    o.field("snapshotId", p.snapshot_id).field("startedAt", format_timestamp(p.started_at_ms)).end_object();
  }
  o.end_array().end_object();
  return o.take();
}

}  // namespace forkvm::api::wire
