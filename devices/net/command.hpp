// Runs a host tool (ip, nft) to set up per-VM networking. Setup is a handful
// of commands per VM, done before the guest starts, so a fork+exec each is
// cheap enough and keeps the exact commands visible in errors and logs.
#pragma once

#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::net {

// The absolute path of `tool` in $PATH, /usr/sbin or /sbin, or an error
// naming the package to install ("nft not found (apt-get install nftables)").
[[nodiscard]] Result<std::string> find_tool(const std::string& tool, const std::string& package);

// Runs argv (argv[0] an absolute path) and waits; a non-zero exit is an
// error carrying the command line and what it printed on stderr.
[[nodiscard]] Status run_command(const std::vector<std::string>& argv);

}  // namespace forkvm::net
