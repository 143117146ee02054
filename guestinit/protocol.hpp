// The forkvm-agent wire protocol, shared by the in-guest agent and the host
// client. See PROTOCOL.md beside this file for the full description.
//
// A frame is a fixed 16-byte little-endian header followed by a payload:
//   u32 magic "FKA1" | u32 payload length | u32 stream id | u16 type | u16 flags
// Control frames carry JSON; data frames carry raw bytes. The codec is pure
// (no I/O) so it can be unit-tested and fuzzed; the decoder never trusts a
// length it has not checked against its cap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vmm/result.hpp"

namespace forkvm::agent {

// Bytes 'F' 'K' 'A' '1' on the wire. The trailing '1' is the framing
// generation: a new header layout would get a new magic, while protocol
// feature versions are negotiated in the hello frames.
inline constexpr uint32_t kMagic = 0x31414B46u;
inline constexpr uint16_t kProtocolMajor = 1;
inline constexpr uint16_t kProtocolMinor = 1;  // 1: the identity op
inline constexpr size_t kHeaderSize = 16;
// Caps the memory one frame can make either side allocate.
inline constexpr uint32_t kMaxPayload = 1u << 20;
// Data is chunked well below the cap so streams interleave fairly.
inline constexpr size_t kDataChunk = 64 * 1024;
inline constexpr uint32_t kVsockPort = 1024;
inline constexpr std::string_view kAgentVersion = "0.1.0";
inline constexpr std::string_view kReadyMarker = "FORKVM-AGENT-READY";

enum class FrameType : uint16_t {
  Hello = 1,    // JSON, stream 0, first frame in each direction
  Request = 2,  // JSON {"op": ...}, host -> agent, opens a stream
  Event = 3,    // JSON, agent -> host, one item of a stream's output
  Data = 4,     // raw bytes; flags = channel | kFlagEof
  End = 5,      // JSON {"ok":true,"result":{}} or {"ok":false,"error":{code,message}}; agent -> host
  Cancel = 6,   // empty, host -> agent: stop the stream (watch, stats, exec)
};

// The low byte of a Data frame's flags.
enum class Channel : uint16_t {
  Content = 0,  // agent -> host: file content, terminal output
  Stdout = 1,   // agent -> host
  Stderr = 2,   // agent -> host
  Input = 3,    // host -> agent: exec stdin, file upload, terminal input
};
inline constexpr uint16_t kChannelMask = 0x00ff;
// On a Data frame: no more bytes follow on this channel of this stream.
inline constexpr uint16_t kFlagEof = 0x0100;

struct Frame {
  FrameType type = FrameType::Hello;
  uint16_t flags = 0;
  uint32_t stream = 0;
  std::string payload;

  [[nodiscard]] Channel channel() const { return static_cast<Channel>(flags & kChannelMask); }
  [[nodiscard]] bool eof() const { return (flags & kFlagEof) != 0; }
};

// Checks what the header alone can tell: known type, flags valid for that
// type, hello on stream 0 and everything else on a nonzero stream, length
// under the cap. Direction rules (who may send what) are the caller's.
Status validate_header(FrameType type, uint16_t flags, uint32_t stream, uint32_t length,
                       uint32_t max_payload = kMaxPayload);

// Appends one encoded frame to out. The payload must be within kMaxPayload
// (callers chunk data; a JSON payload over the cap is refused here).
Status append_frame(std::string& out, FrameType type, uint32_t stream, uint16_t flags,
                    std::string_view payload);
Result<std::string> encode_frame(const Frame& f);

// Incremental decoder: feed() any number of bytes in any split, then call
// next() until it yields nullopt (needs more input). The first malformed
// header poisons the decoder: the connection cannot be resynchronised.
class FrameDecoder {
 public:
  explicit FrameDecoder(uint32_t max_payload = kMaxPayload) : max_payload_(max_payload) {}
  void feed(std::string_view bytes);
  Result<std::optional<Frame>> next();
  [[nodiscard]] size_t buffered() const { return buf_.size() - pos_; }
  [[nodiscard]] bool failed() const { return failed_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  uint32_t max_payload_;
  bool failed_ = false;
  std::string error_;
};

// Error codes carried in End frames. The SDK-visible ones match the
// Freestyle API's codes so the API server can pass them through.
namespace code {
inline constexpr std::string_view kBadRequest = "BAD_REQUEST";
inline constexpr std::string_view kProtocolError = "PROTOCOL_ERROR";
inline constexpr std::string_view kVersionMismatch = "PROTOCOL_VERSION_MISMATCH";
inline constexpr std::string_view kUnknownOp = "UNKNOWN_OP";
inline constexpr std::string_view kInternal = "INTERNAL_ERROR";
inline constexpr std::string_view kCancelled = "CANCELLED";
inline constexpr std::string_view kUserNotFound = "USER_NOT_FOUND";
inline constexpr std::string_view kGroupNotFound = "GROUP_NOT_FOUND";
inline constexpr std::string_view kExecEmpty = "EXEC_EMPTY";
inline constexpr std::string_view kSpawnFailed = "EXEC_SPAWN_FAILED";
inline constexpr std::string_view kFileNotFound = "FILE_NOT_FOUND";
inline constexpr std::string_view kIsADirectory = "IS_A_DIRECTORY";
inline constexpr std::string_view kNotADirectory = "NOT_A_DIRECTORY";
inline constexpr std::string_view kForbidden = "FORBIDDEN";
inline constexpr std::string_view kNameTooLong = "NAME_TOO_LONG";
inline constexpr std::string_view kFileExists = "FILE_EXISTS";
inline constexpr std::string_view kDirNotEmpty = "DIRECTORY_NOT_EMPTY";
inline constexpr std::string_view kNoSpace = "NO_SPACE";
inline constexpr std::string_view kIoError = "IO_ERROR";
inline constexpr std::string_view kTerminalNotFound = "TERMINAL_NOT_FOUND";
inline constexpr std::string_view kServiceNotFound = "SERVICE_NOT_FOUND";
inline constexpr std::string_view kServiceExists = "SERVICE_ALREADY_EXISTS";
inline constexpr std::string_view kServiceNameEmpty = "SERVICE_NAME_EMPTY";
inline constexpr std::string_view kServiceNameChars = "SERVICE_NAME_INVALID_CHARS";
inline constexpr std::string_view kServiceNameTooLong = "SERVICE_NAME_TOO_LONG";
inline constexpr std::string_view kServiceNamePrefix = "SERVICE_NAME_INVALID_PREFIX";
inline constexpr std::string_view kSystemdFailed = "SYSTEMD_FAILED";
inline constexpr std::string_view kSystemdUnavailable = "SYSTEMD_UNAVAILABLE";
inline constexpr std::string_view kUserExists = "USER_ALREADY_EXISTS";
inline constexpr std::string_view kCommandFailed = "COMMAND_FAILED";
inline constexpr std::string_view kIdentityFailed = "IDENTITY_FAILED";
}  // namespace code

}  // namespace forkvm::agent
