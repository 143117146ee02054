// Named PTY sessions: an interactive bash (TERM=xterm-256color) per name,
// created on demand. A reader thread per session keeps a bounded ring of
// raw output (with ANSI, for the xterm-256color endpoint) and a
// timestamped, ANSI-stripped line log.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "guestinit/ansi.hpp"
#include "guestinit/users.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

class Terminal {
 public:
  static constexpr size_t kRingBytes = 1u << 20;

  Terminal(std::string name, UniqueFd master, pid_t pid, int64_t created_ms);
  ~Terminal();
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  void start_reader(std::shared_ptr<Terminal> self);
  Status write(std::string_view bytes);
  void close();

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] int64_t created_ms() const { return created_ms_; }
  [[nodiscard]] bool running() const;
  [[nodiscard]] std::string output() const;  // the last kRingBytes of raw output
  [[nodiscard]] std::deque<LogLine> logs() const;

 private:
  void reader_loop();

  std::string name_;
  UniqueFd master_;
  pid_t pid_;
  int64_t created_ms_;
  mutable std::mutex mu_;
  std::string ring_;  // trimmed back to kRingBytes once it doubles (amortised O(1))
  LineLog log_;
  bool running_ = true;
  int exit_code_ = -1;
};

struct TerminalOptions {
  std::optional<Account> account;
  std::string cwd;
  std::map<std::string, std::string> env;
};

class TerminalManager {
 public:
  static TerminalManager& instance();
  // Returns the running session called name, or starts one.
  Result<std::shared_ptr<Terminal>> get_or_create(const std::string& name, const TerminalOptions& o);
  std::shared_ptr<Terminal> find(const std::string& name);
  std::vector<std::shared_ptr<Terminal>> list();
  bool remove(const std::string& name);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Terminal>> terms_;
};

}  // namespace forkvm::agent
