// Child processes for the agent: spawn with a given identity, environment
// and working directory in a new session (so a timeout can kill the whole
// process group), and an I/O loop that pumps stdin/stdout/stderr with caps,
// timeouts and cancellation. Used by exec, systemctl/journalctl calls and
// useradd/groupadd.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "guestinit/protocol.hpp"
#include "guestinit/users.hpp"
#include "vmm/result.hpp"

namespace forkvm::agent {

class Stream;

struct SpawnOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  // merged over the base environment
  std::string cwd;                         // empty: the account's home, else "/"
  std::optional<Account> account;          // nullopt: stay the agent's identity
  int stdin_fd = -1;                       // -1: /dev/null
  int stdout_fd = -1;                      // -1: /dev/null
  int stderr_fd = -1;
  int controlling_tty = -1;  // a pty slave to make the session's terminal
};

// The base environment a command starts with: PATH and the account's
// HOME/USER/LOGNAME/SHELL. Request variables override it.
std::vector<std::string> build_environment(const SpawnOptions& o);

// Forks and execs; a failure before exec (chdir, setuid, execve) comes back
// as an error naming the step instead of a silent exit status.
Result<pid_t> spawn(const SpawnOptions& o);

struct RunLimits {
  int64_t timeout_ms = 0;   // 0: none
  uint64_t max_output = 0;  // per stream; 0: unlimited
};

struct RunOutcome {
  int exit_code = -1;  // a signal n is reported as 128+n, as shells do
  int signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  uint64_t stdout_bytes = 0;
  uint64_t stderr_bytes = 0;
  int64_t duration_ms = 0;
};

// Output sink: returns false to abandon the run (the host went away).
using OutputFn = std::function<bool(Channel, std::string_view)>;

// Runs o (its stdio fds are replaced by pipes) to completion. stdin comes
// from `input` and then, when `stream` is given and `stream_input` is set,
// from the stream's Input frames until EOF. Cancellation of the stream
// kills the process group.
Result<RunOutcome> run_process(SpawnOptions o, std::string input, Stream* stream, bool stream_input,
                               const RunLimits& limits, const OutputFn& out);

// Convenience for helper commands (systemctl, useradd): captures both
// outputs (capped at 4 MiB each) with a timeout.
struct Captured {
  RunOutcome outcome;
  std::string out;
  std::string err;
};
Result<Captured> run_capture(std::vector<std::string> argv, int64_t timeout_ms = 30000);

}  // namespace forkvm::agent
