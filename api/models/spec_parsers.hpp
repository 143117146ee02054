// The shared pieces of request validation: the parts that appear both at the
// top of POST /v1/vms and inside templates and snapshot specs.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/models/json.hpp"
#include "api/models/requests.hpp"

namespace forkvm::api::detail {

ApiResult<std::optional<Persistence>> read_persistence(const json::Reader& r, const char* key,
                                                       bool allow_ephemeral);
ApiResult<std::optional<std::vector<PortMapping>>> read_ports(const json::Reader& r, const char* key);
ApiResult<std::optional<SystemdConfig>> read_systemd(const json::Reader& r, const char* key);
ApiResult<SystemdUnit> read_unit(const json::Reader& r, bool patch);
ApiResult<std::vector<LinuxUser>> read_users(const json::Reader& r, const char* key);
ApiResult<std::vector<LinuxGroup>> read_groups(const json::Reader& r, const char* key);
ApiResult<std::map<std::string, FileContent>> read_files(const json::Reader& r, const char* key);
ApiResult<std::vector<GitRepo>> read_git_repos(const json::Reader& r, const char* key);
ApiResult<std::optional<GitOptions>> read_git(const json::Reader& r, const char* key);
ApiResult<std::optional<DockerCredentials>> read_docker_credentials(const json::Reader& r, const char* key);
// A VmTemplate or SnapshotSpec object. `nested` allows the recursive
// `snapshot` member; depth counts layers so a hostile body cannot recurse
// without bound.
ApiResult<std::unique_ptr<LayerSpec>> read_layer(const json::Reader& r, bool nested, int depth);
// Checks a snapshot id field's format.
ApiStatus check_snapshot_id(const json::Reader& r, const char* key, const std::optional<std::string>& id);

}  // namespace forkvm::api::detail
