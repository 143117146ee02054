// Runs a program with its stdout and stderr on one pipe and watches the
// output for a marker, with a bound on every wait. Used by the benchmarks.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::cli {

struct TimedRun {
  double marker_ms = -1;  // process start to the marker's appearance; -1 if it never appeared
  double exit_ms = -1;    // process start to its exit
  int status = -1;        // exit status, or 128 + signal
  std::string output;     // everything it printed
};

// Starts argv[0] (searched in PATH), and returns when it exits or `timeout`
// passes (then it is killed and an error says so). With stop_at_marker the
// process gets SIGTERM as soon as the marker appears (a guest that keeps running).
Result<TimedRun> run_timed(const std::vector<std::string>& argv, const std::string& marker,
                           std::chrono::milliseconds timeout, bool stop_at_marker = false);

}  // namespace forkvm::cli
