// The SQLite store: migration from an empty file, reopening, CRUD, account
// scoping, and concurrent use from several threads.
#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>
#include <vector>

#include "api/models/ids.hpp"
#include "api/store/store.hpp"

using namespace forkvm::api;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/forkvm-store-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

VmRecord vm(const std::string& account, const std::string& state, int64_t created) {
  VmRecord v;
  v.id = new_vm_id();
  v.account_id = account;
  v.state = state;
  v.config_json = "{}";
  v.created_at_ms = v.updated_at_ms = created;
  return v;
}

}  // namespace

TEST_CASE("store: migrate, reopen, accounts and keys") {
  TempDir dir;
  std::string db = dir.path + "/forkvm.db";
  {
    auto s = open_sqlite_store(db);
    REQUIRE(s.ok());
    auto a = (*s)->create_account("alice");
    REQUIRE(a.ok());
    CHECK(*(*s)->count_api_keys() == 0);
    REQUIRE((*s)->add_api_key({"key-1", a->id, "hash-1", "label", now_ms()}).ok());
    CHECK((*(*s)->account_for_key_hash("hash-1"))->name == "alice");
    CHECK(!*(*s)->account_for_key_hash("hash-2"));
    CHECK(!(*s)->add_api_key({"key-2", a->id, "hash-1", "dup", now_ms()}).ok());  // hashes are unique
  }
  auto s = open_sqlite_store(db);  // migrations are idempotent
  REQUIRE(s.ok());
  CHECK(*(*s)->count_api_keys() == 1);
  CHECK((*(*s)->find_account_by_name("alice"))->name == "alice");
  CHECK(!*(*s)->find_account_by_name("bob"));
}

TEST_CASE("store: VMs are scoped to their account") {
  TempDir dir;
  auto s = open_sqlite_store(dir.path + "/forkvm.db").value();
  std::string a = s->create_account("a")->id, b = s->create_account("b")->id;
  VmRecord v1 = vm(a, "running", 1000), v2 = vm(a, "stopped", 2000), v3 = vm(b, "running", 3000);
  v1.name = "web-server";
  for (auto* v : {&v1, &v2, &v3}) REQUIRE(s->insert_vm(*v).ok());
  CHECK((*s->get_vm(a, v1.id))->name == "web-server");
  CHECK(!*s->get_vm(b, v1.id));  // another account's VM does not exist for b
  auto list = s->list_vms(a, {});
  REQUIRE(list.ok());
  REQUIRE(list->vms.size() == 2);
  CHECK(list->vms[0].id == v2.id);  // newest first
  CHECK(list->counts.total == 2);
  CHECK(list->counts.running == 1);
  CHECK(list->counts.stopped == 1);
  VmListFilter f;
  f.state = "running";
  CHECK(s->list_vms(a, f)->vms.size() == 1);
  f = {};
  f.search = "web";
  CHECK(s->list_vms(a, f)->vms.at(0).id == v1.id);
  f = {};
  f.limit = 1;
  f.offset = 1;
  auto page = s->list_vms(a, f);
  CHECK(page->vms.size() == 1);
  CHECK(page->counts.total == 2);  // counts ignore paging
  v1.state = "suspended";
  v1.deleted = true;
  CHECK(*s->update_vm(v1));
  CHECK((*s->get_vm(a, v1.id))->deleted);
  CHECK(s->list_vms(a, {})->vms.size() == 1);
  f = {};
  f.include_deleted = true;
  CHECK(s->list_vms(a, f)->vms.size() == 2);
  VmRecord stranger = v3;
  stranger.account_id = a;  // cannot update b's VM while claiming account a
  CHECK(!*s->update_vm(stranger));
}

TEST_CASE("store: snapshots, builds and phases") {
  TempDir dir;
  auto s = open_sqlite_store(dir.path + "/forkvm.db").value();
  std::string a = s->create_account("a")->id, b = s->create_account("b")->id;
  SnapshotRecord r;
  r.id = new_snapshot_id();
  r.account_id = a;
  r.state = "ready";
  r.persistence_json = R"({"type":"persistent"})";
  r.storage_json = "{}";
  r.created_at_ms = 5;
  REQUIRE(s->insert_snapshot(r).ok());
  SnapshotRecord failed = r;
  failed.id = new_snapshot_id();
  failed.state = "failed";
  REQUIRE(s->insert_snapshot(failed).ok());
  CHECK(s->list_snapshots(a, {})->snapshots.size() == 1);
  SnapshotListFilter f;
  f.include_failed = true;
  CHECK(s->list_snapshots(a, f)->snapshots.size() == 2);
  CHECK(s->list_snapshots(a, {})->counts.failed == 1);
  CHECK(!*s->get_snapshot(b, r.id));
  CHECK(*s->update_snapshot_name(a, r.id, std::string("named")));
  CHECK((*s->get_snapshot(a, r.id))->name == "named");
  CHECK(!*s->update_snapshot_name(b, r.id, std::string("x")));
  CHECK(*s->mark_snapshot_deleted(a, r.id));
  CHECK(!*s->mark_snapshot_deleted(a, r.id));  // already deleted
  CHECK(s->list_snapshots(a, {})->counts.deleted == 1);
  BuildRecord build{new_build_id(),       a,  std::nullopt, "running", "h", std::nullopt,
                    {"boot", "snapshot"}, 10, std::nullopt, 11};
  REQUIRE(s->insert_build(build).ok());
  CHECK((*s->get_build(a, build.id))->planned_phases == std::vector<std::string>{"boot", "snapshot"});
  CHECK(!*s->get_build(b, build.id));
  REQUIRE(s->insert_build_phase({new_phase_id(), build.id, "boot", std::nullopt, 20}).ok());
  REQUIRE(s->insert_build_phase({new_phase_id(), build.id, "snapshot", r.id, 30}).ok());
  auto phases = s->list_build_phases(build.id);
  REQUIRE(phases->size() == 2);
  CHECK((*phases)[1].snapshot_id == r.id);
}

TEST_CASE("store: concurrent use from threads and from a second connection") {
  TempDir dir;
  std::string path = dir.path + "/forkvm.db";
  auto s = open_sqlite_store(path).value();
  auto other = open_sqlite_store(path).value();  // like `forkvm keys create` beside a server
  std::string a = s->create_account("a")->id;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      Store& st = t % 2 ? *s : *other;
      for (int i = 0; i < 50; i++) {
        VmRecord v = vm(a, "running", i);
        if (!st.insert_vm(v).ok()) failures++;
        auto got = st.get_vm(a, v.id);
        if (!got.ok() || !*got) failures++;
        if (!st.list_vms(a, {}).ok()) failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(s->list_vms(a, {})->counts.total == 400);
}
