// One request stream inside the agent: the handler's view of its request.
// Handlers send events, data and exactly one End through it, read uploaded
// input from it, and watch it for cancellation. Each stream runs on its own
// thread, so a hung command never blocks another request.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "guestinit/protocol.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

class Connection;

class Stream {
 public:
  Stream(std::shared_ptr<Connection> conn, uint32_t id);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  [[nodiscard]] uint32_t id() const { return id_; }
  [[nodiscard]] std::shared_ptr<Connection> connection() const { return conn_; }

  // Output. Each returns false once the connection is gone, so loops stop.
  bool event(std::string_view json);
  bool data(Channel ch, std::string_view bytes);  // chunked to kDataChunk
  void end_ok(std::string_view result_json = "{}");
  void end_error(std::string_view code, std::string_view message);
  [[nodiscard]] bool ended() const { return ended_; }

  // Cancellation: by a Cancel frame or by the connection closing.
  void cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }
  // Readable (eventfd) when cancelled or when input arrives: poll loops add it.
  [[nodiscard]] int wake_fd() const { return wake_.get(); }
  void drain_wake();

  // Input (Data frames on the Input channel). push_input blocks the
  // connection's reader while too much is queued: backpressure to the host.
  void push_input(std::string bytes, bool eof);
  // Blocks until input, EOF (nullopt) or cancellation (nullopt).
  std::optional<std::string> pop_input();
  // Non-blocking: whatever is queued; sets eof when the host sent EOF.
  std::string take_input(bool& eof);

 private:
  static constexpr size_t kMaxQueued = 8u << 20;
  void signal();

  std::shared_ptr<Connection> conn_;
  uint32_t id_;
  UniqueFd wake_;
  std::atomic<bool> cancelled_{false};
  bool ended_ = false;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> input_;
  size_t queued_ = 0;
  bool input_eof_ = false;
};

}  // namespace forkvm::agent
