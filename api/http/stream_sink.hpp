// The hand-off between a streaming handler (a worker thread producing NDJSON
// lines) and the connection (the I/O thread writing chunks). The producer
// blocks when more than kMaxQueued bytes wait for a slow reader, so a client
// that stops reading cannot make the server buffer without bound; past the
// write timeout it is treated as gone.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

#include "api/http/message.hpp"

namespace forkvm::api {

class StreamSinkImpl final : public StreamSink {
 public:
  static constexpr size_t kMaxQueued = 256 * 1024;

  // `notify` asks the I/O thread to call take(); it must not block.
  StreamSinkImpl(std::function<void()> notify, std::chrono::milliseconds write_timeout)
      : notify_(std::move(notify)), write_timeout_(write_timeout) {}

  // Producer side.
  bool write(std::string_view data) override;
  [[nodiscard]] bool closed() const override;
  void finish();  // the producer returned

  // I/O side.
  struct Batch {
    std::string data;
    bool finished = false;  // producer done and nothing more will come
  };
  Batch take();    // everything queued so far, as one chunk
  void written();  // the last batch reached the socket
  void close();    // server shutdown: the producer should stop
  void client_gone();
  [[nodiscard]] bool is_client_gone() const;

 private:
  std::function<void()> notify_;
  std::chrono::milliseconds write_timeout_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string queued_;
  size_t in_flight_ = 0;
  bool closed_ = false;
  bool client_gone_ = false;
  bool finished_ = false;
};

}  // namespace forkvm::api
