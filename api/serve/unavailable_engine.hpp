// The engine `forkvm serve` uses until the VMM-backed engine is wired in:
// every operation answers 501 NOT_IMPLEMENTED and says so plainly. It never
// pretends: no fake VMs, no made-up output.
#pragma once

#include <memory>
#include <string>

#include "api/engine/engine.hpp"

namespace forkvm::api {

[[nodiscard]] std::unique_ptr<VmEngine> make_unavailable_engine(
    std::string reason = "this build has no VM engine");

}  // namespace forkvm::api
