// ANSI stripping (ECMA-48 states, simplified) and the terminal line log.
#include "guestinit/ansi.hpp"

#include <fmt/format.h>

#include <ctime>

namespace forkvm::agent {

std::string AnsiStripper::feed(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    switch (st_) {
      case State::Text:
        if (c == 0x1b)
          st_ = State::Esc;
        else if (c == '\n' || c == '\t' || c >= 0x20) {
          if (c != 0x7f) out.push_back(ch);
        }
        break;
      case State::Esc:
        if (c == '[')
          st_ = State::Csi;
        else if (c == ']')
          st_ = State::Osc;
        else if (c == 'P' || c == 'X' || c == '^' || c == '_')
          st_ = State::Str;
        else if (c >= 0x20 && c <= 0x2f)
          st_ = State::EscIntermediate;  // ESC ( B and friends
        else
          st_ = State::Text;  // a two-byte escape (ESC 7, ESC =, ...)
        break;
      case State::EscIntermediate:
        if (c < 0x20 || c > 0x2f) st_ = State::Text;
        break;
      case State::Csi:
        // Parameters and intermediates are 0x20-0x3f; a final byte ends it.
        if (c >= 0x40 && c <= 0x7e)
          st_ = State::Text;
        else if (c == 0x1b)
          st_ = State::Esc;
        break;
      case State::Osc:
        if (c == 0x07)
          st_ = State::Text;
        else if (c == 0x1b)
          st_ = State::OscEsc;
        break;
      case State::OscEsc:
        st_ = c == '\\' ? State::Text : State::Osc;
        break;
      case State::Str:
        if (c == 0x1b) st_ = State::StrEsc;
        break;
      case State::StrEsc:
        st_ = c == '\\' ? State::Text : State::Str;
        break;
    }
  }
  return out;
}

void LineLog::feed(std::string_view raw, int64_t now_ms) {
  std::string text = strip_.feed(raw);
  std::string_view t = text;
  while (!t.empty()) {
    if (!has_partial_) {
      partial_ = LogLine{{}, now_ms};
      has_partial_ = true;
    }
    size_t nl = t.find('\n');
    std::string_view piece = t.substr(0, nl);
    // Overlong lines are cut, not grown without bound.
    if (partial_.line.size() < max_line_)
      partial_.line.append(piece.substr(0, max_line_ - partial_.line.size()));
    if (nl == std::string_view::npos) break;
    lines_.push_back(std::move(partial_));
    has_partial_ = false;
    if (lines_.size() > max_lines_) lines_.pop_front();
    t.remove_prefix(nl + 1);
  }
}

std::deque<LogLine> LineLog::snapshot() const {
  std::deque<LogLine> out = lines_;
  if (has_partial_ && !partial_.line.empty()) out.push_back(partial_);
  return out;
}

std::string iso8601_ms(int64_t epoch_ms) {
  time_t secs = static_cast<time_t>(epoch_ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, epoch_ms % 1000);
}

}  // namespace forkvm::agent
