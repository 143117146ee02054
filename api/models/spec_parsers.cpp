#include "api/models/spec_parsers.hpp"

#include <fmt/format.h>

#include <limits>

#include "api/models/base64.hpp"
#include "api/models/ids.hpp"
#include "vmm/result.hpp"

namespace forkvm::api::detail {

namespace {

constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();

ApiResult<std::vector<json::Reader>> elements(const json::Reader& r, const char* key) {
  const json::Value* arr = FORKVM_TRY(r.opt_array(key));
  std::vector<json::Reader> out;
  if (arr == nullptr) return out;
  for (rapidjson::SizeType i = 0; i < arr->Size(); i++)
    out.push_back(
        FORKVM_TRY(json::element_reader((*arr)[i], fmt::format("{}[{}]", r.path(key), i), r.code())));
  return out;
}

bool one_of(const std::string& v, std::initializer_list<std::string_view> allowed) {
  for (auto a : allowed)
    if (v == a) return true;
  return false;
}

}  // namespace

ApiStatus check_snapshot_id(const json::Reader& r, const char* key, const std::optional<std::string>& id) {
  if (id && !is_snapshot_id(*id))
    return r.error(
        key, fmt::format("'{}' is not a snapshot id (sc- followed by 20 lowercase letters or digits)", *id));
  return {};
}

ApiResult<std::optional<Persistence>> read_persistence(const json::Reader& r, const char* key,
                                                       bool allow_ephemeral) {
  const json::Value* obj = FORKVM_TRY(r.opt_object(key));
  if (obj == nullptr) return std::optional<Persistence>{};
  json::Reader p(*obj, r.path(key), r.code());
  std::string type = FORKVM_TRY(p.req_string("type"));
  Persistence out;
  if (type == "sticky") {
    out.kind = Persistence::Kind::sticky;
    out.priority = static_cast<int32_t>(FORKVM_TRY(p.opt_int("priority", 0, 10)).value_or(5));
  } else if (type == "persistent") {
    out.kind = Persistence::Kind::persistent;
  } else if (type == "ephemeral" && allow_ephemeral) {
    out.kind = Persistence::Kind::ephemeral;
    out.delete_event = FORKVM_TRY(p.opt_string("deleteEvent"));
    if (out.delete_event && !one_of(*out.delete_event, {"OnStop", "OnSuspend"}))
      return p.error("deleteEvent", "must be \"OnStop\" or \"OnSuspend\"");
  } else {
    return p.error("type", allow_ephemeral ? "must be \"sticky\", \"ephemeral\" or \"persistent\""
                                           : "must be \"sticky\" or \"persistent\"");
  }
  return std::optional<Persistence>{out};
}

ApiResult<std::optional<std::vector<PortMapping>>> read_ports(const json::Reader& r, const char* key) {
  if (!r.has(key)) return std::optional<std::vector<PortMapping>>{};
  std::vector<PortMapping> out;
  for (const auto& e : FORKVM_TRY(elements(r, key))) {
    auto port = FORKVM_TRY(e.opt_int("port", 0, 65535));
    auto target = FORKVM_TRY(e.opt_int("targetPort", 0, 65535));
    if (!port) return e.error("port", "is required (an integer)");
    if (!target) return e.error("targetPort", "is required (an integer)");
    out.push_back({static_cast<int32_t>(*port), static_cast<int32_t>(*target)});
  }
  return std::optional<std::vector<PortMapping>>{std::move(out)};
}

ApiResult<SystemdUnit> read_unit(const json::Reader& r, bool patch) {
  SystemdUnit u;
  u.name = FORKVM_TRY(r.req_string("name"));
  auto mode = FORKVM_TRY(r.opt_string("mode"));
  if (!mode && !patch) return r.error("mode", "is required (\"oneshot\" or \"service\")");
  if (mode && !one_of(*mode, {"oneshot", "service"}))
    return r.error("mode", "must be \"oneshot\" or \"service\"");
  u.mode = mode.value_or("");
  auto exec = FORKVM_TRY(r.opt_string_array("exec"));
  if (!exec && !patch) return r.error("exec", "is required (an array of commands)");
  u.exec = exec.value_or(std::vector<std::string>{});
  if (const json::Value* env = FORKVM_TRY(r.opt_object("env"))) {
    for (auto it = env->MemberBegin(); it != env->MemberEnd(); ++it) {
      std::string k(it->name.GetString(), it->name.GetStringLength());
      if (!it->value.IsString()) return r.error("env", fmt::format("value of '{}' must be a string", k));
      u.env[k] = std::string(it->value.GetString(), it->value.GetStringLength());
    }
  }
  u.user = FORKVM_TRY(r.opt_string("user"));
  u.group = FORKVM_TRY(r.opt_string("group"));
  u.workdir = FORKVM_TRY(r.opt_string("workdir"));
  u.after = FORKVM_TRY(r.opt_string_array("after"));
  u.requires_ = FORKVM_TRY(r.opt_string_array("requires"));
  u.on_failure = FORKVM_TRY(r.opt_string_array("onFailure"));
  u.wanted_by = FORKVM_TRY(r.opt_string_array("wantedBy"));
  u.enable = FORKVM_TRY(r.opt_bool("enable"));
  u.delete_after_success = FORKVM_TRY(r.opt_bool("deleteAfterSuccess"));
  u.remain_after_exit = FORKVM_TRY(r.opt_bool("remainAfterExit"));
  u.ready_signal = FORKVM_TRY(r.opt_bool("readySignal"));
  u.timeout_sec = FORKVM_TRY(r.opt_int("timeoutSec", 0, kI64Max));
  u.watchdog_sec = FORKVM_TRY(r.opt_int("watchdogSec", 0, kI64Max));
  if (const json::Value* rp = FORKVM_TRY(r.opt_object("restartPolicy"))) {
    json::Reader p(*rp, r.path("restartPolicy"), r.code());
    RestartPolicy policy;
    policy.policy = FORKVM_TRY(p.req_string("policy"));
    if (!one_of(policy.policy, {"no", "on-failure", "always", "on-abnormal"}))
      return p.error("policy", "must be \"no\", \"on-failure\", \"always\" or \"on-abnormal\"");
    policy.restart_sec = FORKVM_TRY(p.opt_int("restartSec", 0, kI64Max));
    policy.start_limit_burst = FORKVM_TRY(p.opt_int("startLimitBurst", 0, kI32Max));
    policy.start_limit_interval_sec = FORKVM_TRY(p.opt_int("startLimitIntervalSec", 0, kI64Max));
    u.restart_policy = policy;
  }
  return u;
}

ApiResult<std::optional<SystemdConfig>> read_systemd(const json::Reader& r, const char* key) {
  const json::Value* obj = FORKVM_TRY(r.opt_object(key));
  if (obj == nullptr) return std::optional<SystemdConfig>{};
  json::Reader s(*obj, r.path(key), r.code());
  SystemdConfig cfg;
  for (const auto& e : FORKVM_TRY(elements(s, "services")))
    cfg.services.push_back(FORKVM_TRY(read_unit(e, false)));
  for (const auto& e : FORKVM_TRY(elements(s, "patchedServices")))
    cfg.patched_services.push_back(FORKVM_TRY(read_unit(e, true)));
  return std::optional<SystemdConfig>{std::move(cfg)};
}

ApiResult<std::vector<LinuxUser>> read_users(const json::Reader& r, const char* key) {
  std::vector<LinuxUser> out;
  for (const auto& e : FORKVM_TRY(elements(r, key))) {
    LinuxUser u;
    u.name = FORKVM_TRY(e.req_string("name"));
    if (u.name.empty()) return e.error("name", "must not be empty");
    u.uid = FORKVM_TRY(e.opt_int("uid", 0, kI32Max));
    u.gecos = FORKVM_TRY(e.opt_string("gecos"));
    u.home = FORKVM_TRY(e.opt_string("home"));
    u.shell = FORKVM_TRY(e.opt_string("shell"));
    u.groups = FORKVM_TRY(e.opt_string_array("groups")).value_or(std::vector<std::string>{});
    u.system = FORKVM_TRY(e.opt_bool("system")).value_or(false);
    out.push_back(std::move(u));
  }
  return out;
}

ApiResult<std::vector<LinuxGroup>> read_groups(const json::Reader& r, const char* key) {
  std::vector<LinuxGroup> out;
  for (const auto& e : FORKVM_TRY(elements(r, key))) {
    LinuxGroup g;
    g.name = FORKVM_TRY(e.req_string("name"));
    if (g.name.empty()) return e.error("name", "must not be empty");
    g.gid = FORKVM_TRY(e.opt_int("gid", 0, kI32Max));
    g.system = FORKVM_TRY(e.opt_bool("system")).value_or(false);
    out.push_back(std::move(g));
  }
  return out;
}

ApiResult<std::map<std::string, FileContent>> read_files(const json::Reader& r, const char* key) {
  std::map<std::string, FileContent> out;
  const json::Value* obj = FORKVM_TRY(r.opt_object(key));
  if (obj == nullptr) return out;
  for (auto it = obj->MemberBegin(); it != obj->MemberEnd(); ++it) {
    std::string path(it->name.GetString(), it->name.GetStringLength());
    FORKVM_CHECK(validate_guest_path(path, r.code()));
    json::Reader f =
        FORKVM_TRY(json::element_reader(it->value, fmt::format("{}[\"{}\"]", r.path(key), path), r.code()));
    std::string content = FORKVM_TRY(f.req_string("content"));
    // The spec's enum is utf8|base64; the SDK sends "utf-8"; absent = text.
    auto encoding = FORKVM_TRY(f.opt_string("encoding"));
    FileContent file;
    if (!encoding || *encoding == "utf8" || *encoding == "utf-8") {
      file.bytes = std::move(content);
    } else if (*encoding == "base64") {
      auto bytes = base64_decode(content);
      if (!bytes) return f.error("content", "is not valid base64");
      file.bytes = std::move(*bytes);
    } else {
      return f.error("encoding", "must be \"utf8\", \"utf-8\" or \"base64\"");
    }
    file.executable = FORKVM_TRY(f.opt_bool("executable")).value_or(false);
    out[path] = std::move(file);
  }
  return out;
}

ApiResult<std::vector<GitRepo>> read_git_repos(const json::Reader& r, const char* key) {
  std::vector<GitRepo> out;
  for (const auto& e : FORKVM_TRY(elements(r, key))) {
    GitRepo g;
    g.repo = FORKVM_TRY(e.req_string("repo"));
    g.path = FORKVM_TRY(e.req_string("path"));
    g.rev = FORKVM_TRY(e.opt_string("rev"));
    out.push_back(std::move(g));
  }
  return out;
}

ApiResult<std::optional<GitOptions>> read_git(const json::Reader& r, const char* key) {
  const json::Value* obj = FORKVM_TRY(r.opt_object(key));
  if (obj == nullptr) return std::optional<GitOptions>{};
  json::Reader g(*obj, r.path(key), r.code());
  GitOptions out;
  // `config` is required by the spec, but the SDK fills `{}` in for users who
  // omit it, so an absent config means the same thing.
  if (const json::Value* cfg = FORKVM_TRY(g.opt_object("config"))) {
    json::Reader c(*cfg, g.path("config"), r.code());
    if (const json::Value* user = FORKVM_TRY(c.opt_object("user"))) {
      json::Reader u(*user, c.path("user"), r.code());
      out.user_name = FORKVM_TRY(u.opt_string("name"));
      out.user_email = FORKVM_TRY(u.opt_string("email"));
      out.user_signing_key = FORKVM_TRY(u.opt_string("signingkey"));
    }
  }
  out.repos = FORKVM_TRY(read_git_repos(g, "repos"));
  return std::optional<GitOptions>{std::move(out)};
}

ApiResult<std::optional<DockerCredentials>> read_docker_credentials(const json::Reader& r, const char* key) {
  const json::Value* obj = FORKVM_TRY(r.opt_object(key));
  if (obj == nullptr) return std::optional<DockerCredentials>{};
  json::Reader d(*obj, r.path(key), r.code());
  DockerCredentials c;
  c.registry = FORKVM_TRY(d.req_string("registry"));
  c.username = FORKVM_TRY(d.req_string("username"));
  c.password = FORKVM_TRY(d.req_string("password"));
  return std::optional<DockerCredentials>{std::move(c)};
}

ApiResult<std::unique_ptr<LayerSpec>> read_layer(const json::Reader& r, bool nested, int depth) {
  if (depth > kMaxSpecDepth)
    return r.error_here(fmt::format("snapshot layers nest deeper than {}", kMaxSpecDepth));
  auto l = std::make_unique<LayerSpec>();
  if (nested) {
    if (const json::Value* inner = FORKVM_TRY(r.opt_object("snapshot")))
      l->base = FORKVM_TRY(read_layer(json::Reader(*inner, r.path("snapshot"), r.code()), true, depth + 1));
  }
  l->snapshot_id = FORKVM_TRY(r.opt_string("snapshotId"));
  FORKVM_CHECK(check_snapshot_id(r, "snapshotId", l->snapshot_id));
  if (const json::Value* image = FORKVM_TRY(r.opt_object("baseImage"))) {
    json::Reader b(*image, r.path("baseImage"), r.code());
    l->dockerfile = FORKVM_TRY(b.req_string("dockerfileContent"));
  }
  int sources = (l->base ? 1 : 0) + (l->snapshot_id ? 1 : 0) + (l->dockerfile ? 1 : 0);
  if (sources > 1) return r.error_here("snapshot, snapshotId and baseImage are mutually exclusive");
  l->rootfs_size_gb = FORKVM_TRY(r.opt_int("rootfsSizeGb", 1, kMaxRootfsSizeGb));
  l->mem_size_gb = FORKVM_TRY(r.opt_int("memSizeGb", 1, kMaxMemSizeGb));
  l->vcpu_count = FORKVM_TRY(r.opt_int("vcpuCount", 1, kMaxVcpuCount));
  l->workdir = FORKVM_TRY(r.opt_string("workdir"));
  l->idle_timeout_seconds = FORKVM_TRY(r.opt_int("idleTimeoutSeconds", 0, kI64Max));
  l->ready_signal_timeout_seconds = FORKVM_TRY(r.opt_int("readySignalTimeoutSeconds", 0, kI64Max));
  l->wait_for_ready_signal = FORKVM_TRY(r.opt_bool("waitForReadySignal"));
  l->persistence = FORKVM_TRY(read_persistence(r, "persistence", true));
  l->ports = FORKVM_TRY(read_ports(r, "ports"));
  l->systemd = FORKVM_TRY(read_systemd(r, "systemd"));
  l->users = FORKVM_TRY(read_users(r, "users"));
  l->groups = FORKVM_TRY(read_groups(r, "groups"));
  l->additional_files = FORKVM_TRY(read_files(r, "additionalFiles"));
  l->git_repos = FORKVM_TRY(read_git_repos(r, "gitRepos"));
  l->git = FORKVM_TRY(read_git(r, "git"));
  l->apt_deps = FORKVM_TRY(r.opt_string_array("aptDeps")).value_or(std::vector<std::string>{});
  l->discriminator = FORKVM_TRY(r.opt_string("discriminator"));
  l->skip_cache = FORKVM_TRY(r.opt_bool("skipCache"));
  l->canonical = json::canonical(r.object(), {"snapshot", "skipCache"});
  return l;
}

}  // namespace forkvm::api::detail
