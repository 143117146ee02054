#include "api/store/migrations.hpp"

#include <array>
#include <string_view>

namespace forkvm::api::sqlite {

namespace {

// Index i holds the step from version i to version i + 1.
constexpr std::array<std::string_view, 2> kMigrations = {
    R"sql(
CREATE TABLE accounts (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  key_hash TEXT NOT NULL UNIQUE,
  label TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  revoked_at INTEGER
);
CREATE TABLE vms (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  name TEXT,
  state TEXT NOT NULL,
  instance_id TEXT,
  config_json TEXT NOT NULL,
  snapshot_id TEXT,
  build_id TEXT,
  persistence_json TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0,
  last_activity INTEGER,
  cpu_time_seconds REAL,
  error_reason TEXT,
  vmm_pid INTEGER,
  control_socket TEXT,
  agent_socket TEXT
);
CREATE INDEX vms_by_account ON vms(account_id, created_at);
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  source_vm_id TEXT,
  source_instance_id TEXT,
  name TEXT,
  state TEXT NOT NULL,
  persistence_json TEXT NOT NULL,
  build_id TEXT,
  template_hash TEXT,
  failure_reason TEXT,
  vcpu_count INTEGER,
  mem_size_mib INTEGER,
  rootfs_size_mb INTEGER,
  storage_json TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX snapshots_by_account ON snapshots(account_id, created_at);
CREATE TABLE builds (
  id TEXT PRIMARY KEY,
  account_id TEXT NOT NULL REFERENCES accounts(id),
  request_id TEXT,
  state TEXT NOT NULL,
  template_hash TEXT,
  failure_reason TEXT,
  planned_phases_json TEXT NOT NULL DEFAULT '[]',
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  updated_at INTEGER NOT NULL
);
CREATE TABLE build_phases (
  id TEXT PRIMARY KEY,
  build_id TEXT NOT NULL REFERENCES builds(id),
  name TEXT NOT NULL,
  snapshot_id TEXT,
  started_at INTEGER NOT NULL
);
CREATE INDEX build_phases_by_build ON build_phases(build_id, started_at);
)sql",
    // 2: the build cache looks snapshots up by template hash.
    R"sql(
CREATE INDEX snapshots_by_template ON snapshots(account_id, template_hash);
)sql",
};

}  // namespace

Result<int64_t> migrate(Db& db) {
  // WAL: readers never block the writer, and a crash mid-write leaves the
  // last committed state. NORMAL sync is durable at checkpoints under WAL.
  FORKVM_CHECK(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  FORKVM_CHECK(db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"));
  // BEGIN IMMEDIATE takes the write lock first, so two processes starting at
  // once cannot both apply the same migration.
  FORKVM_CHECK(db.exec("BEGIN IMMEDIATE"));
  auto rollback_on_error = [&](Status s) -> Status {
    if (!s.ok()) (void)db.exec("ROLLBACK");
    return s;
  };
  int64_t version = 0;
  {
    auto q = db.prepare("SELECT version FROM schema_version LIMIT 1");
    if (!q.ok()) return rollback_on_error(q.error()).error();
    auto row = q->step();
    if (!row.ok()) return rollback_on_error(row.error()).error();
    if (*row)
      version = q->int64(0);
    else if (auto s = rollback_on_error(db.exec("INSERT INTO schema_version VALUES (0)")); !s.ok())
      return s.error();
  }
  if (version > static_cast<int64_t>(kMigrations.size())) {
    (void)db.exec("ROLLBACK");
    return make_error("store schema version {} is newer than this forkvm ({}); refusing to touch it", version,
                      kMigrations.size());
  }
  for (auto v = static_cast<size_t>(version); v < kMigrations.size(); v++) {
    if (auto s = rollback_on_error(db.exec(std::string(kMigrations[v]))); !s.ok())
      return s.error().context(fmt::format("migration {} -> {}", v, v + 1));
  }
  if (auto s = rollback_on_error(
          db.exec("UPDATE schema_version SET version = " + std::to_string(kMigrations.size())));
      !s.ok())
    return s.error();
  FORKVM_CHECK(db.exec("COMMIT"));
  return static_cast<int64_t>(kMigrations.size());
}

}  // namespace forkvm::api::sqlite
