#include "api/models/json_out.hpp"

#include <fmt/format.h>

#include <ctime>

#include "api/models/json.hpp"

namespace forkvm::api {

JsonOut& JsonOut::str(std::string_view v) {
  std::string clean = json::sanitize_utf8(v);
  w_.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
  return *this;
}

JsonOut& JsonOut::raw(std::string_view json) {
  w_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
  return *this;
}

std::string format_timestamp(int64_t ms) {
  int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  int64_t millis = ms - secs * 1000;
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

}  // namespace forkvm::api
