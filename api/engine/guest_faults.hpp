// A guest kernel's own report of a fault on its console (panic, oops, RCU
// stall, soft lockup): the first such line, for the server's log. A VM that
// hangs answers nothing over vsock; its console says why.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkvm::engine {

// The first line of `console` that reports a guest kernel fault.
[[nodiscard]] std::optional<std::string> find_guest_fault(std::string_view console);

// The same over the tail of a console file (nullopt when missing).
[[nodiscard]] std::optional<std::string> guest_fault_in_console(const std::string& path);

}  // namespace forkvm::engine
