#include "api/engine/guest_faults.hpp"

#include <array>

#include "api/engine/text_file.hpp"

namespace forkvm::engine {
namespace {

// What Linux prints at KERN_ERR or above (a `quiet` console still shows it).
constexpr std::array<std::string_view, 7> kFaultMarks = {
    "Kernel panic", "self-detected stall",   "detected stalls on CPU",
    "soft lockup",  "BUG: unable to handle", "general protection fault",
    "Oops:",
};
constexpr size_t kMaxLine = 240;
constexpr size_t kTailBytes = size_t{256} * 1024;

}  // namespace

std::optional<std::string> find_guest_fault(std::string_view console) {
  size_t start = 0;
  while (start < console.size()) {
    size_t end = console.find('\n', start);
    if (end == std::string_view::npos) end = console.size();
    const std::string_view line = console.substr(start, end - start);
    for (std::string_view mark : kFaultMarks) {
      if (line.find(mark) == std::string_view::npos) continue;
      std::string out(line.substr(0, kMaxLine));
      std::erase(out, '\r');
      return out;
    }
    start = end + 1;
  }
  return std::nullopt;
}

std::optional<std::string> guest_fault_in_console(const std::string& path) {
  const std::string text = read_text_file(path, 64 << 20);
  if (text.empty()) return std::nullopt;
  return find_guest_fault(
      std::string_view(text).substr(text.size() > kTailBytes ? text.size() - kTailBytes : 0));
}

}  // namespace forkvm::engine
