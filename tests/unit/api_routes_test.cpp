// Route handlers through Api::handle with a real store and the engine-less
// VmEngine: response shapes the official SDK reads.
#include <doctest/doctest.h>

#include "api/models/ids.hpp"
#include "api/routes/api.hpp"
#include "api/serve/unavailable_engine.hpp"
#include "api/store/store.hpp"
#include "tests/unit/api_fixture.hpp"

using namespace forkvm::api;

namespace {

struct Fixture : test::ApiFixture {
  std::unique_ptr<VmEngine> engine = make_unavailable_engine();
};

}  // namespace

TEST_CASE("DELETE /v1/vms/snapshots/{id} answers both snapshot_id (spec) and snapshotId (SDK)") {
  Fixture f;
  SnapshotRecord s;
  s.id = new_snapshot_id();
  s.account_id = f.account.id;
  s.state = "ready";
  s.persistence_json = R"({"type":"sticky","priority":5})";
  s.storage_json = "{}";
  s.created_at_ms = 1700000000000;
  REQUIRE(f.store->insert_snapshot(s).ok());

  HttpResponse r = f.call(*f.engine, "DELETE", "/v1/vms/snapshots/" + s.id);
  CHECK(r.status == 200);
  CHECK(r.body == R"({"snapshot_id":")" + s.id + R"(","snapshotId":")" + s.id + R"("})");

  HttpResponse again = f.call(*f.engine, "DELETE", "/v1/vms/snapshots/" + s.id);
  CHECK(again.status == 409);
  CHECK(again.body.find(R"("code":"SNAPSHOT_ALREADY_DELETED")") != std::string::npos);
}
