// Typed request bodies for every endpoint of the Freestyle VMs API, and the
// functions that validate JSON into them. Field names follow the OpenAPI
// document; SDK-only extras (top-level vcpuCount/memSizeGb/rootfsSizeGb on
// create, "utf-8" file encoding) are accepted as sdk-wire-notes §6 says.
// Everything here is plain data: the engine receives these structs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/models/api_error.hpp"

namespace forkvm::api {

// Limits that keep one request from asking for absurd resources. The engine
// may refuse smaller values for host reasons; these are the wire bounds.
inline constexpr int64_t kMaxForkCount = 64;
inline constexpr int64_t kMaxVcpuCount = 64;
inline constexpr int64_t kMaxMemSizeGb = 512;
inline constexpr int64_t kMaxRootfsSizeGb = 4096;
inline constexpr int kMaxSpecDepth = 16;  // nested spec.snapshot layers
inline constexpr size_t kMaxServiceNameLength = 128;

struct PortMapping {
  int32_t port = 0;
  int32_t target_port = 0;
};

// VmPersistence / SnapshotPersistence: sticky (priority 0..10, default 5),
// ephemeral (VMs only; deleteEvent OnStop|OnSuspend) or persistent.
struct Persistence {
  enum class Kind { sticky, ephemeral, persistent };
  Kind kind = Kind::sticky;
  int32_t priority = 5;
  std::optional<std::string> delete_event;
};

struct FileContent {
  std::string bytes;  // decoded
  bool executable = false;
};

struct RestartPolicy {
  std::string policy;  // no | on-failure | always | on-abnormal
  std::optional<int64_t> restart_sec;
  std::optional<int64_t> start_limit_burst;
  std::optional<int64_t> start_limit_interval_sec;
};

// SystemdUnitSpec; also SystemdUnitSpecPatch, where everything but the name
// may be missing (`mode`/`exec` empty then).
struct SystemdUnit {
  std::string name;
  std::string mode;  // oneshot | service
  std::vector<std::string> exec;
  std::map<std::string, std::string> env;
  std::optional<std::string> user, group, workdir;
  std::optional<std::vector<std::string>> after, requires_, on_failure,
      wanted_by;  // requires_: C++20 keyword
  std::optional<bool> enable, delete_after_success, remain_after_exit, ready_signal;
  std::optional<int64_t> timeout_sec, watchdog_sec;
  std::optional<RestartPolicy> restart_policy;
};

struct SystemdConfig {
  std::vector<SystemdUnit> services;
  std::vector<SystemdUnit> patched_services;
};

struct LinuxUser {
  std::string name;
  std::optional<int64_t> uid;
  std::optional<std::string> gecos, home, shell;
  std::vector<std::string> groups;
  bool system = false;
};

struct LinuxGroup {
  std::string name;
  std::optional<int64_t> gid;
  bool system = false;
};

struct GitRepo {
  std::string repo, path;
  std::optional<std::string> rev;
};

struct GitOptions {
  std::optional<std::string> user_name, user_email, user_signing_key;
  std::vector<GitRepo> repos;
};

struct DockerCredentials {
  std::string registry, username, password;
};

struct DomainMapping {
  std::string domain;
  std::optional<int32_t> vm_port;
};

// VmTemplate and SnapshotSpec are one shape: SnapshotSpec adds the recursive
// `snapshot` (the layer below this one). A layer is what a snapshot caches.
struct LayerSpec {
  std::unique_ptr<LayerSpec> base;  // spec.snapshot: built first, innermost first
  std::optional<std::string> snapshot_id;
  std::optional<std::string> dockerfile;  // baseImage.dockerfileContent
  std::optional<int64_t> rootfs_size_gb, mem_size_gb, vcpu_count;
  std::optional<std::string> workdir;
  std::optional<int64_t> idle_timeout_seconds, ready_signal_timeout_seconds;
  std::optional<bool> wait_for_ready_signal;
  std::optional<Persistence> persistence;
  std::optional<std::vector<PortMapping>> ports;
  std::optional<SystemdConfig> systemd;
  std::vector<LinuxUser> users;
  std::vector<LinuxGroup> groups;
  std::map<std::string, FileContent> additional_files;
  std::vector<GitRepo> git_repos;  // VmTemplate.gitRepos (deprecated)
  std::optional<GitOptions> git;
  std::vector<std::string> apt_deps;
  std::optional<std::string> discriminator;
  std::optional<bool> skip_cache;
  // This layer's JSON in json::canonical form, without its inner layer
  // (`snapshot`) and `skipCache`: what the snapshot cache is keyed by,
  // together with the layer's base.
  std::string canonical;
};

struct CreateVmRequest {
  std::optional<std::string> name;
  std::optional<std::string> spec_name;  // spec.name
  std::unique_ptr<LayerSpec> spec;       // spec.snapshot
  std::unique_ptr<LayerSpec> template_;  // template
  std::optional<std::string> snapshot_id;
  // Per-VM settings, top level. Sizes also arrive here from the SDK.
  std::optional<int64_t> idle_timeout_seconds, ready_signal_timeout_seconds, activity_threshold_bytes;
  std::optional<bool> wait_for_ready_signal, recreate;
  std::optional<std::string> workdir;
  std::optional<Persistence> persistence;
  std::optional<std::vector<PortMapping>> ports;
  std::optional<SystemdConfig> systemd;
  std::vector<LinuxUser> users;
  std::vector<LinuxGroup> groups;
  std::map<std::string, FileContent> additional_files;
  std::vector<GitRepo> git_repos;
  std::optional<GitOptions> git;
  std::vector<std::string> apt_deps;
  std::vector<DomainMapping> domains;
  std::optional<DockerCredentials> docker_credentials;
  std::optional<std::string> discriminator;
  std::optional<bool> skip_cache;
  // Effective sizes: the top-level value, else template's (they must agree).
  std::optional<int64_t> vcpu_count, mem_size_gb, rootfs_size_gb;
};

struct CreateSnapshotRequest {
  std::optional<std::string> name;
  std::unique_ptr<LayerSpec> spec;  // `spec` or `template`, exactly one
  std::optional<Persistence> persistence;
  std::optional<DockerCredentials> docker_credentials;
};

struct SnapshotVmRequest {
  std::optional<std::string> name;
  std::optional<Persistence> persistence;
};

struct UpdateSnapshotRequest {
  bool name_present = false;  // {"name": null} clears the name
  std::optional<std::string> name;
};

struct StartVmRequest {
  std::optional<int64_t> idle_timeout_seconds, ready_signal_timeout_seconds, activity_threshold_bytes;
  std::optional<bool> wait_for_ready_signal;
};

struct ForkVmRequest {
  int64_t count = 1;
};

struct ResizeVmRequest {
  std::optional<int64_t> rootfs_size_gb, mem_size_gb, vcpu_count;
};

struct ExecRequest {
  std::string command;
  std::optional<std::string> terminal;
  std::optional<int64_t> timeout_ms;
};

struct WriteFileRequest {
  std::string bytes;  // decoded content
};

struct BatchServiceRequest {
  std::vector<std::string> service_ids;
};

// Each parser takes the raw body and answers the endpoint's own bad-input
// code (CREATE_VM_BAD_REQUEST, FILES_BAD_REQUEST, ...).
[[nodiscard]] ApiResult<CreateVmRequest> parse_create_vm(std::string_view body);
[[nodiscard]] ApiResult<CreateSnapshotRequest> parse_create_snapshot(std::string_view body);
[[nodiscard]] ApiResult<SnapshotVmRequest> parse_snapshot_vm(std::string_view body);
[[nodiscard]] ApiResult<UpdateSnapshotRequest> parse_update_snapshot(std::string_view body);
[[nodiscard]] ApiResult<StartVmRequest> parse_start_vm(std::string_view body);
[[nodiscard]] ApiResult<ForkVmRequest> parse_fork_vm(std::string_view body);
[[nodiscard]] ApiResult<ResizeVmRequest> parse_resize_vm(std::string_view body);
[[nodiscard]] ApiResult<ExecRequest> parse_exec(std::string_view body);
[[nodiscard]] ApiResult<WriteFileRequest> parse_write_file(std::string_view body);
[[nodiscard]] ApiResult<SystemdUnit> parse_systemd_unit(std::string_view body);
[[nodiscard]] ApiResult<BatchServiceRequest> parse_batch_services(std::string_view body);

// A systemd service name as the guest will use it: non-empty, at most
// kMaxServiceNameLength, no '/' or NUL, not starting with '.' or '-'.
[[nodiscard]] ApiStatus validate_service_name(std::string_view name);

// A path inside the guest for files and additionalFiles: non-empty, no NUL.
[[nodiscard]] ApiStatus validate_guest_path(std::string_view path, ErrorCode code);

}  // namespace forkvm::api
