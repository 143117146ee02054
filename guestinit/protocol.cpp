// Frame codec. Little-endian is written byte by byte so the code is right on
// any host and needs no casts over the buffer.
#include "guestinit/protocol.hpp"

namespace forkvm::agent {
namespace {

void put_u16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint16_t get_u16(const char* p) {
  return static_cast<uint16_t>(static_cast<unsigned char>(p[0]) | (static_cast<unsigned char>(p[1]) << 8));
}

}  // namespace

Status validate_header(FrameType type, uint16_t flags, uint32_t stream, uint32_t length,
                       uint32_t max_payload) {
  if (length > max_payload)
    return make_error("frame payload of {} bytes exceeds the {} cap", length, max_payload);
  switch (type) {
    case FrameType::Hello:
      if (stream != 0) return make_error("hello frame on stream {} (must be 0)", stream);
      break;
    case FrameType::Request:
    case FrameType::Event:
    case FrameType::End:
    case FrameType::Cancel:
      if (stream == 0) return make_error("frame type {} on stream 0", static_cast<unsigned>(type));
      break;
    case FrameType::Data:
      if (stream == 0) return make_error("data frame on stream 0");
      if ((flags & ~(kChannelMask | kFlagEof)) != 0)
        return make_error("data frame has unknown flags {:#x}", flags);
      if ((flags & kChannelMask) > static_cast<uint16_t>(Channel::Input))
        return make_error("data frame on unknown channel {}", flags & kChannelMask);
      return {};
    default:
      return make_error("unknown frame type {}", static_cast<unsigned>(type));
  }
  if (flags != 0)
    return make_error("frame type {} has flags {:#x} (must be 0)", static_cast<unsigned>(type), flags);
  if (type == FrameType::Cancel && length != 0) return make_error("cancel frame with a payload");
  return {};
}

Status append_frame(std::string& out, FrameType type, uint32_t stream, uint16_t flags,
                    std::string_view payload) {
  if (payload.size() > kMaxPayload)
    return make_error("frame payload of {} bytes exceeds the cap", payload.size());
  auto len = static_cast<uint32_t>(payload.size());
  FORKVM_CHECK(validate_header(type, flags, stream, len));
  out.reserve(out.size() + kHeaderSize + payload.size());
  put_u32(out, kMagic);
  put_u32(out, len);
  put_u32(out, stream);
  put_u16(out, static_cast<uint16_t>(type));
  put_u16(out, flags);
  out.append(payload);
  return {};
}

Result<std::string> encode_frame(const Frame& f) {
  std::string out;
  FORKVM_CHECK(append_frame(out, f.type, f.stream, f.flags, f.payload));
  return out;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (failed_) return;
  // Compact lazily: only when the consumed prefix dominates, so feeding
  // byte by byte stays linear overall.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

Result<std::optional<Frame>> FrameDecoder::next() {
  if (failed_) return Error{error_};
  if (buf_.size() - pos_ < kHeaderSize) return std::optional<Frame>{};
  const char* h = buf_.data() + pos_;
  uint32_t magic = get_u32(h);
  uint32_t len = get_u32(h + 4);
  uint32_t stream = get_u32(h + 8);
  auto type = static_cast<FrameType>(get_u16(h + 12));
  uint16_t flags = get_u16(h + 14);
  Status st = magic == kMagic ? validate_header(type, flags, stream, len, max_payload_)
                              : Status{make_error("bad frame magic {:#010x}", magic)};
  if (!st.ok()) {
    failed_ = true;
    error_ = st.error().message;
    buf_.clear();
    pos_ = 0;
    return st.error();
  }
  if (buf_.size() - pos_ - kHeaderSize < len) return std::optional<Frame>{};
  Frame f;
  f.type = type;
  f.flags = flags;
  f.stream = stream;
  f.payload.assign(h + kHeaderSize, len);
  pos_ += kHeaderSize + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return std::optional<Frame>{std::move(f)};
}

}  // namespace forkvm::agent
