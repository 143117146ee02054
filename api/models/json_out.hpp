// A small JSON writer over RapidJSON's Writer: keys and values in one call,
// optionals written as null, and strings sanitised to valid UTF-8 (guest
// output and file names are arbitrary bytes).
#pragma once

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace forkvm::api {

class JsonOut {
 public:
  JsonOut() : w_(sb_) {}
  JsonOut& begin_object() {
    w_.StartObject();
    return *this;
  }
  JsonOut& end_object() {
    w_.EndObject();
    return *this;
  }
  JsonOut& begin_array() {
    w_.StartArray();
    return *this;
  }
  JsonOut& end_array() {
    w_.EndArray();
    return *this;
  }
  JsonOut& key(std::string_view k) {
    w_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
    return *this;
  }

  JsonOut& str(std::string_view v);
  JsonOut& num(int64_t v) {
    w_.Int64(v);
    return *this;
  }
  JsonOut& unum(uint64_t v) {
    w_.Uint64(v);
    return *this;
  }
  JsonOut& dbl(double v) {
    w_.Double(v);
    return *this;
  }
  JsonOut& boolean(bool v) {
    w_.Bool(v);
    return *this;
  }
  JsonOut& null() {
    w_.Null();
    return *this;
  }
  JsonOut& opt(const std::optional<std::string>& v) { return v ? str(*v) : null(); }
  JsonOut& opt(const std::optional<int64_t>& v) { return v ? num(*v) : null(); }
  JsonOut& opt(const std::optional<double>& v) { return v ? dbl(*v) : null(); }
  // Inserts already-serialised JSON (stored persistence objects).
  JsonOut& raw(std::string_view json);

  template <typename T>
  JsonOut& field(std::string_view k, const T& v) {
    key(k);
    if constexpr (std::is_same_v<T, bool>)
      return boolean(v);
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
      return num(static_cast<int64_t>(v));
    else if constexpr (std::is_integral_v<T>)
      return unum(static_cast<uint64_t>(v));
    else if constexpr (std::is_floating_point_v<T>)
      return dbl(static_cast<double>(v));
    else if constexpr (std::is_convertible_v<const T&, std::string_view>)
      return str(v);
    else
      return opt(v);
  }

  [[nodiscard]] std::string take() const { return {sb_.GetString(), sb_.GetSize()}; }

 private:
  rapidjson::StringBuffer sb_;
  rapidjson::Writer<rapidjson::StringBuffer> w_;
};

// RFC 3339 in UTC with milliseconds: "2025-01-02T03:04:05.678Z".
[[nodiscard]] std::string format_timestamp(int64_t ms_since_epoch);

}  // namespace forkvm::api
