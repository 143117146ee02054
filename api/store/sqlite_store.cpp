// The SQLite Store: one database file per host (<data>/forkvm.db). One
// connection behind a mutex: every call is a few microseconds of indexed
// work, so serialising them costs less than a connection per thread would
// cost in complexity, and WAL lets other processes read meanwhile.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <mutex>

#include "api/models/ids.hpp"
#include "api/store/migrations.hpp"
#include "api/store/sqlite_db.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace {

constexpr const char* kVmColumns =
    "id, account_id, name, state, instance_id, config_json, snapshot_id, build_id, persistence_json, "
    "created_at, "
    "updated_at, deleted, last_activity, cpu_time_seconds, error_reason, vmm_pid, control_socket, "
    "agent_socket";
constexpr const char* kSnapshotColumns =
    "id, account_id, source_vm_id, source_instance_id, name, state, persistence_json, build_id, "
    "template_hash, "
    "failure_reason, vcpu_count, mem_size_mib, rootfs_size_mb, storage_json, created_at, deleted";

VmRecord read_vm(const sqlite::Stmt& s) {
  VmRecord v;
  v.id = s.text(0);
  v.account_id = s.text(1);
  v.name = s.opt_text(2);
  v.state = s.text(3);
  v.instance_id = s.opt_text(4);
  v.config_json = s.text(5);
  v.snapshot_id = s.opt_text(6);
  v.build_id = s.opt_text(7);
  v.persistence_json = s.opt_text(8);
  v.created_at_ms = s.int64(9);
  v.updated_at_ms = s.int64(10);
  v.deleted = s.int64(11) != 0;
  v.last_activity_ms = s.opt_int64(12);
  v.cpu_time_seconds = s.opt_double(13);
  v.error_reason = s.opt_text(14);
  v.vmm_pid = s.opt_int64(15);
  v.control_socket = s.opt_text(16);
  v.agent_socket = s.opt_text(17);
  return v;
}

// Binds the 18 VM columns in kVmColumns order, starting at parameter 1.
void bind_vm(sqlite::Stmt& s, const VmRecord& v) {
  s.bind(1, v.id).bind(2, v.account_id).bind(3, v.name).bind(4, v.state).bind(5, v.instance_id);
  s.bind(6, v.config_json).bind(7, v.snapshot_id).bind(8, v.build_id).bind(9, v.persistence_json);
  s.bind(10, v.created_at_ms).bind(11, v.updated_at_ms).bind(12, int64_t{v.deleted ? 1 : 0});
  s.bind(13, v.last_activity_ms).bind(14, v.cpu_time_seconds).bind(15, v.error_reason).bind(16, v.vmm_pid);
  s.bind(17, v.control_socket).bind(18, v.agent_socket);
}

SnapshotRecord read_snapshot(const sqlite::Stmt& s) {
  SnapshotRecord r;
  r.id = s.text(0);
  r.account_id = s.text(1);
  r.source_vm_id = s.opt_text(2);
  r.source_instance_id = s.opt_text(3);
  r.name = s.opt_text(4);
  r.state = s.text(5);
  r.persistence_json = s.text(6);
  r.build_id = s.opt_text(7);
  r.template_hash = s.opt_text(8);
  r.failure_reason = s.opt_text(9);
  r.vcpu_count = s.opt_int64(10);
  r.mem_size_mib = s.opt_int64(11);
  r.rootfs_size_mb = s.opt_int64(12);
  r.storage_json = s.text(13);
  r.created_at_ms = s.int64(14);
  r.deleted = s.int64(15) != 0;
  return r;
}

// Binds the 16 snapshot columns in kSnapshotColumns order, starting at parameter 1.
void bind_snapshot(sqlite::Stmt& s, const SnapshotRecord& r) {
  s.bind(1, r.id).bind(2, r.account_id).bind(3, r.source_vm_id).bind(4, r.source_instance_id).bind(5, r.name);
  s.bind(6, r.state).bind(7, r.persistence_json).bind(8, r.build_id).bind(9, r.template_hash);
  s.bind(10, r.failure_reason).bind(11, r.vcpu_count).bind(12, r.mem_size_mib).bind(13, r.rootfs_size_mb);
  s.bind(14, r.storage_json).bind(15, r.created_at_ms).bind(16, int64_t{r.deleted ? 1 : 0});
}

std::string to_json_array(const std::vector<std::string>& items) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartArray();
  for (const auto& i : items) w.String(i.data(), static_cast<rapidjson::SizeType>(i.size()));
  w.EndArray();
  return {sb.GetString(), sb.GetSize()};
}

