// Spawning and pumping child processes.
#include "guestinit/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "guestinit/stream.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kMaxPendingInput = 1u << 20;

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// What the child reports through its error pipe when a step before exec fails.
struct ChildError {
  int step;
  int err;
};
constexpr const char* kSteps[] = {"setsid", "controlling tty", "dup2",  "setgroups",
                                  "setgid", "setuid",          "chdir", "execve"};

[[noreturn]] void child_fail(int errpipe, int step) {
  ChildError e{step, errno};
  [[maybe_unused]] auto n = ::write(errpipe, &e, sizeof e);
  ::_exit(127);
}

// What the child needs, all of it made before the clone: the child must not allocate.
struct ChildArgs {
  const SpawnOptions* options;
  const char* cwd;
  char* const* argv;
  char* const* envp;
  int errpipe;
  int devnull;
};

// Runs in the child of a multithreaded parent, in the parent's memory: only
// async-signal-safe calls, and raw syscalls for identity so nothing takes glibc's locks.
[[noreturn]] int child_main(void* p) {
  const auto& [options, cwd, argv, envp, errpipe, devnull] = *static_cast<const ChildArgs*>(p);
  const SpawnOptions& o = *options;
  if (::setsid() < 0) child_fail(errpipe, 0);
  if (o.controlling_tty >= 0 && ::ioctl(o.controlling_tty, TIOCSCTTY, 0) < 0) child_fail(errpipe, 1);
  int fds[3] = {o.stdin_fd, o.stdout_fd, o.stderr_fd};
  for (int i = 0; i < 3; ++i)
    if (::dup2(fds[i] >= 0 ? fds[i] : devnull, i) < 0) child_fail(errpipe, 2);
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  if (o.account) {
    const Account& a = *o.account;
    if (::syscall(SYS_setgroups, a.groups.size(), a.groups.data()) != 0) child_fail(errpipe, 3);
    if (::syscall(SYS_setgid, a.gid) != 0) child_fail(errpipe, 4);
    if (::syscall(SYS_setuid, a.uid) != 0) child_fail(errpipe, 5);
  }
  if (::chdir(cwd) != 0) child_fail(errpipe, 6);
  ::execve(argv[0], argv, envp);
  child_fail(errpipe, 7);
}

// posix_spawn's way (clone with CLONE_VM | CLONE_VFORK): the child runs on a stack of its
// own in the agent's memory until it execs, while the calling thread waits. fork() copied
// the page tables and mappings of the whole agent for every command; in a forked VM each
// page that copy wrote was one more page the child VM owns alone.
Result<pid_t> clone_and_exec(const ChildArgs& args) {
  constexpr size_t kStackBytes = size_t{64} << 10;
  // Left uninitialized: the child's stack, written by the child as it runs.
  alignas(16) std::array<char, kStackBytes> stack;  // NOLINT(cppcoreguidelines-pro-type-member-init)
  // No signal may run a handler on memory the child shares; it sets its own mask.
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(child_main, stack.data() + stack.size(), CLONE_VM | CLONE_VFORK | SIGCHLD,
                      const_cast<ChildArgs*>(&args));
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) return errno_error("clone", clone_errno);
  return pid;
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return errno_error("pipe2");
  return std::pair{UniqueFd(p[0]), UniqueFd(p[1])};
}

void set_nonblock(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

std::vector<std::string> build_environment(const SpawnOptions& o) {
  std::map<std::string, std::string> env;
  env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (o.account) {
    env["HOME"] = o.account->home.empty() ? "/" : o.account->home;
    env["USER"] = o.account->name;
    env["LOGNAME"] = o.account->name;
    env["SHELL"] = o.account->shell.empty() ? "/bin/sh" : o.account->shell;
  } else {
    env["HOME"] = "/root";
    env["USER"] = "root";
    env["LOGNAME"] = "root";
    env["SHELL"] = "/bin/bash";
  }
  for (const auto& [k, v] : o.env) env[k] = v;
  std::vector<std::string> out;
  for (const auto& [k, v] : env)
    if (!k.empty() && k.find('=') == std::string::npos) out.push_back(k + "=" + v);
  return out;
}

Result<pid_t> spawn(const SpawnOptions& o) {
  if (o.argv.empty()) return make_error("spawn: empty argv");
  // Everything the child needs is built before the clone: it must not allocate.
  std::vector<std::string> env = build_environment(o);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = o.argv;
  // execve does not search PATH; resolve here, before the clone, where we may allocate.
  if (args[0].find('/') == std::string::npos) {
    for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
      std::string cand = fmt::format("{}/{}", dir, args[0]);
      if (::access(cand.c_str(), X_OK) == 0) {
        args[0] = cand;
        break;
      }
    }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string cwd = o.cwd;
  if (cwd.empty()) {
    cwd = "/";
    if (o.account && !o.account->home.empty() && ::access(o.account->home.c_str(), X_OK) == 0)
      cwd = o.account->home;
  }
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  auto [err_r, err_w] = FORKVM_TRY(make_pipe());

  pid_t pid =
      FORKVM_TRY(clone_and_exec({&o, cwd.c_str(), argv.data(), envp.data(), err_w.get(), devnull.get()}));
  err_w.reset();
  ChildError ce{};
  ssize_t n;
  do n = ::read(err_r.get(), &ce, sizeof ce);
  while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof ce)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    const char* step = ce.step >= 0 && ce.step < 8 ? kSteps[ce.step] : "?";
    if (ce.step == 6) return errno_error(fmt::format("chdir {}", cwd), ce.err);
    return errno_error(fmt::format("{} {}", step, o.argv[0]), ce.err);
  }
  return pid;
}

