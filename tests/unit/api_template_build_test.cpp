// Template builds through Api::handle with a real store and an engine that
// records what it is asked: the cache (hash, hit, skipCache), the build and
// its phases, the builder VM's life, failures, and the canonical JSON the
// cache key is taken over.
#include <doctest/doctest.h>

#include <algorithm>

#include "api/models/ids.hpp"
#include "api/models/json.hpp"
#include "api/routes/api.hpp"
#include "api/routes/template_build.hpp"
#include "api/serve/idle_monitor.hpp"
#include "api/serve/unavailable_engine.hpp"
#include "api/store/store.hpp"
#include "tests/unit/api_fixture.hpp"

using namespace forkvm::api;

namespace {

// Does what a build needs of an engine, and remembers it.
class RecordingEngine final : public UnavailableEngine {
 public:
  RecordingEngine() : UnavailableEngine("recording engine") {}

  std::vector<std::string> calls;
  std::vector<std::map<std::string, FileContent>> files_applied;
  std::vector<std::optional<std::string>> bases;
  bool fail_create = false;

  ApiResult<CreatedVm> create_vm(const CallContext&, const CreateVmInput& in) override {
    calls.push_back("create " + in.vm_id);
    files_applied.push_back(in.request.additional_files);
    bases.push_back(in.base_snapshot ? std::optional<std::string>(in.base_snapshot->id) : std::nullopt);
    if (fail_create) return api_error(ErrorCode::CreateVmBadRequest, "apt-get install failed (exit 100)");
    CreatedVm vm;
    vm.vm_id = in.vm_id;
    vm.instance_id = "inst-" + in.vm_id;
    vm.state = "running";
    return vm;
  }
  ApiResult<CreatedSnapshot> snapshot_vm(const CallContext&, const VmRecord& vm,
                                         const SnapshotInput& in) override {
    calls.push_back("snapshot " + vm.id + " " + in.snapshot_id);
    CreatedSnapshot s;
    s.record.state = "ready";
    s.record.vcpu_count = 1;
    s.record.mem_size_mib = 1024;
    s.record.source_instance_id = vm.instance_id;
    s.record.storage_json = R"({"dir":"x"})";
    return s;
  }
  ApiStatus delete_vm(const CallContext&, const VmRecord& vm) override {
    calls.push_back("delete " + vm.id);
    return {};
  }
  ApiStatus kill_vm(const CallContext&, const VmRecord& vm) override {
    calls.push_back("kill " + vm.id);
    return {};
  }

  [[nodiscard]] size_t count(std::string_view verb) const {
    return static_cast<size_t>(
        std::count_if(calls.begin(), calls.end(), [&](const std::string& c) { return c.starts_with(verb); }));
  }
};

struct Fixture : test::ApiFixture {
  RecordingEngine engine;

  HttpResponse post(const std::string& target, const std::string& body) {
    return call(engine, "POST", target, body);
  }

  // The value of string field `key` in a flat JSON body.
  static std::string field(const std::string& body, const std::string& key) {
    auto at = body.find("\"" + key + "\":\"");
    REQUIRE(at != std::string::npos);
    at += key.size() + 4;
    return body.substr(at, body.find('"', at) - at);
  }

  SnapshotRecord snapshot(const std::string& id) {
    auto s = store->get_snapshot(account.id, id);
    REQUIRE(s.ok());
    REQUIRE(s->has_value());
    return **s;
  }
};

constexpr const char* kTemplate =
    R"({"template": {"additionalFiles": {"/etc/motd": {"content": "hi"}}, "aptDeps": ["curl"]}})";

}  // namespace

TEST_CASE("canonical JSON: sorted members, nulls dropped, outer drops only at the top") {
  auto doc = json::parse_object(R"({"b": 1, "a": {"z": null, "y": [3, null, {"d": 1, "c": 2}]}, "skip": 5})",
                                ErrorCode::BadRequest);
  REQUIRE(doc.ok());
  CHECK(json::canonical(*doc) == R"({"a":{"y":[3,null,{"c":2,"d":1}]},"b":1,"skip":5})");
  CHECK(json::canonical(*doc, {"skip", "y"}) == R"({"a":{"y":[3,null,{"c":2,"d":1}]},"b":1})");
}

TEST_CASE("layer hash: order and nulls do not matter; content, base and discriminator do") {
  auto layer = [](const char* body) {
    auto q = parse_create_snapshot(body);
    REQUIRE(q.ok());
    return std::move(*q->spec);
  };
  auto a = layer(R"({"template": {"aptDeps": ["git"], "workdir": "/w"}})");
  auto b =
      layer(R"({"template": {"workdir": "/w", "vcpuCount": null, "aptDeps": ["git"], "skipCache": true}})");
  CHECK(layer_hash(a, "default-image") == layer_hash(b, "default-image"));
  CHECK(layer_hash(a, "default-image") != layer_hash(a, "sc-abcdefghij0123456789"));
  CHECK(layer_hash(a, "default-image") !=
        layer_hash(layer(R"({"template": {"aptDeps": ["git"], "workdir": "/w", "discriminator": "2"}})"),
                   "default-image"));
  CHECK(layer_hash(a, "default-image").size() == 64);
  // A nested spec's outer layer does not include its inner one: that enters as the base.
  auto nested = layer(R"({"spec": {"workdir": "/w", "snapshot": {"aptDeps": ["x"]}, "aptDeps": ["git"]}})");
  CHECK(layer_hash(nested, "default-image") == layer_hash(a, "default-image"));
}

