#include "api/store/sqlite_db.hpp"

#include <utility>

namespace forkvm::api::sqlite {

Stmt::~Stmt() {
  if (stmt_ != nullptr) {
    // Cached statements are reused: reset and unbind so the next user starts
    // clean and no read transaction is left open by an unfinished cursor.
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
}

Stmt& Stmt::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
Stmt& Stmt::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, double v) {
  sqlite3_bind_double(stmt_, i, v);
  return *this;
}
Stmt& Stmt::bind(int i, const std::optional<std::string>& v) {
  return v ? bind(i, std::string_view(*v)) : bind_null(i);
}
Stmt& Stmt::bind(int i, const std::optional<int64_t>& v) { return v ? bind(i, *v) : bind_null(i); }
Stmt& Stmt::bind(int i, const std::optional<double>& v) { return v ? bind(i, *v) : bind_null(i); }
Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return make_error("sqlite: {} ({})", db_->last_error(), sqlite3_sql(stmt_));
}

Status Stmt::run() {
  while (true) {
    bool row = FORKVM_TRY(step());
    if (!row) return {};
  }
}

std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col))};
}
std::optional<std::string> Stmt::opt_text(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return text(col);
}
int64_t Stmt::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
std::optional<int64_t> Stmt::opt_int64(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return int64(col);
}
std::optional<double> Stmt::opt_double(int col) const {
  if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
  return sqlite3_column_double(stmt_, col);
}

Result<Db> Db::open(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK)
    return make_error("sqlite: open {}: {}", path, raw ? sqlite3_errmsg(raw) : "out of memory");
  // Another process (a second server, `forkvm keys create`) may hold the
  // write lock briefly; wait for it instead of failing.
  sqlite3_busy_timeout(raw, 5000);
  return db;
}

Db::Db(Db&& other) noexcept : db_(std::exchange(other.db_, nullptr)), cache_(std::move(other.cache_)) {}

Db::~Db() {
  for (auto& [sql, stmt] : cache_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close(db_);
}

Status Db::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : last_error();
    sqlite3_free(err);
    return make_error("sqlite: {}", msg);
  }
  return {};
}

Result<Stmt> Db::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt,
                           nullptr) != SQLITE_OK)
      return make_error("sqlite: prepare: {} ({})", last_error(), sql);
    it = cache_.emplace(sql, stmt).first;
  }
  return Stmt(*this, it->second);
}

}  // namespace forkvm::api::sqlite
