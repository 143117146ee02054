// /proc parsers.
#include "guestinit/stats.hpp"

#include <charconv>
#include <string>

namespace forkvm::agent {
namespace {

std::string_view next_token(std::string_view& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    s = {};
    return {};
  }
  s.remove_prefix(b);
  size_t e = s.find_first_of(" \t\n");
  std::string_view tok = s.substr(0, e);
  s.remove_prefix(e == std::string_view::npos ? s.size() : e);
  return tok;
}

template <typename T>
std::optional<T> num(std::string_view tok) {
  T v{};
  auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
  if (ec != std::errc{} || p != tok.data() + tok.size() || tok.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<CpuTimes> parse_proc_stat(std::string_view text) {
  // The aggregate line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
  if (text.substr(0, 4) != "cpu ") return std::nullopt;
  std::string_view line =
      text.substr(4, text.find('\n') == std::string_view::npos ? text.npos : text.find('\n') - 4);
  CpuTimes t;
  uint64_t fields[10] = {};
  int n = 0;
  while (n < 10) {
    std::string_view tok = next_token(line);
    if (tok.empty()) break;
    auto v = num<uint64_t>(tok);
    if (!v) return std::nullopt;
    fields[n++] = *v;
  }
  if (n < 4) return std::nullopt;
  // guest and guest_nice are already counted in user and nice.
  for (int i = 0; i < n && i < 8; ++i) t.total += fields[i];
  t.idle = fields[3] + (n > 4 ? fields[4] : 0);
  return t;
}

double cpu_percent(const CpuTimes& a, const CpuTimes& b) {
  if (b.total <= a.total || b.idle < a.idle) return 0.0;
  auto total = static_cast<double>(b.total - a.total);
  auto idle = static_cast<double>(b.idle - a.idle);
  double pct = 100.0 * (1.0 - idle / total);
  return pct < 0 ? 0 : pct > 100 ? 100 : pct;
}

std::optional<MemInfo> parse_meminfo(std::string_view text) {
  MemInfo m;
  bool total = false, avail = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view rest = line.substr(colon + 1);
    auto kb = num<uint64_t>(next_token(rest));
    if (!kb) continue;
    uint64_t bytes = *kb * 1024;
    if (key == "MemTotal")
      m.total_bytes = bytes, total = true;
    else if (key == "MemAvailable")
      m.available_bytes = bytes, avail = true;
    else if (key == "MemFree")
      m.free_bytes = bytes;
  }
  if (!total) return std::nullopt;
  // Kernels before 3.14 lack MemAvailable; free memory is the fallback.
  if (!avail) m.available_bytes = m.free_bytes;
  m.used_bytes = m.total_bytes > m.available_bytes ? m.total_bytes - m.available_bytes : 0;
  return m;
}

std::optional<LoadAvg> parse_loadavg(std::string_view text) {
  LoadAvg l;
  double* out[3] = {&l.one, &l.five, &l.fifteen};
  for (double* o : out) {
    auto v = num<double>(next_token(text));
    if (!v) return std::nullopt;
    *o = *v;
  }
  return l;
}

std::optional<double> parse_uptime(std::string_view text) { return num<double>(next_token(text)); }

}  // namespace forkvm::agent