TEST_CASE("POST /v1/vms/snapshots builds once, then answers from the cache") {
  Fixture f;
  HttpResponse first = f.post("/v1/vms/snapshots", kTemplate);
  REQUIRE(first.status == 200);
  std::string id = Fixture::field(first.body, "snapshotId");
  CHECK(is_snapshot_id(id));
  // One builder VM: created with the template's files on the default image, snapshotted, deleted.
  REQUIRE(f.engine.calls.size() == 3);
  CHECK(f.engine.count("create") == 1);
  CHECK(f.engine.calls[1].ends_with(" " + id));
  CHECK(f.engine.count("delete") == 1);
  CHECK(f.engine.files_applied[0].at("/etc/motd").bytes == "hi");
  CHECK(!f.engine.bases[0]);
  SnapshotRecord s = f.snapshot(id);
  CHECK(s.state == "ready");
  REQUIRE(s.template_hash);
  REQUIRE(s.build_id);
  CHECK(s.mem_size_mib == 1024);
  auto build = f.store->get_build(f.account.id, *s.build_id);
  REQUIRE(build.ok());
  REQUIRE(build->has_value());
  CHECK((*build)->state == "succeeded");
  CHECK((*build)->finished_at_ms.has_value());
  CHECK((*build)->planned_phases == std::vector<std::string>{"layer: start VM", "layer: snapshot"});
  auto phases = f.store->list_build_phases(*s.build_id);
  REQUIRE(phases.ok());
  REQUIRE(phases->size() == 2);
  CHECK((*phases)[1].snapshot_id == id);
  // The builder VM is on record, deleted.
  VmListFilter all;
  all.include_deleted = true;
  auto vms = f.store->list_vms(f.account.id, all);
  REQUIRE(vms.ok());
  REQUIRE(vms->vms.size() == 1);
  CHECK(vms->vms[0].deleted);
  CHECK(vms->vms[0].build_id == s.build_id);

  // Same template, members in another order: the cache, no engine call.
  HttpResponse again =
      f.post("/v1/vms/snapshots",
             R"({"template": {"aptDeps": ["curl"], "additionalFiles": {"/etc/motd": {"content": "hi"}}}})");
  REQUIRE(again.status == 200);
  CHECK(Fixture::field(again.body, "snapshotId") == id);
  CHECK(f.engine.calls.size() == 3);

  // skipCache builds anew, and the new snapshot is the cache entry from then on.
  HttpResponse fresh = f.post(
      "/v1/vms/snapshots",
      R"({"template": {"aptDeps": ["curl"], "additionalFiles": {"/etc/motd": {"content": "hi"}}, "skipCache": true}})");
  REQUIRE(fresh.status == 200);
  std::string fresh_id = Fixture::field(fresh.body, "snapshotId");
  CHECK(fresh_id != id);
  CHECK(f.engine.count("create") == 2);
  CHECK(Fixture::field(f.post("/v1/vms/snapshots", kTemplate).body, "snapshotId") == fresh_id);
  // A deleted snapshot is no cache entry.
  REQUIRE(*f.store->mark_snapshot_deleted(f.account.id, fresh_id));
  CHECK(Fixture::field(f.post("/v1/vms/snapshots", kTemplate).body, "snapshotId") == id);
}

TEST_CASE("a nested spec builds innermost first; a cached inner layer is a phase") {
  Fixture f;
  std::string inner = Fixture::field(
      f.post("/v1/vms/snapshots", R"({"template": {"additionalFiles": {"/a": {"content": "1"}}}})").body,
      "snapshotId");
  f.engine.calls.clear();
  HttpResponse r = f.post("/v1/vms/snapshots", R"({"spec": {"additionalFiles": {"/b": {"content": "2"}},
      "snapshot": {"additionalFiles": {"/a": {"content": "1"}}}}})");
  REQUIRE(r.status == 200);
  std::string outer = Fixture::field(r.body, "snapshotId");
  CHECK(f.engine.count("create") == 1);
  CHECK(f.engine.bases.back() == inner);  // the outer layer is built on the inner snapshot
  SnapshotRecord s = f.snapshot(outer);
  auto build = f.store->get_build(f.account.id, *s.build_id);
  REQUIRE(build.ok());
  CHECK((*build)->planned_phases ==
        std::vector<std::string>{"layer 1/2 (cached)", "layer 2/2: start VM", "layer 2/2: snapshot"});
  auto phases = f.store->list_build_phases(*s.build_id);
  REQUIRE(phases.ok());
  REQUIRE(phases->size() == 3);
  CHECK((*phases)[0].snapshot_id == inner);

  // The SDK's way to the same thing: the outer template names the inner snapshot.
  f.engine.calls.clear();
  HttpResponse sdk = f.post("/v1/vms/snapshots", R"({"template": {"snapshotId": ")" + inner +
                                                     R"(", "additionalFiles": {"/b": {"content": "2"}}}})");
  REQUIRE(sdk.status == 200);
  CHECK(f.engine.calls.size() == 3);  // a different key (the base is named in the layer), built once
}

