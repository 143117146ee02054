// Milliseconds since a steady-clock instant: the unit of every duration the
// VMM, the engine and the benchmarks report.
#pragma once

#include <chrono>

namespace forkvm {

inline double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace forkvm
