// Opening a TAP device for virtio-net: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
// with a 12-byte vnet header (virtio_net_hdr_v1), nonblocking, no offloads
// (the kernel checksums and segments before handing us a frame).
#pragma once

#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::net {

// Creates (or attaches to) TAP `name` in the calling thread's network namespace.
[[nodiscard]] Result<UniqueFd> open_tap(const std::string& name);
// A persistent TAP outlives its last fd (until its netns goes); open_tap of
// the same name attaches to it.
[[nodiscard]] Status set_tap_persistent(const UniqueFd& tap, bool persistent);

}  // namespace forkvm::net
