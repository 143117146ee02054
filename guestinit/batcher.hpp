// Sends a long list (directory entries, log lines) as several Event frames
// {"items":[...]} so no single frame nears the payload cap; the host
// concatenates the items of all events of the stream.
#pragma once

#include <string>
#include <string_view>

#include "guestinit/stream.hpp"

namespace forkvm::agent {

class ItemBatcher {
 public:
  static constexpr size_t kFlushBytes = 256 * 1024;
  explicit ItemBatcher(Stream& s) : s_(s) {}
  // item_json is one encoded JSON value; returns false when the host is gone.
  bool add(std::string_view item_json) {
    if (!buf_.empty() && buf_.size() + item_json.size() + 2 > kFlushBytes && !flush()) return false;
    buf_.append(buf_.empty() ? "{\"items\":[" : ",");
    buf_.append(item_json);
    ++count_;
    return true;
  }
  bool flush() {
    if (buf_.empty()) return true;
    buf_.append("]}");
    bool ok = s_.event(buf_);
    buf_.clear();
    return ok;
  }
  [[nodiscard]] size_t count() const { return count_; }

 private:
  Stream& s_;
  std::string buf_;
  size_t count_ = 0;
};

}  // namespace forkvm::agent
