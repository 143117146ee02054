#include "devices/virtio/vsock_packet.hpp"

#include <algorithm>
#include <cstring>

namespace forkvm::virtio::vsock {
namespace {

template <typename T>
void put(std::array<uint8_t, kHeaderSize>& out, size_t at, T v) {
  std::memcpy(out.data() + at, &v, sizeof v);  // x86 is little-endian, as the wire format
}
template <typename T>
T get(std::span<const uint8_t, kHeaderSize> in, size_t at) {
  T v;
  std::memcpy(&v, in.data() + at, sizeof v);
  return v;
}

}  // namespace

std::array<uint8_t, kHeaderSize> encode(const Header& h) {
  std::array<uint8_t, kHeaderSize> out{};
  put(out, 0, h.src_cid);
  put(out, 8, h.dst_cid);
  put(out, 16, h.src_port);
  put(out, 20, h.dst_port);
  put(out, 24, h.len);
  put(out, 28, h.type);
  put(out, 30, h.op);
  put(out, 32, h.flags);
  put(out, 36, h.buf_alloc);
  put(out, 40, h.fwd_cnt);
  return out;
}

Header decode(std::span<const uint8_t, kHeaderSize> in) {
  Header h;
  h.src_cid = get<uint64_t>(in, 0);
  h.dst_cid = get<uint64_t>(in, 8);
  h.src_port = get<uint32_t>(in, 16);
  h.dst_port = get<uint32_t>(in, 20);
  h.len = get<uint32_t>(in, 24);
  h.type = get<uint16_t>(in, 28);
  h.op = get<uint16_t>(in, 30);
  h.flags = get<uint32_t>(in, 32);
  h.buf_alloc = get<uint32_t>(in, 36);
  h.fwd_cnt = get<uint32_t>(in, 40);
  return h;
}

Status SgList::collect(DescriptorChain& chain, bool writable) {
  descs_.clear();
  size_ = 0;
  for (;;) {
    auto d = FORKVM_TRY(chain.next());
    if (!d.has_value()) return {};
    if (d->writable != writable) {
      return make_error("a device-{} descriptor in a {} chain", d->writable ? "writable" : "readable",
                        writable ? "rx" : "tx");
    }
    // No overflow: the queue bounds a chain to at most 1024 + size descriptors of < 4 GiB.
    size_ += d->data.size();
    descs_.push_back(*d);
  }
}

void SgList::assign(std::vector<Descriptor> descs) {
  descs_ = std::move(descs);
  size_ = 0;
  for (const auto& d : descs_) size_ += d.data.size();
}

size_t SgList::copy_out(uint64_t offset, std::span<uint8_t> out) const {
  size_t done = 0;
  for (const auto& d : descs_) {
    if (done == out.size()) break;
    if (offset >= d.data.size()) {
      offset -= d.data.size();
      continue;
    }
    const size_t n = std::min<size_t>(d.data.size() - offset, out.size() - done);
    std::memcpy(out.data() + done, d.data.data() + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

size_t SgList::copy_in(uint64_t offset, std::span<const uint8_t> in) {
  size_t done = 0;
  for (auto& d : descs_) {
    if (done == in.size()) break;
    if (offset >= d.data.size()) {
      offset -= d.data.size();
      continue;
    }
    const size_t n = std::min<size_t>(d.data.size() - offset, in.size() - done);
    std::memcpy(d.data.data() + offset, in.data() + done, n);
    done += n;
    offset = 0;
  }
  return done;
}

void SgList::iovecs(uint64_t offset, uint64_t len, std::vector<iovec>& out) const {
  out.clear();
  for (const auto& d : descs_) {
    if (len == 0) break;
    if (offset >= d.data.size()) {
      offset -= d.data.size();
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(d.data.size() - offset, len));
    if (n > 0) out.push_back({d.data.data() + offset, n});
    len -= n;
    offset = 0;
  }
}

ParsedTx parse_tx(const SgList& sg, uint64_t guest_cid) {
  ParsedTx r;
  std::array<uint8_t, kHeaderSize> raw{};
  if (sg.size() < kHeaderSize || sg.copy_out(0, raw) != kHeaderSize) {
    r.why = "chain shorter than the packet header";
    return r;
  }
  r.hdr = decode(raw);
  const Header& h = r.hdr;
  if (h.len > kMaxPayload) {
    r.why = "payload length above 64 KiB";
    return r;
  }
  if (h.len > sg.size() - kHeaderSize) {
    r.why = "payload length beyond the chain";
    return r;
  }
  // A guest may only speak for itself: anything else is a spoofing attempt.
  if (h.src_cid != guest_cid) {
    r.why = "src_cid is not the guest's CID";
    return r;
  }
  const bool is_rst = h.operation() == Op::rst;
  if (h.dst_cid != kHostCid) {
    // Another VM or a bogus CID: refuse the connection rather than let it time out.
    r.verdict = is_rst ? Verdict::drop : Verdict::reset;
    r.why = "dst_cid is not the host";
    return r;
  }
  if (h.type != kTypeStream) {
    r.verdict = is_rst ? Verdict::drop : Verdict::reset;
    r.why = "socket type other than stream";
    return r;
  }
  if (h.op == 0 || h.op > static_cast<uint16_t>(Op::credit_request)) {
    r.verdict = Verdict::reset;
    r.why = "unknown op";
    return r;
  }
  if (h.operation() != Op::rw && h.len != 0) {
    r.why = "payload on a control packet";
    return r;
  }
  r.verdict = Verdict::accept;
  return r;
}

Header reset_reply(const Header& to) {
  Header h;
  h.src_cid = to.dst_cid;
  h.dst_cid = to.src_cid;
  h.src_port = to.dst_port;
  h.dst_port = to.src_port;
  h.type = to.type;  // Linux answers in the type it was sent, and matches on it
  h.op = static_cast<uint16_t>(Op::rst);
  return h;
}

}  // namespace forkvm::virtio::vsock
