#include "devices/virtio/blk_request.hpp"

#include <algorithm>
#include <cstring>

namespace forkvm::virtio::blk {
namespace {

Request refuse(Request r, uint8_t status) {
  r.early_status = status;
  return r;
}

}  // namespace

Result<Request> parse_request(std::span<const Descriptor> chain, const DiskLimits& disk) {
  if (chain.empty()) return make_error("virtio-blk request has no descriptors");
  const Descriptor& last = chain.back();
  if (!last.writable)
    return make_error("virtio-blk request's last descriptor (status) is not device-writable");

  Request r;
  r.status = last.data.data();
  // A status descriptor longer than one byte means the driver expects a
  // layout (zoned append) we never offered.
  if (last.data.size() != 1 || chain.size() < 2) return refuse(r, kStatusIoErr);

  const Descriptor& header = chain.front();
  if (header.writable || header.data.size() != kHeaderBytes) return refuse(r, kStatusIoErr);
  // Copied once: the guest can rewrite its memory while we look at it.
  uint8_t raw[kHeaderBytes];
  std::memcpy(raw, header.data.data(), sizeof raw);
  std::memcpy(&r.type, raw, sizeof r.type);
  std::memcpy(&r.sector, raw + 8, sizeof r.sector);

  r.data = chain.subspan(1, chain.size() - 2);
  if (r.data.size() > disk.seg_max) return refuse(r, kStatusIoErr);
  for (const Descriptor& d : r.data) {
    if (d.data.size() > disk.size_max) return refuse(r, kStatusIoErr);
    r.data_len += d.data.size();  // at most seg_max * 4 GiB: no overflow
  }

  switch (r.type) {
    case kTypeIn:
    case kTypeOut: {
      const bool to_guest = r.type == kTypeIn;
      if (!to_guest && disk.read_only) return refuse(r, kStatusIoErr);
      if (r.data.empty() || r.data_len % kSectorSize != 0) return refuse(r, kStatusIoErr);
      if (!std::all_of(r.data.begin(), r.data.end(),
                       [&](const Descriptor& d) { return d.writable == to_guest; })) {
        return refuse(r, kStatusIoErr);
      }
      // Written so nothing can overflow: sector + sectors <= capacity.
      const uint64_t sectors = r.data_len >> kSectorShift;
      if (r.sector > disk.capacity_sectors || sectors > disk.capacity_sectors - r.sector) {
        return refuse(r, kStatusIoErr);
      }
      return r;
    }
    case kTypeFlush:
      if (!r.data.empty()) return refuse(r, kStatusIoErr);
      return r;
    case kTypeGetId:
      if (r.data.empty() ||
          !std::all_of(r.data.begin(), r.data.end(), [](const Descriptor& d) { return d.writable; })) {
        return refuse(r, kStatusIoErr);
      }
      return r;
    default:
      return refuse(r, kStatusUnsupp);
  }
}

size_t write_id(const Request& req, const std::array<uint8_t, kIdBytes>& id) {
  size_t done = 0;
  for (const Descriptor& d : req.data) {
    const size_t n = std::min(d.data.size(), id.size() - done);
    std::memcpy(d.data.data(), id.data() + done, n);
    done += n;
    if (done == id.size()) break;
  }
  return done;
}

}  // namespace forkvm::virtio::blk
