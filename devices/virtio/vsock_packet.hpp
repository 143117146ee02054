// virtio-vsock packets (virtio 1.2, 5.10.6): the 44-byte little-endian
// header, and a descriptor chain seen as one byte stream. A driver may split
// header and payload over descriptors any way it likes (Linux used two
// descriptors for rx buffers until 6.2 and one since), so nothing here
// assumes a layout. Everything is parsed from a copy of guest memory, so a
// guest rewriting its buffers cannot change what was validated.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "vmm/result.hpp"

namespace forkvm::virtio::vsock {

inline constexpr uint32_t kDeviceId = 19;
inline constexpr uint64_t kHostCid = 2;
// CIDs 0-2 are reserved (hypervisor, loopback, host); 2^32-1 is VMADDR_CID_ANY.
inline constexpr uint64_t kMinGuestCid = 3;
inline constexpr uint64_t kMaxGuestCid = 0xFFFF'FFFEULL;
inline constexpr size_t kHeaderSize = 44;
// The largest payload we accept or produce: Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE.
inline constexpr uint32_t kMaxPayload = 64 * 1024;

inline constexpr uint16_t kTypeStream = 1;

enum class Op : uint16_t {
  invalid = 0,
  request = 1,
  response = 2,
  rst = 3,
  shutdown = 4,
  rw = 5,
  credit_update = 6,
  credit_request = 7,
};

inline constexpr uint32_t kShutdownRcv = 1;   // the sender will receive no more
inline constexpr uint32_t kShutdownSend = 2;  // the sender will send no more
inline constexpr uint32_t kEventTransportReset = 0;

struct Header {
  uint64_t src_cid = 0;
  uint64_t dst_cid = 0;
  uint32_t src_port = 0;
  uint32_t dst_port = 0;
  uint32_t len = 0;
  uint16_t type = kTypeStream;
  uint16_t op = 0;
  uint32_t flags = 0;
  uint32_t buf_alloc = 0;
  uint32_t fwd_cnt = 0;

  [[nodiscard]] Op operation() const { return static_cast<Op>(op); }
};

[[nodiscard]] std::array<uint8_t, kHeaderSize> encode(const Header& h);
[[nodiscard]] Header decode(std::span<const uint8_t, kHeaderSize> bytes);

// The buffers of one chain, all device-readable (tx) or all device-writable
// (rx), addressed as one run of bytes.
class SgList {
 public:
  // Walks the chain; a descriptor of the wrong direction or a broken chain
  // is an error (the caller completes the chain with length 0).
  [[nodiscard]] Status collect(DescriptorChain& chain, bool writable);
  // For tests and fuzzers: a list built from host buffers.
  void assign(std::vector<Descriptor> descs);

  [[nodiscard]] uint64_t size() const { return size_; }
  // Bytes copied; fewer than asked at the end of the list.
  size_t copy_out(uint64_t offset, std::span<uint8_t> out) const;
  size_t copy_in(uint64_t offset, std::span<const uint8_t> in);
  // The iovecs for [offset, offset + len) clipped to the list (out is cleared).
  void iovecs(uint64_t offset, uint64_t len, std::vector<iovec>& out) const;

 private:
  std::vector<Descriptor> descs_;
  uint64_t size_ = 0;
};

// What the device does with a tx packet that failed validation.
enum class Verdict {
  accept,
  drop,   // malformed or spoofed: complete the chain and say nothing
  reset,  // well-formed but unservable: answer with RST (never to an RST)
};

struct ParsedTx {
  Verdict verdict = Verdict::drop;
  Header hdr;
  const char* why = "";  // for the log, when not accepted
};

// Reads and validates the header of a tx chain: long enough for the header,
// len within kMaxPayload and the chain's remaining bytes, src_cid the guest's,
// dst_cid the host, a stream packet with a known op.
[[nodiscard]] ParsedTx parse_tx(const SgList& sg, uint64_t guest_cid);

// The RST answering `to` (ports and CIDs swapped).
[[nodiscard]] Header reset_reply(const Header& to);

}  // namespace forkvm::virtio::vsock
