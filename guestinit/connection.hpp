// One host connection to the agent: reads and validates frames, runs each
// request on its own thread, and serialises frame writes. A connection may
// carry many concurrent streams or just one request (both are allowed).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "guestinit/protocol.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

class Stream;

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(UniqueFd fd) : fd_(std::move(fd)) {}
  // Reads until EOF or a protocol error, then cancels all streams.
  void run();
  // Thread-safe; false once the connection failed.
  bool send(FrameType type, uint32_t stream, uint16_t flags, std::string_view payload);
  void stream_done(uint32_t id);

 private:
  bool handle(Frame f);
  void start_request(uint32_t id, std::string payload);

  UniqueFd fd_;
  std::mutex write_mu_;
  bool write_failed_ = false;
  bool hello_done_ = false;
  std::mutex streams_mu_;
  std::map<uint32_t, std::shared_ptr<Stream>> streams_;
};

}  // namespace forkvm::agent
