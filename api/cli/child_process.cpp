#include "api/cli/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/elapsed.hpp"
#include "vmm/unique_fd.hpp"

extern char** environ;

namespace forkvm::cli {
namespace {

using Clock = std::chrono::steady_clock;

int decode_status(int ws) { return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws); }

}  // namespace

Result<TimedRun> run_timed(const std::vector<std::string>& argv, const std::string& marker,
                           std::chrono::milliseconds timeout, bool stop_at_marker) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error("pipe");
  UniqueFd read_end(fds[0]);
  UniqueFd write_end(fds[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  const auto t0 = Clock::now();
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return errno_error(fmt::format("start {}", argv[0]), rc);
  write_end.reset();

  TimedRun run;
  char buf[4096];
  for (;;) {
    const double left = static_cast<double>(timeout.count()) - ms_since(t0);
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return make_error("{} did not finish within {} ms{}", argv[0], timeout.count(),
                        run.marker_ms < 0 ? " and never printed its marker" : "");
    }
    pollfd p{read_end.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left) + 1) <= 0) continue;
    ssize_t n = ::read(read_end.get(), buf, sizeof(buf));
    if (n <= 0) break;  // every writer closed: the process is exiting
    run.output.append(buf, static_cast<size_t>(n));
    // Search only the tail that can hold a marker that just completed.
    if (run.marker_ms < 0) {
      const size_t from = run.output.size() > static_cast<size_t>(n) + marker.size()
                              ? run.output.size() - static_cast<size_t>(n) - marker.size()
                              : 0;
      if (run.output.find(marker, from) != std::string::npos) {
        run.marker_ms = ms_since(t0);
        if (stop_at_marker) ::kill(pid, SIGTERM);
      }
    }
  }
  int ws = 0;
  ::waitpid(pid, &ws, 0);
  run.exit_ms = ms_since(t0);
  run.status = decode_status(ws);
  return run;
}

}  // namespace forkvm::cli
