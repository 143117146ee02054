// The standby socket: how a VMM made ahead of time (`forkvm restore
// --standby PATH`, its KVM VM and vCPUs ready: vmm/prepared_vm.hpp) learns
// which snapshot to restore. One claim per standby, over a Unix stream
// socket that exists only once the standby accepts on it:
//
//   claimer -> standby: NUL-terminated fields, then end of stream (shutdown):
//                       LOG_PATH, then the `forkvm restore` options
//                       (--snapshot DIR --disk ... --vsock ...)
//   standby -> claimer: one line, "ok RESTORE_MS" once the machine is
//                       restored (its vCPUs start right after), or
//                       "error MESSAGE"
//
// The standby writes its output to LOG_PATH from then on, and is from then
// on an ordinary VMM process of that VM.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::standby {

struct Claim {
  UniqueFd connection;  // answer() on it
  std::string log_path;
  std::vector<std::string> restore_args;
};

// Listens on `path` (bound under a temporary name and renamed, so the path
// appears only when a connect is accepted) and returns the first claim.
// A claimer that sends nothing within `request_limit` is an error.
Result<Claim> await_claim(const std::string& path, std::chrono::milliseconds request_limit);

// The standby's answer: restored in `ms`, or why not. Closes the connection.
void answer(UniqueFd connection, const Status& restored, double ms);

// The claimer's side: hands the standby at `path` its restore and returns
// the restore time it reports, or its error. Bounded by `limit`.
Result<double> claim(const std::string& path, const std::string& log_path,
                     const std::vector<std::string>& restore_args, std::chrono::milliseconds limit);

}  // namespace forkvm::standby
