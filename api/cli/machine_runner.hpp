// What `forkvm run` and `forkvm restore` share once a Machine exists: the
// optional control socket, SIGINT/SIGTERM as a stop request, running it, and
// turning the exit into the documented process status.
#pragma once

#include <optional>
#include <string>

#include "vmm/machine.hpp"

namespace forkvm::cli {

// `name` prefixes messages ("forkvm run"). Returns the process exit status.
int run_machine(Machine& machine, const char* name, const std::optional<std::string>& control_path);

}  // namespace forkvm::cli
