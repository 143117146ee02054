// Pieces every benchmark mode shares: sample statistics, the path of this
// binary, and the guest artifacts built by tools/guest.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::cli {

class Samples {
 public:
  void add(double v) { values_.push_back(v); }
  [[nodiscard]] double median() const;
  [[nodiscard]] double min() const;
  [[nodiscard]] double max() const;
  [[nodiscard]] double percentile(double p) const;  // p in [0, 100], nearest rank
  [[nodiscard]] std::string json() const;           // {"median":..,"min":..,"max":..}
  // "median 12.3 ms (min 11.0, max 15.2)"; another unit for samples that are not times.
  [[nodiscard]] std::string text(std::string_view unit = "ms") const;

 private:
  std::vector<double> values_;
};

// /proc/self/exe, so benchmarks run the same forkvm as the one measuring.
[[nodiscard]] std::string self_exe();

// Path of a guest artifact from tools/guest/artifacts (kernel, vmlinux,
// bzimage, initramfs), found relative to this binary's source tree.
[[nodiscard]] Result<std::string> guest_artifact(const std::string& which);

int usage_error(const char* command, const Error& error);

int bench_boot(const std::vector<std::string>& argv);
int bench_disk(const std::vector<std::string>& argv);
int bench_agent(const std::vector<std::string>& argv);
int bench_api(const std::vector<std::string>& argv);
int bench_fork(const std::vector<std::string>& argv);
int bench_net(const std::vector<std::string>& argv);
int bench_pagein(const std::vector<std::string>& argv);
int bench_restore(const std::vector<std::string>& argv);
int bench_suspend(const std::vector<std::string>& argv);
int bench_template(const std::vector<std::string>& argv);

}  // namespace forkvm::cli