TEST_CASE("a failed layer: the error reaches the client, the build and snapshot say failed") {
  Fixture f;
  f.engine.fail_create = true;
  HttpResponse r = f.post("/v1/vms/snapshots", kTemplate);
  CHECK(r.status == 400);
  CHECK(r.body.find("apt-get install failed") != std::string::npos);
  SnapshotListFilter filter;
  filter.include_failed = true;
  auto list = f.store->list_snapshots(f.account.id, filter);
  REQUIRE(list.ok());
  REQUIRE(list->snapshots.size() == 1);
  const SnapshotRecord& s = list->snapshots[0];
  CHECK(s.state == "failed");
  CHECK(s.failure_reason->find("apt-get") != std::string::npos);
  auto build = f.store->get_build(f.account.id, *s.build_id);
  REQUIRE(build.ok());
  CHECK((*build)->state == "failed");
  // A failed snapshot is no cache entry: the next request builds again.
  f.engine.fail_create = false;
  CHECK(f.post("/v1/vms/snapshots", kTemplate).status == 200);
  CHECK(f.engine.count("create") == 2);
}

TEST_CASE("templates the build cannot serve are refused before any work") {
  Fixture f;
  HttpResponse docker =
      f.post("/v1/vms/snapshots", R"({"template": {"baseImage": {"dockerfileContent": "FROM debian"}}})");
  CHECK(docker.status == 501);
  CHECK(docker.body.find("NOT_IMPLEMENTED") != std::string::npos);
  HttpResponse missing =
      f.post("/v1/vms/snapshots", R"({"template": {"snapshotId": "sc-abcdefghij0123456789"}})");
  CHECK(missing.status == 404);
  CHECK(f.engine.calls.empty());
}

TEST_CASE("POST /v1/vms with a template restores the built snapshot and names it") {
  Fixture f;
  HttpResponse r = f.post("/v1/vms", R"({"template": {"additionalFiles": {"/etc/motd": {"content": "hi"}},
      "idleTimeoutSeconds": 60}, "additionalFiles": {"/top": {"content": "t"}}})");
  REQUIRE(r.status == 200);
  std::string snap = Fixture::field(r.body, "snapshotId");
  // Builder VM (template files), then the VM itself (top-level files only) from the snapshot.
  REQUIRE(f.engine.count("create") == 2);
  CHECK(f.engine.files_applied[0].count("/etc/motd") == 1);
  CHECK(f.engine.files_applied[1].count("/etc/motd") == 0);
  CHECK(f.engine.files_applied[1].count("/top") == 1);
  CHECK(f.engine.bases[1] == snap);
  auto vm = f.store->get_vm(f.account.id, Fixture::field(r.body, "id"));
  REQUIRE(vm.ok());
  REQUIRE(vm->has_value());
  CHECK((*vm)->snapshot_id == snap);
  CHECK((*vm)->build_id == f.snapshot(snap).build_id);
  // The template's idle timeout is the VM's (the idle monitor reads the stored config).
  auto idle = idle_settings_of(**vm);
  REQUIRE(idle.has_value());
  CHECK(idle->timeout_ms == 60000);
  // The second create from the same template is a plain restore.
  REQUIRE(f.post("/v1/vms", R"({"template": {"additionalFiles": {"/etc/motd": {"content": "hi"}},
      "idleTimeoutSeconds": 60}})")
              .status == 200);
  CHECK(f.engine.count("create") == 3);
}

TEST_CASE("builds cut short by a server stop are failed at the next start") {
  Fixture f;
  BuildRecord b;
  b.id = new_build_id();
  b.account_id = f.account.id;
  b.state = "running";
  b.started_at_ms = b.updated_at_ms = now_ms();
  REQUIRE(f.store->insert_build(b).ok());
  SnapshotRecord s;
  s.id = new_snapshot_id();
  s.account_id = f.account.id;
  s.state = "building";
  s.persistence_json = "{}";
  s.created_at_ms = now_ms();
  REQUIRE(f.store->insert_snapshot(s).ok());
  auto cut = f.store->fail_unfinished_builds("stopped");
  REQUIRE(cut.ok());
  CHECK(*cut == 1);
  CHECK((*f.store->get_build(f.account.id, b.id))->state == "failed");
  CHECK(f.snapshot(s.id).state == "failed");
  CHECK(f.snapshot(s.id).failure_reason == "stopped");
}
