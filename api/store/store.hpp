// What the API server remembers: accounts and their API keys, VMs, snapshots,
// builds and build phases. Store is the interface; SqliteStore (one file per
// host) implements it today and a PostgreSQL store can replace it when hosts
// share records. Every VM/snapshot/build read takes the caller's account id,
// so a lookup can never cross accounts by accident.
//
// Implementations are safe to call from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::api {

struct Account {
  std::string id;
  std::string name;
  int64_t created_at_ms = 0;
};

struct ApiKeyRecord {
  std::string id;  // "key-" + random, for listing and revocation
  std::string account_id;
  std::string key_hash;  // lowercase hex SHA-256 of the whole key; the key itself is never stored
  std::string label;
  int64_t created_at_ms = 0;
};

// A VM as the API knows it. `state` is a VMState wire value (building,
// starting, running, suspending, suspended, stopped, lost). The runtime
// fields (pid, sockets) belong to the VM engine, which updates them.
struct VmRecord {
  std::string id;
  std::string account_id;
  std::optional<std::string> name;
  std::string state;
  std::optional<std::string> instance_id;
  std::string config_json;  // the validated create request, secrets removed
  std::optional<std::string> snapshot_id;
  std::optional<std::string> build_id;
  std::optional<std::string> persistence_json;
  int64_t created_at_ms = 0;
  int64_t updated_at_ms = 0;
  bool deleted = false;
  std::optional<int64_t> last_activity_ms;
  std::optional<double> cpu_time_seconds;
  std::optional<std::string> error_reason;  // why it is `lost` or failed
  std::optional<int64_t> vmm_pid;
  std::optional<std::string> control_socket;
  std::optional<std::string> agent_socket;
};

struct VmListFilter {
  bool include_deleted = false;
  std::optional<std::string> state;
  std::optional<std::string> search;  // substring of id or name
  int64_t limit = 1000;
  int64_t offset = 0;
};

struct VmCounts {
  int64_t total = 0, building = 0, starting = 0, running = 0, suspending = 0, suspended = 0, stopped = 0,
          lost = 0;
};

struct VmList {
  std::vector<VmRecord> vms;
  VmCounts counts;  // over all of the account's matching VMs, not only this page
};

// `state` is a SnapshotStateTag (building, ready, failed, cancelled, lost).
struct SnapshotRecord {
  std::string id;
  std::string account_id;
  std::optional<std::string> source_vm_id;
  std::optional<std::string> source_instance_id;
  std::optional<std::string> name;
  std::string state;
  std::string persistence_json;  // SnapshotPersistence as sent on the wire
  std::optional<std::string> build_id;
  std::optional<std::string> template_hash;
  std::optional<std::string> failure_reason;
  std::optional<int64_t> vcpu_count;
  std::optional<int64_t> mem_size_mib;
  std::optional<int64_t> rootfs_size_mb;
  std::string storage_json;  // engine-owned: state/memory file paths and disk layer ids
  int64_t created_at_ms = 0;
  bool deleted = false;
};

struct SnapshotListFilter {
  bool include_deleted = false;
  bool include_failed = false;
  bool include_building = false;
};

struct SnapshotCounts {
  int64_t total = 0, building = 0, ready = 0, failed = 0, cancelled = 0, lost = 0, deleted = 0;
};

struct SnapshotList {
  std::vector<SnapshotRecord> snapshots;
  SnapshotCounts counts;
};

// `state` is a BuildState (pending, running, succeeded, failed).
struct BuildRecord {
  std::string id;
  std::string account_id;
  std::optional<std::string> request_id;
  std::string state;
  std::optional<std::string> template_hash;
  std::optional<std::string> failure_reason;
  std::vector<std::string> planned_phases;
  int64_t started_at_ms = 0;
  std::optional<int64_t> finished_at_ms;
  int64_t updated_at_ms = 0;
};

struct BuildPhaseRecord {
  std::string id;
  std::string build_id;
  std::string name;
  std::optional<std::string> snapshot_id;
  int64_t started_at_ms = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  virtual Result<Account> create_account(std::string_view name) = 0;
  virtual Result<std::optional<Account>> find_account_by_name(std::string_view name) = 0;
  virtual Status add_api_key(const ApiKeyRecord& key) = 0;
  virtual Result<std::optional<Account>> account_for_key_hash(std::string_view key_hash) = 0;
  virtual Result<int64_t> count_api_keys() = 0;

  virtual Status insert_vm(const VmRecord& vm) = 0;
  // Deleted rows too: the caller decides between VM_DELETED and VM_NOT_FOUND.
  virtual Result<std::optional<VmRecord>> get_vm(std::string_view account_id, std::string_view vm_id) = 0;
  virtual Result<VmList> list_vms(std::string_view account_id, const VmListFilter& filter) = 0;
  // Replaces the row with the same (account_id, id); false if there is none.
  virtual Result<bool> update_vm(const VmRecord& vm) = 0;

  // Every account's live (not deleted) VMs in one of `states`: what the
  // server looks after itself (finding VMMs again at start, idle suspend).
  virtual Result<std::vector<VmRecord>> list_vms_in_states(const std::vector<std::string>& states) = 0;

  virtual Status insert_snapshot(const SnapshotRecord& snapshot) = 0;
  virtual Result<std::optional<SnapshotRecord>> get_snapshot(std::string_view account_id,
                                                             std::string_view id) = 0;
  virtual Result<SnapshotList> list_snapshots(std::string_view account_id,
                                              const SnapshotListFilter& filter) = 0;
  virtual Result<bool> update_snapshot_name(std::string_view account_id, std::string_view id,
                                            const std::optional<std::string>& name) = 0;
  virtual Result<bool> mark_snapshot_deleted(std::string_view account_id, std::string_view id) = 0;
  // Replaces the row with the same (account_id, id); false if there is none.
  // A build's snapshot goes building -> ready or failed this way.
  virtual Result<bool> update_snapshot(const SnapshotRecord& snapshot) = 0;
  // The account's newest ready, not deleted snapshot built from a layer with
  // this template hash: the build cache.
  virtual Result<std::optional<SnapshotRecord>> find_snapshot_by_template(std::string_view account_id,
                                                                          std::string_view template_hash) = 0;

  virtual Status insert_build(const BuildRecord& build) = 0;
  virtual Result<std::optional<BuildRecord>> get_build(std::string_view account_id, std::string_view id) = 0;
  virtual Result<bool> update_build(const BuildRecord& build) = 0;
  // Builds still pending or running, and snapshots still building, when the
  // server starts were cut short by its stop: they become failed with
  // `reason`. Returns how many builds that was.
  virtual Result<int64_t> fail_unfinished_builds(std::string_view reason) = 0;
  virtual Status insert_build_phase(const BuildPhaseRecord& phase) = 0;
  virtual Result<std::vector<BuildPhaseRecord>> list_build_phases(std::string_view build_id) = 0;
};

// Opens (creating if needed) the SQLite store at `path` and migrates its
// schema to the current version.
Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path);

[[nodiscard]] int64_t now_ms();

}  // namespace forkvm::api
