// Unix stream socket addresses and connects, for the VMM's sockets (control,
// vsock, standby). `what` names the socket in errors ("control socket").
#pragma once

#include <sys/un.h>

#include <string>
#include <string_view>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

// The address of `path`: refused when empty or too long for sun_path.
Result<sockaddr_un> unix_address(const std::string& path, std::string_view what);

// A blocking, close-on-exec connection to `path`.
Result<UniqueFd> connect_unix(const std::string& path, std::string_view what);

}  // namespace forkvm
