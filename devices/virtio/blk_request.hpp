// Parsing a virtio-blk request (virtio 1.2, 5.2.6) from a collected
// descriptor chain. Pure: no I/O and no guest writes, so every refusal rule
// is unit-testable without a queue or a disk.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "devices/virtio/queue.hpp"
#include "vmm/result.hpp"

namespace forkvm::virtio::blk {

inline constexpr uint32_t kTypeIn = 0;
inline constexpr uint32_t kTypeOut = 1;
inline constexpr uint32_t kTypeFlush = 4;
inline constexpr uint32_t kTypeGetId = 8;

inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupp = 2;

inline constexpr uint64_t kSectorSize = 512;
inline constexpr uint64_t kSectorShift = 9;
inline constexpr size_t kIdBytes = 20;
inline constexpr size_t kHeaderBytes = 16;  // struct virtio_blk_req: type, reserved, sector

// What the parser needs to know about the disk.
struct DiskLimits {
  uint64_t capacity_sectors = 0;
  bool read_only = false;
  uint32_t seg_max = 0;   // data descriptors per request
  uint32_t size_max = 0;  // bytes per data descriptor
};

struct Request {
  uint32_t type = 0;
  uint64_t sector = 0;
  std::span<const Descriptor> data;  // between the header and the status byte
  uint64_t data_len = 0;
  uint8_t* status = nullptr;  // the status byte in guest memory
  // Not kStatusOk: refuse at once with this status, touching nothing else.
  uint8_t early_status = kStatusOk;
};

// A Request, or an error when the chain has no usable status byte (the last
// descriptor must be device-writable); then the device cannot report
// anything and completes the chain with length 0.
[[nodiscard]] Result<Request> parse_request(std::span<const Descriptor> chain, const DiskLimits& disk);

// Copies the disk id into a GET_ID request's buffers; returns bytes written
// (at most kIdBytes; the id is NUL-padded, unterminated at 20 characters).
size_t write_id(const Request& req, const std::array<uint8_t, kIdBytes>& id);

}  // namespace forkvm::virtio::blk
