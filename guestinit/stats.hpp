// Guest statistics from /proc: CPU use from /proc/stat deltas, memory from
// /proc/meminfo, load averages and uptime. Parsers are pure for tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace forkvm::agent {

struct CpuTimes {
  uint64_t total = 0;
  uint64_t idle = 0;  // idle + iowait: time the CPUs had nothing to run
};
std::optional<CpuTimes> parse_proc_stat(std::string_view text);
// Busy share of the interval between two samples, 0-100.
double cpu_percent(const CpuTimes& before, const CpuTimes& after);

struct MemInfo {
  uint64_t total_bytes = 0;
  uint64_t available_bytes = 0;
  uint64_t used_bytes = 0;  // total - available: what the guest cannot give back
  uint64_t free_bytes = 0;
};
std::optional<MemInfo> parse_meminfo(std::string_view text);

struct LoadAvg {
  double one = 0, five = 0, fifteen = 0;
};
std::optional<LoadAvg> parse_loadavg(std::string_view text);
std::optional<double> parse_uptime(std::string_view text);

}  // namespace forkvm::agent
