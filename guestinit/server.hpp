// The agent's listening socket: vsock (in a guest) or a Unix socket (tests
// on a host), one thread per accepted connection.
#pragma once

#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

// "vsock:PORT" or "unix:/path".
Result<UniqueFd> listen_on(const std::string& spec);
// Accepts forever; returns only on a fatal accept error.
Status serve(UniqueFd listener);

}  // namespace forkvm::agent
