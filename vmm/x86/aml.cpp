#include "vmm/x86/aml.hpp"

#include <stdexcept>

namespace forkvm::x86::aml {
namespace {

constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kMethodOp = 0x14;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kNotifyOp = 0x86;
constexpr uint8_t kExtendedInterrupt = 0x89;  // large resource item
constexpr uint8_t kEndTag = 0x79;             // small resource item, 1 byte of checksum
constexpr uint8_t kIntConsumer = 1U << 0;
constexpr uint8_t kIntEdge = 1U << 1;  // active high (bit 2 clear), exclusive (bit 3 clear)

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

void put_le(Bytes& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// opcode(s), PkgLength, then body: the shape of every scoped term.
Bytes scoped(std::initializer_list<uint8_t> opcode, const Bytes& body) {
  Bytes out(opcode);
  append(out, pkg_length(body.size()));
  append(out, body);
  return out;
}

}  // namespace

Bytes name_string(std::string_view path) {
  Bytes out;
  if (!path.empty() && path.front() == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  std::vector<std::string_view> segs;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    segs.push_back(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  }
  // Our names are compile-time constants; a bad one is a programming error.
  if (segs.empty() || segs.size() > 255) throw std::invalid_argument("AML name: no segments");
  if (segs.size() == 2) out.push_back(kDualNamePrefix);
  if (segs.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (std::string_view seg : segs) {
    if (seg.empty() || seg.size() > 4) throw std::invalid_argument("AML name: a segment is 1-4 characters");
    out.insert(out.end(), seg.begin(), seg.end());
    out.insert(out.end(), 4 - seg.size(), '_');
  }
  return out;
}

Bytes pkg_length(size_t body_size) {
  // One byte holds 6 bits; with n (1-3) more bytes, 4 + 8n bits.
  if (body_size + 1 < 0x40) return {static_cast<uint8_t>(body_size + 1)};
  for (unsigned extra = 1; extra <= 3; ++extra) {
    const size_t total = body_size + 1 + extra;
    if (total < (size_t{1} << (4 + 8 * extra))) {
      Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0x0f))};
      put_le(out, total >> 4, static_cast<int>(extra));
      return out;
    }
  }
  throw std::invalid_argument("AML PkgLength: more than 256 MiB");
}

Bytes integer(uint64_t v) {
  if (v == 0) return {kZeroOp};
  if (v == 1) return {kOneOp};
  Bytes out;
  if (v <= 0xff) {
    out.push_back(kBytePrefix);
    put_le(out, v, 1);
  } else if (v <= 0xffff) {
    out.push_back(kWordPrefix);
    put_le(out, v, 2);
  } else if (v <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    put_le(out, v, 4);
  } else {
    out.push_back(kQWordPrefix);
    put_le(out, v, 8);
  }
  return out;
}

Bytes string(std::string_view s) {
  Bytes out{kStringPrefix};
  out.insert(out.end(), s.begin(), s.end());
  out.push_back(0);
  return out;
}

Bytes name(std::string_view path, const Bytes& object) {
  Bytes out{kNameOp};
  append(out, name_string(path));
  append(out, object);
  return out;
}

Bytes package(std::span<const Bytes> elements) {
  if (elements.size() > 255) throw std::invalid_argument("AML Package: more than 255 elements");
  Bytes body{static_cast<uint8_t>(elements.size())};
  for (const Bytes& e : elements) append(body, e);
  return scoped({kPackageOp}, body);
}

Bytes buffer(std::span<const uint8_t> bytes) {
  Bytes body = integer(bytes.size());
  body.insert(body.end(), bytes.begin(), bytes.end());
  return scoped({kBufferOp}, body);
}

Bytes scope(std::string_view path, const Bytes& body) {
  return scoped({kScopeOp}, join({name_string(path), body}));
}

Bytes device(std::string_view path, const Bytes& body) {
  return scoped({kExtOpPrefix, kDeviceOp}, join({name_string(path), body}));
}

Bytes method(std::string_view path, uint8_t arg_count, const Bytes& body) {
  if (arg_count > 7) throw std::invalid_argument("AML Method: at most 7 arguments");
  // MethodFlags: argument count in bits 0-2; not serialized, sync level 0.
  return scoped({kMethodOp}, join({name_string(path), Bytes{arg_count}, body}));
}

Bytes notify(std::string_view target, uint64_t value) {
  return join({Bytes{kNotifyOp}, name_string(target), integer(value)});
}

Bytes edge_interrupt_resource(uint32_t gsi) {
  Bytes r{kExtendedInterrupt};
  put_le(r, 6, 2);  // flags, table length, one 32-bit interrupt number
  r.push_back(kIntConsumer | kIntEdge);
  r.push_back(1);
  put_le(r, gsi, 4);
  r.push_back(kEndTag);
  r.push_back(0);  // checksum 0: "treat as correct"
  return buffer(r);
}

Bytes join(std::initializer_list<Bytes> terms) {
  Bytes out;
  for (const Bytes& t : terms) append(out, t);
  return out;
}

}  // namespace forkvm::x86::aml
