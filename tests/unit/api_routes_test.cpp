// Route handlers through Api::handle with a real store and the engine-less
// VmEngine: response shapes the official SDK reads.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <variant>

#include "api/auth/auth.hpp"
#include "api/models/ids.hpp"
#include "api/routes/api.hpp"
#include "api/serve/unavailable_engine.hpp"
#include "api/store/store.hpp"

using namespace forkvm::api;

namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<VmEngine> engine = make_unavailable_engine();
  std::string key;
  Account account;

  Fixture() {
    char tmpl[] = "/tmp/forkvm-routes-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto s = open_sqlite_store(dir + "/forkvm.db");
    REQUIRE(s.ok());
    store = std::move(*s);
    auto issued = issue_api_key(*store, "default", "test");
    REQUIRE(issued.ok());
    key = issued->key;
    account = issued->account;
  }
  ~Fixture() { std::filesystem::remove_all(dir); }

  HttpResponse call(Api& api, const std::string& method, const std::string& target) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.headers.emplace_back("authorization", "Bearer " + key);
    r.request_id = "ri-test";
    HttpReply reply = api.handle(r);
    REQUIRE(std::holds_alternative<HttpResponse>(reply));
    return std::get<HttpResponse>(reply);
  }
};

}  // namespace

TEST_CASE("DELETE /v1/vms/snapshots/{id} answers both snapshot_id (spec) and snapshotId (SDK)") {
  Fixture f;
  Api api(*f.store, *f.engine, "{}");
  SnapshotRecord s;
  s.id = new_snapshot_id();
  s.account_id = f.account.id;
  s.state = "ready";
  s.persistence_json = R"({"type":"sticky","priority":5})";
  s.storage_json = "{}";
  s.created_at_ms = 1700000000000;
  REQUIRE(f.store->insert_snapshot(s).ok());

  HttpResponse r = f.call(api, "DELETE", "/v1/vms/snapshots/" + s.id);
  CHECK(r.status == 200);
  CHECK(r.body == R"({"snapshot_id":")" + s.id + R"(","snapshotId":")" + s.id + R"("})");

  HttpResponse again = f.call(api, "DELETE", "/v1/vms/snapshots/" + s.id);
  CHECK(again.status == 409);
  CHECK(again.body.find(R"("code":"SNAPSHOT_ALREADY_DELETED")") != std::string::npos);
}
