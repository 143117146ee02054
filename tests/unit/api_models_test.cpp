// Request validation: good, bad and edge inputs for every body, the error
// codes they map to, ids and base64.
#include <doctest/doctest.h>

#include <vector>

#include "api/models/api_error.hpp"
#include "api/models/base64.hpp"
#include "api/models/ids.hpp"
#include "api/models/json.hpp"
#include "api/models/requests.hpp"

using namespace forkvm::api;

namespace {

template <typename T>
ErrorCode code_of(const ApiResult<T>& r) {
  REQUIRE(!r.ok());
  return r.error().code;
}

}  // namespace

TEST_CASE("create VM: empty, full and SDK-shaped bodies") {
  CHECK(parse_create_vm("").ok());
  CHECK(parse_create_vm("{}").ok());
  auto r = parse_create_vm(R"({
    "name": "box", "vcpuCount": 2, "memSizeGb": 4, "rootfsSizeGb": 10, "idleTimeoutSeconds": 600,
    "ports": [{"port": 443, "targetPort": 3000}], "waitForReadySignal": true,
    "persistence": {"type": "sticky", "priority": 7},
    "systemd": {"services": [{"name": "web", "mode": "service", "exec": ["/bin/bash /opt/x.sh"],
                              "after": ["network.target"], "env": {"A": "1"},
                              "restartPolicy": {"policy": "always", "restartSec": 1}}]},
    "users": [{"name": "dev", "uid": 1000, "groups": ["wheel"]}], "groups": [{"name": "wheel"}],
    "additionalFiles": {"/a.txt": {"content": "hi", "encoding": "utf-8"},
                        "/b.bin": {"content": "AAEC", "encoding": "base64", "executable": true},
                        "/c.txt": {"content": "plain"}},
    "git": {"config": {}}, "aptDeps": ["curl"], "domains": [{"domain": "x.example", "vmPort": 3000}],
    "template": {"snapshotId": "sc-abcdefghij0123456789", "vcpuCount": 2},
    "someFutureField": {"ignored": true}
  })");
  REQUIRE(r.ok());
  CHECK(*r->vcpu_count == 2);
  CHECK(*r->mem_size_gb == 4);
  CHECK(r->persistence->priority == 7);
  CHECK(r->systemd->services.at(0).restart_policy->policy == "always");
  CHECK(r->additional_files.at("/a.txt").bytes == "hi");
  CHECK(r->additional_files.at("/b.bin").bytes == std::string("\0\1\2", 3));
  CHECK(r->additional_files.at("/b.bin").executable);
  CHECK(r->additional_files.at("/c.txt").bytes == "plain");
  CHECK(r->domains.at(0).vm_port == 3000);
  CHECK(*r->template_->snapshot_id == "sc-abcdefghij0123456789");
}

TEST_CASE("create VM: bad input is CREATE_VM_BAD_REQUEST with the field path") {
  auto bad = [](const char* body) { return parse_create_vm(body); };
  CHECK(code_of(bad("[]")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad("{")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"name": 5})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"vcpuCount": 0})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"vcpuCount": 1.5})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"vcpuCount": 99999999999999999999})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"vcpuCount": 2, "template": {"vcpuCount": 4}})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"ports": [{"port": 70000, "targetPort": 1}]})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"persistence": {"type": "forever"}})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"persistence": {"type": "sticky", "priority": 11}})")) ==
        ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"additionalFiles": {"/x": {"content": "!!", "encoding": "base64"}}})")) ==
        ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"additionalFiles": {"/x": {"content": "a", "encoding": "latin1"}}})")) ==
        ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"snapshotId": "sc-short"})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"systemd": {"services": [{"name": "a", "exec": ["x"]}]}})")) ==
        ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad(R"({"spec": {}, "template": {}})")) == ErrorCode::CreateVmBadRequest);
  CHECK(code_of(bad("{\"name\": \"\xff\"}")) == ErrorCode::CreateVmBadRequest);  // not UTF-8
  auto msg = bad(R"({"template": {"memSizeGb": "4"}})");
  REQUIRE(!msg.ok());
  CHECK(msg.error().message == "template.memSizeGb: expected an integer, got a string");
}

