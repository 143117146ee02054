#include "api/cli/bench_common.hpp"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "api/cli/child_process.hpp"
#include "api/cli/commands.hpp"

namespace forkvm::cli {

double Samples::percentile(double p) const {
  if (values_.empty()) return 0;
  std::vector<double> v = values_;
  std::sort(v.begin(), v.end());
  const double rank = std::ceil(p / 100.0 * static_cast<double>(v.size()));
  const size_t idx = rank < 1 ? 0 : static_cast<size_t>(rank) - 1;
  return v[std::min(idx, v.size() - 1)];
}

double Samples::median() const {
  if (values_.empty()) return 0;
  std::vector<double> v = values_;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Samples::min() const { return values_.empty() ? 0 : *std::min_element(values_.begin(), values_.end()); }
double Samples::max() const { return values_.empty() ? 0 : *std::max_element(values_.begin(), values_.end()); }

std::string Samples::json() const {
  return fmt::format("{{\"median\":{:.3f},\"min\":{:.3f},\"max\":{:.3f}}}", median(), min(), max());
}

std::string Samples::text(std::string_view unit) const {
  return fmt::format("median {:8.1f} {}  (min {:.1f}, max {:.1f})", median(), unit, min(), max());
}

std::string self_exe() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "forkvm" : p.string();
}

Result<std::string> guest_artifact(const std::string& which) {
  // build/forkvm -> <source>/tools/guest/artifacts; FORKVM_SOURCE overrides.
  std::filesystem::path src = std::getenv("FORKVM_SOURCE") != nullptr
                                  ? std::filesystem::path(std::getenv("FORKVM_SOURCE"))
                                  : std::filesystem::path(self_exe()).parent_path().parent_path();
  const auto script = src / "tools/guest/artifacts";
  if (!std::filesystem::exists(script)) {
    return make_error("cannot find {} (set FORKVM_SOURCE to the forkvm source tree, or pass the path)",
                      script.string());
  }
  auto r = run_timed({script.string(), which}, "", std::chrono::minutes(30));
  if (!r) return r.error().context(fmt::format("tools/guest/artifacts {}", which));
  if (r->status != 0) return make_error("tools/guest/artifacts {} failed:\n{}", which, r->output);
  // The path is the last line it prints.
  std::string out = r->output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1);
}

int usage_error(const char* command, const Error& error) {
  std::fprintf(stderr, "forkvm %s: %s\n", command, error.message.c_str());
  return kUsageError;
}

}  // namespace forkvm::cli
