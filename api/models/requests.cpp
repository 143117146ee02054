// Validation of every request body into the structs of requests.hpp.
#include "api/models/requests.hpp"

#include <fmt/format.h>

#include <limits>

#include "api/models/base64.hpp"
#include "api/models/json.hpp"
#include "api/models/spec_parsers.hpp"
#include "vmm/result.hpp"

namespace forkvm::api {

namespace {

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
using detail::check_snapshot_id;

// Top-level sizes arrive from the SDK; the spec has them in the template.
// Both are accepted, and when both are given they must agree.
ApiResult<std::optional<int64_t>> merge_size(const json::Reader& r, const char* key,
                                             std::optional<int64_t> top, std::optional<int64_t> tmpl) {
  if (top && tmpl && *top != *tmpl)
    return r.error(key, fmt::format("is {} at the top level but {} in template", *top, *tmpl));
  return top ? top : tmpl;
}

}  // namespace

ApiStatus validate_service_name(std::string_view name) {
  if (name.empty()) return api_error(ErrorCode::ServiceNameEmpty, "service name must not be empty");
  if (name.size() > kMaxServiceNameLength)
    return api_error(ErrorCode::ServiceNameTooLong,
                     fmt::format("service name is too long (max {} characters)", kMaxServiceNameLength));
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return api_error(ErrorCode::ServiceNameInvalidChars, "service name must not contain '/' or NUL");
  if (name.front() == '.' || name.front() == '-')
    return api_error(ErrorCode::ServiceNameInvalidPrefix, "service name must not start with '.' or '-'");
  return {};
}

ApiStatus validate_guest_path(std::string_view path, ErrorCode code) {
  if (path.empty()) return api_error(code, "file path must not be empty");
  if (path.find('\0') != std::string_view::npos) return api_error(code, "file path must not contain NUL");
  return {};
}

ApiResult<CreateVmRequest> parse_create_vm(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::CreateVmBadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  CreateVmRequest q;
  q.name = FORKVM_TRY(r.opt_string("name"));
  if (const json::Value* spec = FORKVM_TRY(r.opt_object("spec"))) {
    // The spec says every other top-level field must be omitted with `spec`
    // (the instance `name` lives beside it).
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
      std::string_view k(it->name.GetString(), it->name.GetStringLength());
      if (k != "spec" && k != "name" && !it->value.IsNull())
        return r.error(k, "must be omitted when `spec` is given (put it inside spec.snapshot)");
    }
    json::Reader s(*spec, "spec", kCode);
    q.spec_name = FORKVM_TRY(s.opt_string("name"));
    if (const json::Value* layer = FORKVM_TRY(s.opt_object("snapshot")))
      q.spec = FORKVM_TRY(detail::read_layer(json::Reader(*layer, "spec.snapshot", kCode), true, 1));
    if (q.spec) {
      q.vcpu_count = q.spec->vcpu_count;
      q.mem_size_gb = q.spec->mem_size_gb;
      q.rootfs_size_gb = q.spec->rootfs_size_gb;
    }
    return q;
  }
  if (const json::Value* t = FORKVM_TRY(r.opt_object("template")))
    q.template_ = FORKVM_TRY(detail::read_layer(json::Reader(*t, "template", kCode), false, 1));
  q.snapshot_id = FORKVM_TRY(r.opt_string("snapshotId"));
  FORKVM_CHECK(check_snapshot_id(r, "snapshotId", q.snapshot_id));
  if (q.snapshot_id && q.template_ && q.template_->snapshot_id && *q.template_->snapshot_id != *q.snapshot_id)
    return r.error("snapshotId", "differs from template.snapshotId");
  q.idle_timeout_seconds = FORKVM_TRY(r.opt_int("idleTimeoutSeconds", 0, kI64Max));
  q.ready_signal_timeout_seconds = FORKVM_TRY(r.opt_int("readySignalTimeoutSeconds", 0, kI64Max));
  q.activity_threshold_bytes = FORKVM_TRY(r.opt_int("activityThresholdBytes", 0, kI64Max));
  q.wait_for_ready_signal = FORKVM_TRY(r.opt_bool("waitForReadySignal"));
  q.recreate = FORKVM_TRY(r.opt_bool("recreate"));
  q.workdir = FORKVM_TRY(r.opt_string("workdir"));
  q.persistence = FORKVM_TRY(detail::read_persistence(r, "persistence", true));
  q.ports = FORKVM_TRY(detail::read_ports(r, "ports"));
  q.systemd = FORKVM_TRY(detail::read_systemd(r, "systemd"));
  q.users = FORKVM_TRY(detail::read_users(r, "users"));
  q.groups = FORKVM_TRY(detail::read_groups(r, "groups"));
  q.additional_files = FORKVM_TRY(detail::read_files(r, "additionalFiles"));
  q.git_repos = FORKVM_TRY(detail::read_git_repos(r, "gitRepos"));
  q.git = FORKVM_TRY(detail::read_git(r, "git"));
  q.apt_deps = FORKVM_TRY(r.opt_string_array("aptDeps")).value_or(std::vector<std::string>{});
  if (const json::Value* domains = FORKVM_TRY(r.opt_array("domains"))) {
    for (rapidjson::SizeType i = 0; i < domains->Size(); i++) {
      json::Reader d = FORKVM_TRY(json::element_reader((*domains)[i], fmt::format("domains[{}]", i), kCode));
      DomainMapping m;
      m.domain = FORKVM_TRY(d.req_string("domain"));
      if (auto port = FORKVM_TRY(d.opt_int("vmPort", 0, 65535))) m.vm_port = static_cast<int32_t>(*port);
      q.domains.push_back(std::move(m));
    }
  }
  q.docker_credentials = FORKVM_TRY(detail::read_docker_credentials(r, "dockerCredentials"));
  q.discriminator = FORKVM_TRY(r.opt_string("discriminator"));
  q.skip_cache = FORKVM_TRY(r.opt_bool("skipCache"));
  auto top_vcpu = FORKVM_TRY(r.opt_int("vcpuCount", 1, kMaxVcpuCount));
  auto top_mem = FORKVM_TRY(r.opt_int("memSizeGb", 1, kMaxMemSizeGb));
  auto top_disk = FORKVM_TRY(r.opt_int("rootfsSizeGb", 1, kMaxRootfsSizeGb));
  const LayerSpec* t = q.template_.get();
  q.vcpu_count = FORKVM_TRY(merge_size(r, "vcpuCount", top_vcpu, t ? t->vcpu_count : std::nullopt));
  q.mem_size_gb = FORKVM_TRY(merge_size(r, "memSizeGb", top_mem, t ? t->mem_size_gb : std::nullopt));
  q.rootfs_size_gb =
      FORKVM_TRY(merge_size(r, "rootfsSizeGb", top_disk, t ? t->rootfs_size_gb : std::nullopt));
  return q;
}

