// Response bodies, one builder per schema of the OpenAPI document that is
// built from store records or engine results.
#pragma once

#include <string>
#include <vector>

#include "api/engine/engine.hpp"
#include "api/models/requests.hpp"
#include "api/store/store.hpp"

namespace forkvm::api::wire {

[[nodiscard]] std::string persistence(const Persistence& p);  // VmPersistence / SnapshotPersistence
[[nodiscard]] std::string vm_list(const VmList& list);        // ListVmsResponse
[[nodiscard]] std::string get_vm(const VmRecord& vm);         // GetVmResponse
[[nodiscard]] std::string created_vm(const CreatedVm& vm, const std::string& id);  // CreateVmResponse
[[nodiscard]] std::string snapshot_info(const SnapshotRecord& s);                  // SnapshotInfo
[[nodiscard]] std::string snapshot_list(const SnapshotList& list);                 // ListSnapshotsResponse
[[nodiscard]] std::string build(const BuildRecord& b);                             // BuildRecord
[[nodiscard]] std::string build_phases(
    const std::vector<BuildPhaseRecord>& phases);  // ListBuildPhasesResponse

}  // namespace forkvm::api::wire
