// Little-endian field encoding for saved VM state (snapshots): what every
// layer's save_state()/load_state() writes into a snapshot section. A
// foundation header so devices/ can use it without depending on snapshot/.
//
// Everything StateReader hands back was read from a file we may not have
// written, so every length is checked against what is left before use and
// every variable-sized field has a caller-supplied upper bound.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm {

class StateWriter {
 public:
  void u8(uint8_t v) { raw(&v, 1); }
  void u16(uint16_t v) { raw(&v, sizeof v); }  // x86-64 only: host order is little-endian
  void u32(uint32_t v) { raw(&v, sizeof v); }
  void u64(uint64_t v) { raw(&v, sizeof v); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  // A u32 length, then the bytes.
  void bytes(std::span<const uint8_t> b) {
    u32(static_cast<uint32_t>(b.size()));
    raw(b.data(), b.size());
  }
  void str(std::string_view s) { bytes({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }
  // A kernel struct as its bytes, length-prefixed so a layout change is
  // caught on load instead of being read into the wrong fields.
  template <typename T>
  void pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    bytes({reinterpret_cast<const uint8_t*>(&v), sizeof v});
  }
  template <typename T>
  void pod_array(std::span<const T> v) {
    static_assert(std::is_trivially_copyable_v<T>);
    u32(static_cast<uint32_t>(sizeof(T)));
    bytes({reinterpret_cast<const uint8_t*>(v.data()), v.size_bytes()});
  }

  [[nodiscard]] const std::vector<uint8_t>& data() const { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  void raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  std::vector<uint8_t> buf_;
};

class StateReader {
 public:
  // `what` names the state in errors: "vCPU 1", "virtio device 2".
  StateReader(std::span<const uint8_t> data, std::string what) : data_(data), what_(std::move(what)) {}

  Result<uint8_t> u8() { return scalar<uint8_t>(); }
  Result<uint16_t> u16() { return scalar<uint16_t>(); }
  Result<uint32_t> u32() { return scalar<uint32_t>(); }
  Result<uint64_t> u64() { return scalar<uint64_t>(); }
  Result<bool> boolean() {
    const uint8_t v = FORKVM_TRY(u8());
    if (v > 1) return make_error("state of {}: boolean field reads {}", what_, v);
    return v == 1;
  }
  // At most `max` bytes; a longer recorded length is an error, not an allocation.
  Result<std::vector<uint8_t>> bytes(size_t max) {
    const uint32_t n = FORKVM_TRY(u32());
    if (n > max) return make_error("state of {}: field of {} bytes, at most {} expected", what_, n, max);
    FORKVM_CHECK(need(n));
    std::vector<uint8_t> out(data_.begin() + static_cast<std::ptrdiff_t>(pos_),
                             data_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return out;
  }
  Result<std::string> str(size_t max) {
    auto b = FORKVM_TRY(bytes(max));
    return std::string(b.begin(), b.end());
  }
  template <typename T>
  Result<T> pod() {
    static_assert(std::is_trivially_copyable_v<T>);
    const uint32_t n = FORKVM_TRY(u32());
    if (n != sizeof(T))
      return make_error("state of {}: record of {} bytes, {} expected", what_, n, sizeof(T));
    FORKVM_CHECK(need(n));
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof v);
    pos_ += n;
    return v;
  }
  template <typename T>
  Result<std::vector<T>> pod_array(size_t max_count) {
    static_assert(std::is_trivially_copyable_v<T>);
    const uint32_t elem = FORKVM_TRY(u32());
    if (elem != sizeof(T)) {
      return make_error("state of {}: array element of {} bytes, {} expected", what_, elem, sizeof(T));
    }
    auto b = FORKVM_TRY(bytes(max_count * sizeof(T)));
    if (b.size() % sizeof(T) != 0) return make_error("state of {}: ragged array", what_);
    std::vector<T> out(b.size() / sizeof(T));
    std::memcpy(out.data(), b.data(), b.size());
    return out;
  }

  [[nodiscard]] size_t remaining() const { return data_.size() - pos_; }
  [[nodiscard]] const std::string& what() const { return what_; }

 private:
  Status need(size_t n) const {
    if (n > data_.size() - pos_) {
      return make_error("state of {}: truncated at byte {} ({} more needed, {} left)", what_, pos_, n,
                        data_.size() - pos_);
    }
    return {};
  }
  template <typename T>
  Result<T> scalar() {
    FORKVM_CHECK(need(sizeof(T)));
    T v;
    std::memcpy(&v, data_.data() + pos_, sizeof v);
    pos_ += sizeof v;
    return v;
  }

  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace forkvm
