#include "api/cli/args.hpp"

#include <charconv>

namespace forkvm::cli {

Result<Args> Args::parse(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
                         const std::set<std::string>& flags) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      args.positional_.insert(args.positional_.end(), argv.begin() + static_cast<long>(i) + 1, argv.end());
      break;
    }
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      args.positional_.push_back(a);
      continue;
    }
    std::string name = a.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (flags.contains(name)) {
      if (inline_value) return make_error("option --{} takes no value", name);
      args.flags_.insert(name);
    } else if (with_value.contains(name)) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) return make_error("option --{} needs a value", name);
        inline_value = argv[++i];
      }
      args.values_.emplace(name, *inline_value);
    } else {
      return make_error("unknown option --{}", name);
    }
  }
  return args;
}

std::optional<std::string> Args::get(const std::string& name) const {
  // The last occurrence wins, as in most command-line tools.
  auto [lo, hi] = values_.equal_range(name);
  if (lo == hi) return std::nullopt;
  return std::prev(hi)->second;
}

std::vector<std::string> Args::get_all(const std::string& name) const {
  std::vector<std::string> out;
  auto [lo, hi] = values_.equal_range(name);
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

bool Args::has(const std::string& flag) const { return flags_.contains(flag); }

Result<uint64_t> Args::get_uint(const std::string& name, uint64_t fallback, uint64_t min, uint64_t max) const {
  auto text = get(name);
  if (!text) return fallback;
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc() || end != text->data() + text->size()) {
    return make_error("--{} wants a number, got '{}'", name, *text);
  }
  if (v < min || v > max) return make_error("--{} must be between {} and {}, got {}", name, min, max, v);
  return v;
}

}  // namespace forkvm::cli
