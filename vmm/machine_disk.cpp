// Changes to a running VM's disks: growing a layered disk online.
#include <fmt/format.h>

#include "devices/virtio/blk.hpp"
#include "vmm/machine_impl.hpp"

namespace forkvm {

Status Machine::Impl::control_grow_disk(const GrowDiskRequest& request) {
  const uint32_t d = request.disk;
  if (d >= layered.size())
    return make_error("grow-disk: the VM has {} disk(s), there is no disk {}", layered.size(), d);
  if (!layered[d])
    return make_error("grow-disk: disk {} is a raw image file; only layered (chain:) disks grow", d);
  // The vCPUs read the configuration space the capacity lives in, and the
  // device's worker may still be writing the disk: both stop first. With
  // the vCPUs paused and this (the event) thread here, nothing submits more.
  const bool was_paused = user_paused.load();
  if (!was_paused) FORKVM_CHECK(pause_vcpus().context("grow-disk"));
  Status grown = blks[d]->wait_idle();
  if (grown.ok()) grown = layered[d]->grow(request.bytes);
  if (grown.ok()) blks[d]->capacity_changed();
  if (!was_paused) resume_vcpus();
  return std::move(grown).context(fmt::format("grow-disk {}", d));
}

}  // namespace forkvm
