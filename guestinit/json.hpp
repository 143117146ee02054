// Small RapidJSON helpers shared by the agent and the host client. Readers
// treat a missing or wrongly typed member as absent: both sides get
// defaults instead of crashes on hostile or sloppy input.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::agent {

using JsonValue = rapidjson::Value;

// Parses text that must be one JSON object.
inline Result<rapidjson::Document> parse_object(std::string_view text) {
  rapidjson::Document d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError()) return make_error("invalid JSON at offset {}", d.GetErrorOffset());
  if (!d.IsObject()) return make_error("JSON payload is not an object");
  return d;
}

inline const JsonValue* member(const JsonValue& v, const char* key) {
  if (!v.IsObject()) return nullptr;
  auto it = v.FindMember(key);
  return it == v.MemberEnd() ? nullptr : &it->value;
}
inline std::optional<std::string> get_str(const JsonValue& v, const char* key) {
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsString()) return std::nullopt;
  return std::string(m->GetString(), m->GetStringLength());
}
inline std::string str_or(const JsonValue& v, const char* key, std::string_view def = {}) {
  auto s = get_str(v, key);
  return s ? *s : std::string(def);
}
inline std::optional<int64_t> get_i64(const JsonValue& v, const char* key) {
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsInt64()) return std::nullopt;
  return m->GetInt64();
}
inline int64_t i64_or(const JsonValue& v, const char* key, int64_t def) {
  return get_i64(v, key).value_or(def);
}
inline std::optional<double> get_double(const JsonValue& v, const char* key) {
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsNumber()) return std::nullopt;
  return m->GetDouble();
}
inline std::optional<bool> get_bool(const JsonValue& v, const char* key) {
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsBool()) return std::nullopt;
  return m->GetBool();
}
inline bool bool_or(const JsonValue& v, const char* key, bool def) { return get_bool(v, key).value_or(def); }
// An array of strings; non-string items are skipped.
inline std::vector<std::string> str_list(const JsonValue& v, const char* key) {
  std::vector<std::string> out;
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsArray()) return out;
  for (const auto& item : m->GetArray())
    if (item.IsString()) out.emplace_back(item.GetString(), item.GetStringLength());
  return out;
}
// An object of string values (environment maps); other values are skipped.
inline std::map<std::string, std::string> str_map(const JsonValue& v, const char* key) {
  std::map<std::string, std::string> out;
  const JsonValue* m = member(v, key);
  if (m == nullptr || !m->IsObject()) return out;
  for (const auto& kv : m->GetObject())
    if (kv.value.IsString())
      out[std::string(kv.name.GetString(), kv.name.GetStringLength())] =
          std::string(kv.value.GetString(), kv.value.GetStringLength());
  return out;
}

// A streaming JSON writer with string_view-friendly calls.
class JsonWriter {
 public:
  JsonWriter() : w_(buf_) {}
  JsonWriter& begin_object() {
    w_.StartObject();
    return *this;
  }
  JsonWriter& end_object() {
    w_.EndObject();
    return *this;
  }
  JsonWriter& begin_array() {
    w_.StartArray();
    return *this;
  }
  JsonWriter& end_array() {
    w_.EndArray();
    return *this;
  }
  JsonWriter& key(std::string_view k) {
    w_.Key(k.data(), size(k));
    return *this;
  }
  JsonWriter& str(std::string_view s) {
    w_.String(s.data(), size(s));
    return *this;
  }
  JsonWriter& i64(int64_t v) {
    w_.Int64(v);
    return *this;
  }
  JsonWriter& u64(uint64_t v) {
    w_.Uint64(v);
    return *this;
  }
  JsonWriter& dbl(double v) {
    w_.Double(v);
    return *this;
  }
  JsonWriter& boolean(bool v) {
    w_.Bool(v);
    return *this;
  }
  JsonWriter& null() {
    w_.Null();
    return *this;
  }
  // Splices already-encoded JSON (a nested result object).
  JsonWriter& raw(std::string_view json) {
    w_.RawValue(json.data(), json.size(), rapidjson::kObjectType);
    return *this;
  }
  JsonWriter& field(std::string_view k, std::string_view v) { return key(k).str(v); }
  JsonWriter& field(std::string_view k, const char* v) { return key(k).str(v); }
  JsonWriter& field(std::string_view k, int64_t v) { return key(k).i64(v); }
  JsonWriter& field(std::string_view k, uint64_t v) { return key(k).u64(v); }
  JsonWriter& field(std::string_view k, int v) { return key(k).i64(v); }
  JsonWriter& field(std::string_view k, unsigned v) { return key(k).u64(v); }
  JsonWriter& field(std::string_view k, double v) { return key(k).dbl(v); }
  JsonWriter& field(std::string_view k, bool v) { return key(k).boolean(v); }
  [[nodiscard]] std::string_view view() const { return {buf_.GetString(), buf_.GetSize()}; }
  [[nodiscard]] std::string take() const { return std::string(view()); }
  [[nodiscard]] size_t bytes() const { return buf_.GetSize(); }

 private:
  static rapidjson::SizeType size(std::string_view s) { return static_cast<rapidjson::SizeType>(s.size()); }
  rapidjson::StringBuffer buf_;
  rapidjson::Writer<rapidjson::StringBuffer> w_;
};

}  // namespace forkvm::agent
