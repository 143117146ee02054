// A small, strict argument reader for the forkvm subcommands: `--name value`
// and `--name=value` options, repeated options, and flags. Unknown options
// are errors, so typos never pass silently.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::cli {

class Args {
 public:
  // `with_value` lists options that take a value, `flags` those that don't.
  static Result<Args> parse(const std::vector<std::string>& argv, const std::set<std::string>& with_value,
                            const std::set<std::string>& flags);

  [[nodiscard]] std::optional<std::string> get(const std::string& name) const;
  [[nodiscard]] std::vector<std::string> get_all(const std::string& name) const;
  [[nodiscard]] bool has(const std::string& flag) const;
  [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }

  // Parses a non-negative integer option within [min, max], or returns fallback when absent.
  [[nodiscard]] Result<uint64_t> get_uint(const std::string& name, uint64_t fallback, uint64_t min,
                                          uint64_t max) const;

 private:
  std::multimap<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace forkvm::cli