TEST_CASE("create VM: explicit nulls mean absent; spec nesting is bounded") {
  auto r = parse_create_vm(
      R"({"name": null, "vcpuCount": null, "template": null, "ports": null, "systemd": null})");
  REQUIRE(r.ok());
  CHECK(!r->name);
  CHECK(!r->ports);
  std::string deep = R"({"spec": {"snapshot": )";
  for (int i = 0; i < 40; i++) deep += R"({"snapshot": )";
  deep += "{}";
  for (int i = 0; i < 41; i++) deep += "}";
  deep += "}";
  CHECK(code_of(parse_create_vm(deep)) == ErrorCode::CreateVmBadRequest);
  auto ok = parse_create_vm(
      R"({"name": "n", "spec": {"snapshot": {"snapshot": {"baseImage": {"dockerfileContent": "FROM x"}}}}})");
  REQUIRE(ok.ok());
  CHECK(*ok->spec->base->dockerfile == "FROM x");
}

TEST_CASE("fork count bounds") {
  CHECK(parse_fork_vm("")->count == 1);
  CHECK(parse_fork_vm("{}")->count == 1);
  CHECK(parse_fork_vm(R"({"count": null})")->count == 1);
  CHECK(parse_fork_vm(R"({"count": 3})")->count == 3);
  CHECK(parse_fork_vm(R"({"count": 64})")->count == kMaxForkCount);
  CHECK(code_of(parse_fork_vm(R"({"count": 0})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_fork_vm(R"({"count": -1})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_fork_vm(R"({"count": 65})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_fork_vm(R"({"count": 18446744073709551615})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_fork_vm(R"({"count": "2"})")) == ErrorCode::BadRequest);
}

TEST_CASE("exec-await as the SDK sends it") {
  auto r = parse_exec(R"({"command": "echo hi", "terminal": null, "timeoutMs": null})");
  REQUIRE(r.ok());
  CHECK(r->command == "echo hi");
  CHECK(!r->terminal);
  CHECK(!r->timeout_ms);
  CHECK(parse_exec(R"({"command": "x", "timeoutMs": 5000})")->timeout_ms == 5000);
  CHECK(code_of(parse_exec(R"({"command": ""})")) == ErrorCode::ExecEmpty);
  CHECK(code_of(parse_exec(R"({"command": "  "})")) == ErrorCode::ExecEmpty);
  CHECK(code_of(parse_exec("{}")) == ErrorCode::ExecEmpty);
  CHECK(code_of(parse_exec(R"({"command": "x", "timeoutMs": -1})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_exec(R"({"command": ["x"]})")) == ErrorCode::BadRequest);
}

TEST_CASE("file writes") {
  CHECK(parse_write_file(R"({"content": "aGk=", "encoding": "base64"})")->bytes == "hi");
  CHECK(parse_write_file(R"({"content": "hi", "encoding": "utf8"})")->bytes == "hi");
  CHECK(parse_write_file(R"({"content": "hi"})")->bytes == "hi");
  CHECK(code_of(parse_write_file(R"({"encoding": "base64"})")) == ErrorCode::FilesBadRequest);
  CHECK(code_of(parse_write_file(R"({"content": "a=b", "encoding": "base64"})")) ==
        ErrorCode::FilesBadRequest);
  CHECK(code_of(validate_guest_path("", ErrorCode::FilesBadRequest)) == ErrorCode::FilesBadRequest);
}

TEST_CASE("resize, snapshots, systemd") {
  CHECK(parse_resize_vm(R"({"memSizeGb": 8})")->mem_size_gb == 8);
  CHECK(code_of(parse_resize_vm("{}")) == ErrorCode::InvalidParameters);
  CHECK(code_of(parse_resize_vm(R"({"vcpuCount": 0})")) == ErrorCode::InvalidParameters);
  CHECK(
      parse_create_snapshot(R"({"template": {}, "name": "s", "persistence": {"type": "persistent"}})").ok());
  CHECK(code_of(parse_create_snapshot("{}")) == ErrorCode::CreateSnapshotBadRequest);
  CHECK(code_of(parse_create_snapshot(R"({"template": {}, "persistence": {"type": "ephemeral"}})")) ==
        ErrorCode::CreateSnapshotBadRequest);
  CHECK(parse_snapshot_vm("")->name == std::nullopt);
  CHECK(code_of(parse_snapshot_vm(R"({"name": 1})")) == ErrorCode::SnapshotVmBadRequest);
  auto upd = parse_update_snapshot(R"({"name": null})");
  CHECK(upd->name_present);
  CHECK(!upd->name);
  CHECK(!parse_update_snapshot("{}")->name_present);
  CHECK(parse_systemd_unit(R"({"name": "web", "mode": "oneshot", "exec": ["true"]})").ok());
  CHECK(code_of(parse_systemd_unit(R"({"name": "", "mode": "oneshot", "exec": []})")) ==
        ErrorCode::ServiceNameEmpty);
  CHECK(code_of(parse_systemd_unit(R"({"name": "a/b", "mode": "oneshot", "exec": []})")) ==
        ErrorCode::ServiceNameInvalidChars);
  CHECK(code_of(parse_systemd_unit(R"({"name": "-x", "mode": "oneshot", "exec": []})")) ==
        ErrorCode::ServiceNameInvalidPrefix);
  CHECK(code_of(validate_service_name(std::string(200, 'a'))) == ErrorCode::ServiceNameTooLong);
  CHECK(parse_batch_services(R"({"services": [{"id": "a"}, {"id": "b"}]})")->service_ids.size() == 2);
  CHECK(code_of(parse_batch_services(R"({"services": [{"nope": 1}]})")) == ErrorCode::BadRequest);
  CHECK(code_of(parse_batch_services("{}")) == ErrorCode::BadRequest);
}

TEST_CASE("error codes, statuses and bodies") {
  CHECK(error_code_name(ErrorCode::VmNotFound) == "VM_NOT_FOUND");
  CHECK(error_http_status(ErrorCode::VmNotFound) == 404);
  CHECK(error_http_status(ErrorCode::VmDeleted) == 410);
  CHECK(error_http_status(ErrorCode::ExecTimedOut) == 408);
  CHECK(error_http_status(ErrorCode::NotImplemented) == 501);
  CHECK(error_http_status(ErrorCode::InvalidVmId) == 400);
  CHECK(
      error_body(api_error(ErrorCode::VmNotFound, "VM not found: x")) ==
      R"({"error":"VM_NOT_FOUND","code":"VM_NOT_FOUND","message":"VM not found: x","description":"VM not found: x"})");
  CHECK(error_body("BAD_REQUEST", "bad \xff byte") ==
        R"({"error":"BAD_REQUEST","code":"BAD_REQUEST","message":"bad ? byte","description":"bad ? byte"})");
}

TEST_CASE("ids") {
  for (int i = 0; i < 100; i++) {
    CHECK(is_vm_id(new_vm_id()));
    CHECK(is_snapshot_id(new_snapshot_id()));
    CHECK(is_build_id(new_build_id()));
    CHECK(looks_like_api_key(new_api_key()));
  }
  CHECK(new_vm_id() != new_vm_id());
  CHECK(!is_vm_id("ABCDEFGHIJ0123456789"));
  CHECK(!is_vm_id("abcdefghij012345678"));
  CHECK(!is_vm_id("abcdefghij0123456789a"));
  CHECK(!is_snapshot_id("sc-ABCDEFGHIJ0123456789"));
  CHECK(!is_snapshot_id("abcdefghij0123456789"));
  CHECK(new_phase_id().rfind("bph-", 0) == 0);
  CHECK(new_layer_id().size() == 3 + 16);
}

TEST_CASE("base64 round trip and strictness") {
  for (const std::string& s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                       std::string("\0\xff\x10", 3)})
    CHECK(base64_decode(base64_encode(s)) == s);
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_decode("Zm9vYg") == "foob");  // unpadded accepted
  CHECK(!base64_decode("Zm9vYg="));          // padding must complete a quantum
  CHECK(!base64_decode("Z"));
  CHECK(!base64_decode("Zm9v YmFy"));
  CHECK(!base64_decode("Zm=v"));
}

TEST_CASE("sanitize_utf8 keeps valid text and replaces the rest") {
  CHECK(json::sanitize_utf8("héllo ✓ 😀") == "héllo ✓ 😀");
  CHECK(json::sanitize_utf8("a\xc0\x80z") == "a??z");   // overlong
  CHECK(json::sanitize_utf8("\xed\xa0\x80") == "???");  // surrogate
  CHECK(json::sanitize_utf8("\xf0\x9f\x98") == "???");  // truncated
}
