// PTY sessions.
#include "guestinit/terminals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "guestinit/process.hpp"

namespace forkvm::agent {
namespace {

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Terminal::Terminal(std::string name, UniqueFd master, pid_t pid, int64_t created_ms)
    : name_(std::move(name)), master_(std::move(master)), pid_(pid), created_ms_(created_ms) {}

Terminal::~Terminal() = default;

void Terminal::start_reader(std::shared_ptr<Terminal> self) {
  std::thread([self] { self->reader_loop(); }).detach();
}

void Terminal::reader_loop() {
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(master_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    // EIO: every slave side is closed, i.e. the shell and its children exited.
    if (n <= 0) break;
    std::lock_guard lk(mu_);
    ring_.append(buf, static_cast<size_t>(n));
    if (ring_.size() > 2 * kRingBytes) ring_.erase(0, ring_.size() - kRingBytes);
    log_.feed(std::string_view(buf, static_cast<size_t>(n)), now_ms());
  }
  int status = 0;
  pid_t w;
  do w = ::waitpid(pid_, &status, 0);
  while (w < 0 && errno == EINTR);
  std::lock_guard lk(mu_);
  running_ = false;
  if (w == pid_) exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Status Terminal::write(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(master_.get(), bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("write to terminal {}", name_));
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

void Terminal::close() {
  // SIGHUP is what a closing terminal sends; SIGKILL follows for shells that ignore it.
  ::kill(-pid_, SIGHUP);
  ::kill(-pid_, SIGKILL);
}

bool Terminal::running() const {
  std::lock_guard lk(mu_);
  return running_;
}

std::string Terminal::output() const {
  std::lock_guard lk(mu_);
  size_t start = ring_.size() > kRingBytes ? ring_.size() - kRingBytes : 0;
  return ring_.substr(start);
}

std::deque<LogLine> Terminal::logs() const {
  std::lock_guard lk(mu_);
  return log_.snapshot();
}

TerminalManager& TerminalManager::instance() {
  static TerminalManager m;
  return m;
}

std::shared_ptr<Terminal> TerminalManager::find(const std::string& name) {
  std::lock_guard lk(mu_);
  auto it = terms_.find(name);
  return it == terms_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Terminal>> TerminalManager::list() {
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<Terminal>> out;
  for (auto& [n, t] : terms_) out.push_back(t);
  return out;
}

bool TerminalManager::remove(const std::string& name) {
  std::shared_ptr<Terminal> t;
  {
    std::lock_guard lk(mu_);
    auto it = terms_.find(name);
    if (it == terms_.end()) return false;
    t = it->second;
    terms_.erase(it);
  }
  t->close();
  return true;
}

Result<std::shared_ptr<Terminal>> TerminalManager::get_or_create(const std::string& name,
                                                                 const TerminalOptions& o) {
  std::lock_guard lk(mu_);
  auto it = terms_.find(name);
  if (it != terms_.end() && it->second->running()) return it->second;

  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master.valid()) return errno_error("posix_openpt");
  if (::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) return errno_error("unlockpt");
  char path[128];
  if (::ptsname_r(master.get(), path, sizeof path) != 0) return errno_error("ptsname");
  UniqueFd slave(::open(path, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave.valid()) return errno_error(fmt::format("open {}", path));
  winsize ws{};
  ws.ws_row = 40;
  ws.ws_col = 120;
  ::ioctl(slave.get(), TIOCSWINSZ, &ws);
  // The session's user must own its tty, or programs like `tty` and sudo complain.
  if (o.account && ::geteuid() == 0 && ::fchown(slave.get(), o.account->uid, o.account->gid) != 0)
    return errno_error("chown pty");

  SpawnOptions so;
  so.argv = {"/bin/bash", "-l", "-i"};
  so.env = o.env;
  so.env["TERM"] = "xterm-256color";
  so.cwd = o.cwd;
  so.account = o.account;
  so.stdin_fd = so.stdout_fd = so.stderr_fd = slave.get();
  so.controlling_tty = slave.get();
  pid_t pid = FORKVM_TRY(spawn(so));
  slave.reset();  // the child holds it now; EOF on the master then means the session ended

  auto t = std::make_shared<Terminal>(name, std::move(master), pid, now_ms());
  t->start_reader(t);
  terms_[name] = t;
  return t;
}

}  // namespace forkvm::agent
