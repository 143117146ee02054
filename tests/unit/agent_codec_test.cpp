// The agent wire codec: round trips, partial input, and refusal of
// everything a hostile peer might send.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "guestinit/protocol.hpp"

using namespace forkvm::agent;

namespace {

std::string frame(FrameType t, uint32_t stream, uint16_t flags, std::string_view payload) {
  std::string out;
  REQUIRE(append_frame(out, t, stream, flags, payload).ok());
  return out;
}

// A raw header, bypassing the encoder's checks.
std::string raw_header(uint32_t magic, uint32_t len, uint32_t stream, uint16_t type, uint16_t flags) {
  std::string h;
  for (uint32_t v : {magic, len, stream})
    for (int i = 0; i < 4; ++i) h.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  for (uint16_t v : {type, flags})
    for (int i = 0; i < 2; ++i) h.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return h;
}

}  // namespace

TEST_CASE("agent codec: round trip of every frame type") {
  std::string bytes = frame(FrameType::Hello, 0, 0, R"({"protocol":{"major":1}})");
  bytes += frame(FrameType::Request, 7, 0, R"({"op":"exec"})");
  bytes += frame(FrameType::Data, 7, static_cast<uint16_t>(Channel::Stdout), std::string("a\0b", 3));
  bytes += frame(FrameType::Data, 7, static_cast<uint16_t>(Channel::Input) | kFlagEof, "");
  bytes += frame(FrameType::Event, 7, 0, "{}");
  bytes += frame(FrameType::Cancel, 7, 0, "");
  bytes += frame(FrameType::End, 7, 0, R"({"ok":true,"result":{}})");
  FrameDecoder d;
  d.feed(bytes);
  std::vector<Frame> got;
  for (;;) {
    auto f = d.next();
    REQUIRE(f.ok());
    if (!f->has_value()) break;
    got.push_back(**f);
  }
  REQUIRE(got.size() == 7);
  CHECK(got[0].type == FrameType::Hello);
  CHECK(got[1].payload == R"({"op":"exec"})");
  CHECK(got[1].stream == 7);
  CHECK(got[2].channel() == Channel::Stdout);
  CHECK(got[2].payload == std::string("a\0b", 3));
  CHECK(got[3].eof());
  CHECK(got[3].channel() == Channel::Input);
  CHECK(got[5].type == FrameType::Cancel);
  CHECK(got[6].type == FrameType::End);
  CHECK(d.buffered() == 0);
}

TEST_CASE("agent codec: input split at every byte boundary") {
  std::string bytes =
      frame(FrameType::Request, 3, 0, R"({"op":"ready"})") + frame(FrameType::End, 3, 0, "{}");
  for (size_t split = 0; split <= bytes.size(); ++split) {
    FrameDecoder d;
    int frames = 0;
    for (std::string_view part :
         {std::string_view(bytes).substr(0, split), std::string_view(bytes).substr(split)}) {
      d.feed(part);
      for (;;) {
        auto f = d.next();
        REQUIRE(f.ok());
        if (!f->has_value()) break;
        ++frames;
      }
    }
    CHECK(frames == 2);
  }
  // Byte by byte.
  FrameDecoder d;
  int frames = 0;
  for (char c : bytes) {
    d.feed(std::string_view(&c, 1));
    auto f = d.next();
    REQUIRE(f.ok());
    if (f->has_value()) ++frames;
  }
  CHECK(frames == 2);
}

TEST_CASE("agent codec: oversized length is refused from the header alone") {
  FrameDecoder d;
  d.feed(raw_header(kMagic, kMaxPayload + 1, 1, static_cast<uint16_t>(FrameType::Data), 1));
  auto f = d.next();
  CHECK_FALSE(f.ok());
  CHECK(d.failed());
  // Poisoned: even a good frame afterwards is refused.
  d.feed(frame(FrameType::Event, 1, 0, "{}"));
  CHECK_FALSE(d.next().ok());
  // And the encoder refuses to make one.
  std::string out;
  CHECK_FALSE(append_frame(out, FrameType::Data, 1, 0, std::string(kMaxPayload + 1, 'x')).ok());
  CHECK(append_frame(out, FrameType::Data, 1, 0, std::string(kMaxPayload, 'x')).ok());
  // A smaller cap for a decoder applies too.
  FrameDecoder small(16);
  small.feed(frame(FrameType::Event, 1, 0, std::string(17, 'x')));
  CHECK_FALSE(small.next().ok());
}

TEST_CASE("agent codec: unknown type, bad flags, bad stream ids and bad magic are refused") {
  auto refused = [](const std::string& bytes) {
    FrameDecoder d;
    d.feed(bytes);
    return !d.next().ok();
  };
  CHECK(refused(raw_header(kMagic, 0, 1, 0, 0)));
  CHECK(refused(raw_header(kMagic, 0, 1, 7, 0)));
  CHECK(refused(raw_header(kMagic, 0, 1, 0xffff, 0)));
  CHECK(refused(raw_header(kMagic, 0, 1, static_cast<uint16_t>(FrameType::Event), 1)));  // flags on control
  CHECK(refused(raw_header(kMagic, 0, 1, static_cast<uint16_t>(FrameType::Data), 4)));   // unknown channel
  CHECK(
      refused(raw_header(kMagic, 0, 1, static_cast<uint16_t>(FrameType::Data), 0x8001)));  // unknown flag bit
  CHECK(refused(raw_header(kMagic, 0, 0, static_cast<uint16_t>(FrameType::Request), 0)));  // stream 0
  CHECK(refused(raw_header(kMagic, 0, 5, static_cast<uint16_t>(FrameType::Hello), 0)));  // hello off stream 0
  CHECK(refused(raw_header(kMagic, 3, 5, static_cast<uint16_t>(FrameType::Cancel), 0) + "abc"));
  CHECK(refused(raw_header(0x12345678, 0, 1, static_cast<uint16_t>(FrameType::Event), 0)));
  CHECK_FALSE(refused(raw_header(kMagic, 0, 1, static_cast<uint16_t>(FrameType::Data), 0x0102)));
}

TEST_CASE("agent codec: garbage is refused, never over-read") {
  FrameDecoder d;
  d.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK_FALSE(d.next().ok());
  // A short garbage prefix waits for more input rather than guessing.
  FrameDecoder e;
  e.feed("FKA");
  auto f = e.next();
  REQUIRE(f.ok());
  CHECK_FALSE(f->has_value());
}
