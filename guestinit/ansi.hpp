// Terminal output processing: stripping ANSI escape sequences for the
// plain-text logs, and the timestamped line log of a terminal session.
// Both are stateful so a sequence or line split across reads is handled.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace forkvm::agent {

class AnsiStripper {
 public:
  // Returns the printable text of `in`: CSI, OSC, DCS/SOS/PM/APC strings and
  // two/three-byte escapes removed; control characters other than \n and \t
  // dropped (\r included: "\r\n" is a newline on a tty).
  std::string feed(std::string_view in);

 private:
  enum class State { Text, Esc, EscIntermediate, Csi, Osc, OscEsc, Str, StrEsc };
  State st_ = State::Text;
};

inline std::string strip_ansi(std::string_view in) { return AnsiStripper().feed(in); }

struct LogLine {
  std::string line;
  int64_t timestamp_ms = 0;  // wall clock, when the line's first byte arrived
};

// Splits stripped text into lines, each stamped with the time its first
// byte arrived; keeps at most max_lines (oldest dropped).
class LineLog {
 public:
  explicit LineLog(size_t max_lines = 5000, size_t max_line = 16384)
      : max_lines_(max_lines), max_line_(max_line) {}
  void feed(std::string_view raw, int64_t now_ms);
  // Completed lines plus the current partial line, if any.
  [[nodiscard]] std::deque<LogLine> snapshot() const;

 private:
  AnsiStripper strip_;
  std::deque<LogLine> lines_;
  LogLine partial_;
  bool has_partial_ = false;
  size_t max_lines_;
  size_t max_line_;
};

// ISO 8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z.
std::string iso8601_ms(int64_t epoch_ms);

}  // namespace forkvm::agent