Result<RunOutcome> run_process(SpawnOptions o, std::string input, Stream* stream, bool stream_input,
                               const RunLimits& limits, const OutputFn& out) {
  auto [out_r, out_w] = FORKVM_TRY(make_pipe());
  auto [errp_r, errp_w] = FORKVM_TRY(make_pipe());
  bool want_stdin = !input.empty() || (stream != nullptr && stream_input);
  UniqueFd in_r, in_w;
  if (want_stdin) std::tie(in_r, in_w) = FORKVM_TRY(make_pipe());
  o.stdin_fd = in_r.get();
  o.stdout_fd = out_w.get();
  o.stderr_fd = errp_w.get();
  auto start = Clock::now();
  pid_t pid = FORKVM_TRY(spawn(o));
  in_r.reset();
  out_w.reset();
  errp_w.reset();
  set_nonblock(out_r.get());
  set_nonblock(errp_r.get());
  if (in_w.valid()) set_nonblock(in_w.get());
  // A pidfd tells us when the child itself exits even if a background
  // grandchild keeps the pipes open; without one (old kernel) we wait for EOF.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));

  RunOutcome r;
  bool reaped = false;
  bool input_eof = stream == nullptr || !stream_input;
  int64_t exit_at_ms = -1;
  bool abandoned = false;
  char buf[64 * 1024];

  auto kill_group = [&] { ::kill(-pid, SIGKILL); };
  auto reap = [&](int options) {
    int status = 0;
    pid_t w;
    do w = ::waitpid(pid, &status, options);
    while (w < 0 && errno == EINTR);
    if (w != pid) return false;
    reaped = true;
    if (WIFEXITED(status)) {
      r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.signal = WTERMSIG(status);
      r.exit_code = 128 + r.signal;
    }
    exit_at_ms = ms_since(start);
    return true;
  };
  auto pump_out = [&](UniqueFd& fd, Channel ch, uint64_t& count, bool& truncated) {
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        fd.reset();
        return;
      }
      auto len = static_cast<uint64_t>(n);
      uint64_t room = limits.max_output == 0       ? len
                      : count >= limits.max_output ? 0
                                                   : std::min(len, limits.max_output - count);
      if (room < len) truncated = true;
      count += room;
      if (room > 0 && !out(ch, std::string_view(buf, static_cast<size_t>(room)))) abandoned = true;
    }
  };

  while (out_r.valid() || errp_r.valid() || !reaped) {
    if (abandoned || (stream != nullptr && stream->cancelled())) {
      if (!r.cancelled) kill_group();
      r.cancelled = true;
    }
    int64_t elapsed = ms_since(start);
    if (limits.timeout_ms > 0 && elapsed >= limits.timeout_ms && !r.timed_out && !reaped) {
      r.timed_out = true;
      kill_group();
    }
    // After the child exits, leftovers are drained for a short while; a
    // background process holding the pipes must not hold the request.
    if (reaped && exit_at_ms >= 0 && elapsed - exit_at_ms > 250) break;
    if (!reaped && !pidfd.valid() && !out_r.valid() && !errp_r.valid()) {
      reap(0);
      break;
    }
    // Take more input only while the child keeps up: what stays queued in
    // the stream applies backpressure to the host.
    if (stream != nullptr && !input_eof && input.size() < kMaxPendingInput) {
      bool eof = false;
      input += stream->take_input(eof);
      input_eof = eof;
    }
    if (in_w.valid() && input.empty() && input_eof) in_w.reset();
    if (in_w.valid() && !input.empty()) {
      ssize_t n = ::write(in_w.get(), input.data(), input.size());
      if (n > 0)
        input.erase(0, static_cast<size_t>(n));
      else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        input.clear();  // the child closed its stdin (EPIPE): drop the rest
        input_eof = true;
        in_w.reset();
      }
    }

    pollfd p[5];
    nfds_t np = 0;
    auto add = [&](int fd, short ev) {
      if (fd >= 0) p[np++] = pollfd{fd, ev, 0};
    };
    add(out_r.get(), POLLIN);
    add(errp_r.get(), POLLIN);
    if (!reaped) add(pidfd.get(), POLLIN);
    if (stream != nullptr) add(stream->wake_fd(), POLLIN);
    if (in_w.valid() && !input.empty()) add(in_w.get(), POLLOUT);
    int64_t wait = 1000;
    if (limits.timeout_ms > 0 && !r.timed_out)
      wait = std::min(wait, std::max<int64_t>(limits.timeout_ms - elapsed, 0));
    if (reaped) wait = std::min<int64_t>(wait, 50);
    int rc = ::poll(p, np, static_cast<int>(wait));
    if (rc < 0 && errno != EINTR) return errno_error("poll");
    if (stream != nullptr) stream->drain_wake();
    if (out_r.valid()) pump_out(out_r, Channel::Stdout, r.stdout_bytes, r.stdout_truncated);
    if (errp_r.valid()) pump_out(errp_r, Channel::Stderr, r.stderr_bytes, r.stderr_truncated);
    if (!reaped && pidfd.valid()) reap(WNOHANG);
  }
  if (!reaped) {
    kill_group();
    reap(0);
  }
  r.duration_ms = ms_since(start);
  return r;
}

Result<Captured> run_capture(std::vector<std::string> argv, int64_t timeout_ms) {
  SpawnOptions o;
  o.argv = std::move(argv);
  Captured c;
  RunLimits lim{timeout_ms, 4u << 20};
  c.outcome =
      FORKVM_TRY(run_process(std::move(o), {}, nullptr, false, lim, [&](Channel ch, std::string_view b) {
        (ch == Channel::Stdout ? c.out : c.err).append(b);
        return true;
      }));
  return c;
}

}  // namespace forkvm::agent
