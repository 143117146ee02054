// What `forkvm run` and `forkvm restore` share: the host-side options
// (disks, console, vsock, network slot) and, once a Machine exists, the
// optional control socket, SIGINT/SIGTERM as a stop request, running it, and
// turning the exit into the documented process status.
#pragma once

#include <optional>
#include <string>

#include "api/cli/args.hpp"
#include "vmm/machine.hpp"

namespace forkvm::cli {

// --disk PATH[,ro] | chain:DIR[,ro] (repeated), --console, --vsock/--vsock-cid and
// --net-slot into `c`; `net` is true when a network device is asked for.
Status host_options(const Args& args, bool net, MachineConfig& c);

// `name` prefixes messages ("forkvm run"). Returns the process exit status.
int run_machine(Machine& machine, const char* name, const std::optional<std::string>& control_path);

}  // namespace forkvm::cli
