// Schema versions of the SQLite store, applied in order inside one
// transaction each. Append a migration; never edit one that has shipped.
#pragma once

#include "api/store/sqlite_db.hpp"

namespace forkvm::api::sqlite {

// Brings the database to the newest schema version; returns that version.
Result<int64_t> migrate(Db& db);

}  // namespace forkvm::api::sqlite
