// The host side of one agent connection: connect (directly to a Unix socket
// the agent listens on, or through the VMM's vsock multiplexer with its
// "CONNECT <port>\n" / "OK <port>\n" handshake), exchange hello frames, and
// run one request stream to its End frame.
//
// The agent is untrusted (it runs inside the guest): every frame is
// validated (size cap in the decoder, type and direction, stream id), every
// wait has a deadline, and totals kept in memory are bounded by the caller.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "guestinit/json.hpp"
#include "guestinit/protocol.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

struct ClientOptions {
  std::string socket_path;
  // true: socket_path is the VMM's vsock mux; send "CONNECT <port>\n" first.
  bool vsock_mux = false;
  uint32_t port = kVsockPort;
  // Connect, the mux's answer and the agent's hello: longer than the mux's own connect
  // timeout, so a stalled guest is reported by the mux, not cut short here.
  int64_t connect_timeout_ms = 15000;
  // Deadline for a whole request (exec adds its own timeout on top).
  int64_t call_timeout_ms = 30000;
  // Deadline for an exec without timeoutMs.
  int64_t exec_default_timeout_ms = 300000;
};

// Error messages from the client start with a SCREAMING_SNAKE code and ": ":
// the agent's own code (FILE_NOT_FOUND, USER_NOT_FOUND, ...) or one of
// these for the transport.
inline constexpr std::string_view kAgentUnavailable = "AGENT_UNAVAILABLE";
inline constexpr std::string_view kAgentProtocolError = "AGENT_PROTOCOL_ERROR";
inline constexpr std::string_view kAgentTimeout = "AGENT_TIMEOUT";
// The code part of a client error ("" when the message has none).
std::string_view agent_error_code(const Error& e);

struct HelloInfo {
  int major = 0;
  int minor = 0;
  std::string version;
};

// Callbacks for one request stream. Each returns false to cancel the stream
// (a Cancel frame is sent; the agent then ends the stream).
struct StreamHandlers {
  std::function<bool(const JsonValue& event)> on_event;
  std::function<bool(Channel ch, std::string_view bytes)> on_data;
  // Upload source: called while the send buffer has room; nullopt = EOF.
  // When unset, no input is sent.
  std::function<std::optional<std::string>()> next_input;
  const std::atomic<bool>* cancel = nullptr;
  int64_t timeout_ms = 30000;  // 0: no deadline (watch, stats: cancel ends them)
  // Bound on the Event and Data payload bytes the stream may deliver
  // (0: unbounded, for callers that bound what they keep themselves).
  uint64_t max_total_bytes = 0;
};

class AgentConnection {
 public:
  static Result<AgentConnection> open(const ClientOptions& o);
  [[nodiscard]] const HelloInfo& hello() const { return hello_; }
  // Sends the request on a fresh stream and runs it to its End frame;
  // returns the End's "result" object as JSON text.
  Result<std::string> run(std::string_view request_json, StreamHandlers& h);

 private:
  explicit AgentConnection(UniqueFd fd) : fd_(std::move(fd)) {}
  Status queue(FrameType t, uint32_t stream, uint16_t flags, std::string_view payload);
  // One step: a decoded frame if one is ready, else one bounded poll round
  // (flushing the outbox, reading) and nullopt, so the caller can check
  // cancellation, feed input and its deadline between rounds.
  Result<std::optional<Frame>> step(int64_t deadline_ms);
  Status handshake(const ClientOptions& o);

  UniqueFd fd_;
  FrameDecoder dec_;
  std::string outbox_;
  HelloInfo hello_;
  uint32_t next_stream_ = 1;
};

// Monotonic milliseconds, for deadlines.
int64_t mono_ms();

}  // namespace forkvm::agent