ApiResult<CreateSnapshotRequest> parse_create_snapshot(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::CreateSnapshotBadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  CreateSnapshotRequest q;
  q.name = FORKVM_TRY(r.opt_string("name"));
  const json::Value* spec = FORKVM_TRY(r.opt_object("spec"));
  const json::Value* tmpl = FORKVM_TRY(r.opt_object("template"));
  if (spec != nullptr && tmpl != nullptr) return r.error_here("give either `spec` or `template`, not both");
  if (spec == nullptr && tmpl == nullptr) return r.error_here("a `template` (or `spec`) is required");
  q.spec = spec != nullptr ? FORKVM_TRY(detail::read_layer(json::Reader(*spec, "spec", kCode), true, 1))
                           : FORKVM_TRY(detail::read_layer(json::Reader(*tmpl, "template", kCode), false, 1));
  q.persistence = FORKVM_TRY(detail::read_persistence(r, "persistence", false));
  q.docker_credentials = FORKVM_TRY(detail::read_docker_credentials(r, "dockerCredentials"));
  return q;
}

ApiResult<SnapshotVmRequest> parse_snapshot_vm(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::SnapshotVmBadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  SnapshotVmRequest q;
  q.name = FORKVM_TRY(r.opt_string("name"));
  q.persistence = FORKVM_TRY(detail::read_persistence(r, "persistence", false));
  return q;
}

ApiResult<UpdateSnapshotRequest> parse_update_snapshot(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::BadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  UpdateSnapshotRequest q;
  q.name_present = doc.HasMember("name");
  q.name = FORKVM_TRY(r.opt_string("name"));
  return q;
}

