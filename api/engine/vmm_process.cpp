#include "api/engine/vmm_process.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "api/engine/text_file.hpp"

namespace forkvm::engine {

Result<std::shared_ptr<VmmProcess>> VmmProcess::spawn(const std::vector<std::string>& argv,
                                                      const std::string& log_path) {
  if (argv.empty()) return make_error("no program to start");
  int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log < 0) return errno_error("open " + log_path);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log);
    return errno_error("fork for the VMM", err);
  }
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the server blocks SIGTERM; the VMM needs it
    int null = ::open("/dev/null", O_RDONLY);
    if (null >= 0) ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    // Nothing else of the server's: an fd another thread opened without
    // CLOEXEC (Asio sets it only after accept) would live as long as the VM.
    ::close_range(3, ~0U, 0);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(log);
  std::shared_ptr<VmmProcess> p(new VmmProcess(pid));
  std::thread([p] { p->reap(); }).detach();
  return p;
}

std::string vmm_log_tail(const std::string& path) {
  std::string text = read_text_file(path);
  size_t cut = text.size();
  for (int lines = 0; lines < 3 && cut > 0; lines++) {
    size_t nl = text.rfind('\n', cut - 1);
    if (nl == std::string::npos) {
      cut = 0;
      break;
    }
    cut = nl;
  }
  std::string tail = text.substr(cut);
  while (!tail.empty() && tail.back() == '\n') tail.pop_back();
  while (!tail.empty() && (tail.front() == '\n')) tail.erase(0, 1);
  return tail.empty() ? "(no output)" : tail;
}

Result<std::shared_ptr<VmmProcess>> VmmProcess::adopt(pid_t pid) {
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno_error(fmt::format("VMM process {}", pid));
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  std::shared_ptr<VmmProcess> p(new VmmProcess(pid, fd));
  std::thread([p] { p->watch_adopted(); }).detach();
  return p;
}

VmmProcess::~VmmProcess() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

void VmmProcess::set_exit(std::string text) {
  std::lock_guard lock(mu_);
  exit_ = std::move(text);
  cv_.notify_all();
}

void VmmProcess::reap() {
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  set_exit(WIFEXITED(status)     ? std::to_string(WEXITSTATUS(status))
           : WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                                 : "unknown");
}

void VmmProcess::watch_adopted() {
  pollfd p{pidfd_, POLLIN, 0};
  while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
  }
  set_exit("exited (status unknown: not started by this server)");
}

bool VmmProcess::running() const {
  std::lock_guard lock(mu_);
  return !exit_.has_value();
}

std::optional<std::string> VmmProcess::exit_status() const {
  std::lock_guard lock(mu_);
  return exit_;
}

void VmmProcess::signal(int sig) const {
  std::lock_guard lock(mu_);
  if (exit_) return;
  if (pidfd_ >= 0) {
    ::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0);
  } else {
    ::kill(pid_, sig);  // not yet reaped, so the pid is still ours
  }
}

bool VmmProcess::wait_for(std::chrono::milliseconds limit) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, limit, [&] { return exit_.has_value(); });
}

void VmmProcess::wait() const {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return exit_.has_value(); });
}

}  // namespace forkvm::engine
