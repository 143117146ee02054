#include "devices/net/tap.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

namespace forkvm::net {

Result<UniqueFd> open_tap(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return make_error("TAP name '{}' is empty or too long", name);
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return errno_error("open /dev/net/tun");
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.c_str(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return errno_error(fmt::format("TUNSETIFF {}", name));
  int hdr_size = 12;  // struct virtio_net_hdr_v1: VERSION_1 always carries num_buffers
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_size) != 0) return errno_error("TUNSETVNETHDRSZ 12");
  // No offloads: the guest is offered none, so the TAP must not hand it GSO frames.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0UL) != 0) return errno_error("TUNSETOFFLOAD 0");
  return fd;
}

Status set_tap_persistent(const UniqueFd& tap, bool persistent) {
  if (::ioctl(tap.get(), TUNSETPERSIST, persistent ? 1UL : 0UL) != 0)
    return errno_error(fmt::format("TUNSETPERSIST {}", persistent ? 1 : 0));
  return {};
}

}  // namespace forkvm::net
