// Thin RAII over the SQLite C API: a connection that owns its prepared
// statements (each SQL text is prepared once and reused), and a statement
// cursor that resets itself when it goes out of scope. Not thread-safe on its
// own; SqliteStore serialises access with a mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/result.hpp"

namespace forkvm::api::sqlite {

class Db;

// A prepared statement in use. Binds are 1-based like SQLite's.
class Stmt {
 public:
  Stmt(Db& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt();

  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, const std::optional<std::string>& v);
  Stmt& bind(int i, const std::optional<int64_t>& v);
  Stmt& bind(int i, const std::optional<double>& v);
  Stmt& bind_null(int i);

  // true while a row is available; an error for anything but ROW/DONE.
  Result<bool> step();
  Status run();  // step to completion, for statements without rows

  [[nodiscard]] std::string text(int col) const;
  [[nodiscard]] std::optional<std::string> opt_text(int col) const;
  [[nodiscard]] int64_t int64(int col) const;
  [[nodiscard]] std::optional<int64_t> opt_int64(int col) const;
  [[nodiscard]] std::optional<double> opt_double(int col) const;

 private:
  Db* db_;
  sqlite3_stmt* stmt_;
};

class Db {
 public:
  static Result<Db> open(const std::string& path);
  Db(Db&& other) noexcept;
  Db& operator=(Db&&) = delete;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more statements without results (schema, pragmas).
  Status exec(const std::string& sql);
  // A cached prepared statement for `sql`.
  Result<Stmt> prepare(const std::string& sql);
  [[nodiscard]] int changes() const { return sqlite3_changes(db_); }
  [[nodiscard]] std::string last_error() const { return sqlite3_errmsg(db_); }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*, std::less<>> cache_;
};

}  // namespace forkvm::api::sqlite
