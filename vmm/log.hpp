// Minimal leveled logging to stderr. Guest-triggered problems go through
// log_once() so a hostile guest cannot flood the host's logs.
#pragma once

#include <atomic>
#include <string_view>

#include <fmt/format.h>

namespace forkvm {

enum class LogLevel { debug, info, warn, error };

void set_log_level(LogLevel level);
[[nodiscard]] bool log_enabled(LogLevel level);
void log_line(LogLevel level, std::string_view message);

template <typename... Args>
void log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (log_enabled(level)) log_line(level, fmt::format(f, std::forward<Args>(args)...));
}

// Logs the first time `flag` is seen false; later calls are silent.
template <typename... Args>
void log_once(std::atomic<bool>& flag, fmt::format_string<Args...> f, Args&&... args) {
  if (!flag.exchange(true)) log_line(LogLevel::warn, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace forkvm