ApiResult<StartVmRequest> parse_start_vm(std::string_view body) {
  auto doc = FORKVM_TRY(json::parse_object(body, ErrorCode::BadRequest));
  json::Reader r(doc, "", ErrorCode::BadRequest);
  StartVmRequest q;
  q.idle_timeout_seconds = FORKVM_TRY(r.opt_int("idleTimeoutSeconds", 0, kI64Max));
  q.ready_signal_timeout_seconds = FORKVM_TRY(r.opt_int("readySignalTimeoutSeconds", 0, kI64Max));
  q.activity_threshold_bytes = FORKVM_TRY(r.opt_int("activityThresholdBytes", 0, kI64Max));
  q.wait_for_ready_signal = FORKVM_TRY(r.opt_bool("waitForReadySignal"));
  return q;
}

ApiResult<ForkVmRequest> parse_fork_vm(std::string_view body) {
  // The SDK's table has no fork-specific bad-input code; BAD_REQUEST it knows.
  constexpr ErrorCode kCode = ErrorCode::BadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  ForkVmRequest q;
  q.count = FORKVM_TRY(r.opt_int("count", 1, kMaxForkCount)).value_or(1);
  return q;
}

ApiResult<ResizeVmRequest> parse_resize_vm(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::InvalidParameters;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  ResizeVmRequest q;
  q.rootfs_size_gb = FORKVM_TRY(r.opt_int("rootfsSizeGb", 1, kMaxRootfsSizeGb));
  q.mem_size_gb = FORKVM_TRY(r.opt_int("memSizeGb", 1, kMaxMemSizeGb));
  q.vcpu_count = FORKVM_TRY(r.opt_int("vcpuCount", 1, kMaxVcpuCount));
  if (!q.rootfs_size_gb && !q.mem_size_gb && !q.vcpu_count)
    return r.error_here("give at least one of rootfsSizeGb, memSizeGb, vcpuCount");
  return q;
}

ApiResult<ExecRequest> parse_exec(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::BadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  ExecRequest q;
  auto command = FORKVM_TRY(r.opt_string("command"));
  if (!command || command->find_first_not_of(" \t\r\n") == std::string::npos)
    return api_error(ErrorCode::ExecEmpty, "command must be a non-empty string");
  q.command = std::move(*command);
  q.terminal = FORKVM_TRY(r.opt_string("terminal"));
  q.timeout_ms = FORKVM_TRY(r.opt_int("timeoutMs", 0, kI64Max));
  return q;
}

ApiResult<WriteFileRequest> parse_write_file(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::FilesBadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  std::string content = FORKVM_TRY(r.req_string("content"));
  auto encoding = FORKVM_TRY(r.opt_string("encoding"));
  WriteFileRequest q;
  if (!encoding || *encoding == "utf8" || *encoding == "utf-8") {
    q.bytes = std::move(content);
  } else if (*encoding == "base64") {
    auto bytes = base64_decode(content);
    if (!bytes) return r.error("content", "is not valid base64");
    q.bytes = std::move(*bytes);
  } else {
    return r.error("encoding", "must be \"utf8\", \"utf-8\" or \"base64\"");
  }
  return q;
}

ApiResult<SystemdUnit> parse_systemd_unit(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::BadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  if (!r.has("name")) return api_error(ErrorCode::ServiceNameEmpty, "name is required");
  SystemdUnit unit = FORKVM_TRY(detail::read_unit(r, false));
  FORKVM_CHECK(validate_service_name(unit.name));
  return unit;
}

ApiResult<BatchServiceRequest> parse_batch_services(std::string_view body) {
  constexpr ErrorCode kCode = ErrorCode::BadRequest;
  auto doc = FORKVM_TRY(json::parse_object(body, kCode));
  json::Reader r(doc, "", kCode);
  const json::Value* services = FORKVM_TRY(r.req_array("services"));
  BatchServiceRequest q;
  for (rapidjson::SizeType i = 0; i < services->Size(); i++) {
    json::Reader s = FORKVM_TRY(json::element_reader((*services)[i], fmt::format("services[{}]", i), kCode));
    std::string id = FORKVM_TRY(s.req_string("id"));
    FORKVM_CHECK(validate_service_name(id));
    q.service_ids.push_back(std::move(id));
  }
  return q;
}

}  // namespace forkvm::api