std::vector<std::string> from_json_array(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  std::vector<std::string> out;
  if (d.HasParseError() || !d.IsArray()) return out;
  for (const auto& v : d.GetArray())
    if (v.IsString()) out.emplace_back(v.GetString(), v.GetStringLength());
  return out;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(sqlite::Db db) : db_(std::move(db)) {}

  Result<Account> create_account(std::string_view name) override {
    std::lock_guard lock(mu_);
    Account a{"acc-" + random_string(kIdRandomChars, "abcdefghijklmnopqrstuvwxyz0123456789"),
              std::string(name), now_ms()};
    auto s = FORKVM_TRY(db_.prepare("INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)"));
    s.bind(1, a.id).bind(2, a.name).bind(3, a.created_at_ms);
    FORKVM_CHECK(s.run());
    return a;
  }

  Result<std::optional<Account>> find_account_by_name(std::string_view name) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare("SELECT id, name, created_at FROM accounts WHERE name = ?"));
    s.bind(1, name);
    if (!FORKVM_TRY(s.step())) return std::optional<Account>{};
    return std::optional<Account>{Account{s.text(0), s.text(1), s.int64(2)}};
  }

  Status add_api_key(const ApiKeyRecord& k) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        "INSERT INTO api_keys (id, account_id, key_hash, label, created_at) VALUES (?, ?, ?, ?, ?)"));
    s.bind(1, k.id).bind(2, k.account_id).bind(3, k.key_hash).bind(4, k.label).bind(5, k.created_at_ms);
    return s.run();
  }

  Result<std::optional<Account>> account_for_key_hash(std::string_view key_hash) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        "SELECT a.id, a.name, a.created_at FROM api_keys k JOIN accounts a ON a.id = k.account_id "
        "WHERE k.key_hash = ? AND k.revoked_at IS NULL"));
    s.bind(1, key_hash);
    if (!FORKVM_TRY(s.step())) return std::optional<Account>{};
    return std::optional<Account>{Account{s.text(0), s.text(1), s.int64(2)}};
  }

  Result<int64_t> count_api_keys() override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL"));
    FORKVM_TRY(s.step());
    return s.int64(0);
  }

  Status insert_vm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        fmt::format("INSERT INTO vms ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kVmColumns)));
    bind_vm(s, vm);
    return s.run();
  }

  Result<std::optional<VmRecord>> get_vm(std::string_view account_id, std::string_view vm_id) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(
        db_.prepare(fmt::format("SELECT {} FROM vms WHERE account_id = ? AND id = ?", kVmColumns)));
    s.bind(1, account_id).bind(2, vm_id);
    if (!FORKVM_TRY(s.step())) return std::optional<VmRecord>{};
    return std::optional<VmRecord>{read_vm(s)};
  }

  Result<VmList> list_vms(std::string_view account_id, const VmListFilter& f) override {
    std::lock_guard lock(mu_);
    // One WHERE clause for the page and the counts, so they always agree.
    const std::string where =
        "account_id = ?1 AND (?2 OR deleted = 0) AND (?3 IS NULL OR state = ?3) AND "
        "(?4 IS NULL OR instr(id, ?4) > 0 OR instr(coalesce(name, ''), ?4) > 0)";
    auto bind_filter = [&](sqlite::Stmt& s) {
      s.bind(1, account_id).bind(2, int64_t{f.include_deleted ? 1 : 0}).bind(3, f.state).bind(4, f.search);
    };
    VmList out;
    {
      auto s = FORKVM_TRY(db_.prepare(fmt::format(
          "SELECT {} FROM vms WHERE {} ORDER BY created_at DESC, id LIMIT ?5 OFFSET ?6", kVmColumns, where)));
      bind_filter(s);
      s.bind(5, f.limit).bind(6, f.offset);
      while (FORKVM_TRY(s.step())) out.vms.push_back(read_vm(s));
    }
    auto s = FORKVM_TRY(
        db_.prepare(fmt::format("SELECT state, COUNT(*) FROM vms WHERE {} GROUP BY state", where)));
    bind_filter(s);
    while (FORKVM_TRY(s.step())) {
      std::string state = s.text(0);
      int64_t n = s.int64(1);
      VmCounts& c = out.counts;
      c.total += n;
      if (state == "building")
        c.building += n;
      else if (state == "starting")
        c.starting += n;
      else if (state == "running")
        c.running += n;
      else if (state == "suspending")
        c.suspending += n;
      else if (state == "suspended")
        c.suspended += n;
      else if (state == "stopped")
        c.stopped += n;
      else if (state == "lost")
        c.lost += n;
    }
    return out;
  }

  Result<std::vector<VmRecord>> list_vms_in_states(const std::vector<std::string>& states) override {
    std::lock_guard lock(mu_);
    std::vector<VmRecord> out;
    for (const auto& state : states) {
      auto s = FORKVM_TRY(db_.prepare(
          fmt::format("SELECT {} FROM vms WHERE deleted = 0 AND state = ?1 ORDER BY created_at, id", kVmColumns)));
      s.bind(1, state);
      while (FORKVM_TRY(s.step())) out.push_back(read_vm(s));
    }
    return out;
  }

  Result<bool> update_vm(const VmRecord& vm) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        "UPDATE vms SET name = ?3, state = ?4, instance_id = ?5, config_json = ?6, snapshot_id = ?7, "
        "build_id = ?8, "
        "persistence_json = ?9, created_at = ?10, updated_at = ?11, deleted = ?12, last_activity = ?13, "
        "cpu_time_seconds = ?14, error_reason = ?15, vmm_pid = ?16, control_socket = ?17, agent_socket = ?18 "
        "WHERE id = ?1 AND account_id = ?2"));
    bind_vm(s, vm);
    FORKVM_CHECK(s.run());
    return db_.changes() > 0;
  }

  Status insert_snapshot(const SnapshotRecord& r) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(fmt::format(
        "INSERT INTO snapshots ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kSnapshotColumns)));
    bind_snapshot(s, r);
    return s.run();
  }

  Result<bool> update_snapshot(const SnapshotRecord& r) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        "UPDATE snapshots SET source_vm_id = ?3, source_instance_id = ?4, name = ?5, state = ?6, "
        "persistence_json = ?7, build_id = ?8, template_hash = ?9, failure_reason = ?10, vcpu_count = ?11, "
        "mem_size_mib = ?12, rootfs_size_mb = ?13, storage_json = ?14, created_at = ?15, deleted = ?16 "
        "WHERE id = ?1 AND account_id = ?2"));
    bind_snapshot(s, r);
    FORKVM_CHECK(s.run());
    return db_.changes() > 0;
  }

  Result<std::optional<SnapshotRecord>> find_snapshot_by_template(std::string_view account_id,
                                                                  std::string_view template_hash) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        fmt::format("SELECT {} FROM snapshots WHERE account_id = ? AND template_hash = ? AND state = 'ready' "
                    "AND deleted = 0 ORDER BY created_at DESC, rowid DESC LIMIT 1",
                    kSnapshotColumns)));
    s.bind(1, account_id).bind(2, template_hash);
    if (!FORKVM_TRY(s.step())) return std::optional<SnapshotRecord>{};
    return std::optional<SnapshotRecord>{read_snapshot(s)};
  }

  Result<std::optional<SnapshotRecord>> get_snapshot(std::string_view account_id,
                                                     std::string_view id) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        fmt::format("SELECT {} FROM snapshots WHERE account_id = ? AND id = ?", kSnapshotColumns)));
    s.bind(1, account_id).bind(2, id);
    if (!FORKVM_TRY(s.step())) return std::optional<SnapshotRecord>{};
    return std::optional<SnapshotRecord>{read_snapshot(s)};
  }

  Result<SnapshotList> list_snapshots(std::string_view account_id, const SnapshotListFilter& f) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(fmt::format(
        "SELECT {} FROM snapshots WHERE account_id = ? ORDER BY created_at DESC, id", kSnapshotColumns)));
    s.bind(1, account_id);
    SnapshotList out;
    while (FORKVM_TRY(s.step())) {
      SnapshotRecord r = read_snapshot(s);
      SnapshotCounts& c = out.counts;
      // Counts describe everything the account has; the list honours the filter.
      c.total++;
      if (r.deleted) c.deleted++;
      if (r.state == "building")
        c.building++;
      else if (r.state == "ready")
        c.ready++;
      else if (r.state == "failed")
        c.failed++;
      else if (r.state == "cancelled")
        c.cancelled++;
      else if (r.state == "lost")
        c.lost++;
      bool shown = (!r.deleted || f.include_deleted) && (r.state != "building" || f.include_building) &&
                   (r.state == "ready" || r.state == "building" || f.include_failed);
      if (shown) out.snapshots.push_back(std::move(r));
    }
    return out;
  }

  Result<bool> update_snapshot_name(std::string_view account_id, std::string_view id,
                                    const std::optional<std::string>& name) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare("UPDATE snapshots SET name = ? WHERE account_id = ? AND id = ?"));
    s.bind(1, name).bind(2, account_id).bind(3, id);
    FORKVM_CHECK(s.run());
    return db_.changes() > 0;
  }

  Result<bool> mark_snapshot_deleted(std::string_view account_id, std::string_view id) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(
        db_.prepare("UPDATE snapshots SET deleted = 1 WHERE account_id = ? AND id = ? AND deleted = 0"));
    s.bind(1, account_id).bind(2, id);
    FORKVM_CHECK(s.run());
    return db_.changes() > 0;
  }

  Status insert_build(const BuildRecord& b) override {
    std::lock_guard lock(mu_);
    auto s =
        FORKVM_TRY(db_.prepare("INSERT INTO builds (id, account_id, request_id, state, template_hash, "
                               "failure_reason, planned_phases_json, "
                               "started_at, finished_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)"));
    s.bind(1, b.id).bind(2, b.account_id).bind(3, b.request_id).bind(4, b.state).bind(5, b.template_hash);
    s.bind(6, b.failure_reason).bind(7, to_json_array(b.planned_phases)).bind(8, b.started_at_ms);
    s.bind(9, b.finished_at_ms).bind(10, b.updated_at_ms);
    return s.run();
  }

  Result<std::optional<BuildRecord>> get_build(std::string_view account_id, std::string_view id) override {
    std::lock_guard lock(mu_);
    auto s =
        FORKVM_TRY(db_.prepare("SELECT id, account_id, request_id, state, template_hash, failure_reason, "
                               "planned_phases_json, started_at, "
                               "finished_at, updated_at FROM builds WHERE account_id = ? AND id = ?"));
    s.bind(1, account_id).bind(2, id);
    if (!FORKVM_TRY(s.step())) return std::optional<BuildRecord>{};
    BuildRecord b{s.text(0),
                  s.text(1),
                  s.opt_text(2),
                  s.text(3),
                  s.opt_text(4),
                  s.opt_text(5),
                  from_json_array(s.text(6)),
                  s.int64(7),
                  s.opt_int64(8),
                  s.int64(9)};
    return std::optional<BuildRecord>{std::move(b)};
  }

  Result<bool> update_build(const BuildRecord& b) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(
        db_.prepare("UPDATE builds SET request_id = ?3, state = ?4, template_hash = ?5, failure_reason = ?6, "
                    "planned_phases_json = ?7, started_at = ?8, finished_at = ?9, updated_at = ?10 "
                    "WHERE id = ?1 AND account_id = ?2"));
    s.bind(1, b.id).bind(2, b.account_id).bind(3, b.request_id).bind(4, b.state).bind(5, b.template_hash);
    s.bind(6, b.failure_reason).bind(7, to_json_array(b.planned_phases)).bind(8, b.started_at_ms);
    s.bind(9, b.finished_at_ms).bind(10, b.updated_at_ms);
    FORKVM_CHECK(s.run());
    return db_.changes() > 0;
  }

  Result<int64_t> fail_unfinished_builds(std::string_view reason) override {
    std::lock_guard lock(mu_);
    int64_t now = now_ms();
    auto b = FORKVM_TRY(db_.prepare(
        "UPDATE builds SET state = 'failed', failure_reason = ?1, finished_at = ?2, updated_at = ?2 "
        "WHERE state IN ('pending', 'running')"));
    b.bind(1, reason).bind(2, now);
    FORKVM_CHECK(b.run());
    int64_t builds = db_.changes();
    auto s = FORKVM_TRY(
        db_.prepare("UPDATE snapshots SET state = 'failed', failure_reason = ?1 WHERE state = 'building'"));
    s.bind(1, reason);
    FORKVM_CHECK(s.run());
    return builds;
  }

  Status insert_build_phase(const BuildPhaseRecord& p) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(db_.prepare(
        "INSERT INTO build_phases (id, build_id, name, snapshot_id, started_at) VALUES (?,?,?,?,?)"));
    s.bind(1, p.id).bind(2, p.build_id).bind(3, p.name).bind(4, p.snapshot_id).bind(5, p.started_at_ms);
    return s.run();
  }

  Result<std::vector<BuildPhaseRecord>> list_build_phases(std::string_view build_id) override {
    std::lock_guard lock(mu_);
    auto s = FORKVM_TRY(
        db_.prepare("SELECT id, build_id, name, snapshot_id, started_at FROM build_phases WHERE build_id = ? "
                    "ORDER BY started_at, rowid"));
    s.bind(1, build_id);
    std::vector<BuildPhaseRecord> out;
    while (FORKVM_TRY(s.step())) out.push_back({s.text(0), s.text(1), s.text(2), s.opt_text(3), s.int64(4)});
    return out;
  }

 private:
  std::mutex mu_;  // guards db_ and its statement cache
  sqlite::Db db_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path) {
  auto db = FORKVM_TRY(sqlite::Db::open(path));
  FORKVM_TRY(sqlite::migrate(db).context(fmt::format("store {}", path)));
  return std::unique_ptr<Store>(std::make_unique<SqliteStore>(std::move(db)));
}

}  // namespace forkvm::api
