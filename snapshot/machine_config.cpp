#include "snapshot/machine_config.hpp"

namespace forkvm::snapshot {
namespace {
constexpr size_t kMaxPath = 4096;
constexpr size_t kMaxCmdline = 64 * 1024;
constexpr uint32_t kMaxDisks = 16;
constexpr uint32_t kMaxCpus = 255;
}  // namespace

void encode_machine_config(const MachineConfig& c, StateWriter& out) {
  out.str(c.kernel);
  out.str(c.initrd.value_or(""));
  out.str(c.cmdline);
  out.u64(c.mem_mib);
  out.u32(c.cpus);
  out.u32(static_cast<uint32_t>(c.disks.size()));
  for (const auto& d : c.disks) {
    out.str(d.path);
    out.boolean(d.read_only);
    out.boolean(d.chain);
  }
  out.boolean(c.rng);
  out.boolean(c.vsock.has_value());
  if (c.vsock) {
    out.str(c.vsock->uds_path);
    out.u64(c.vsock->guest_cid);
  }
  out.boolean(c.net.has_value());
  if (c.net) out.u32(c.net->slot);
}

Result<MachineConfig> decode_machine_config(StateReader& in) {
  MachineConfig c;
  c.kernel = FORKVM_TRY(in.str(kMaxPath));
  if (auto initrd = FORKVM_TRY(in.str(kMaxPath)); !initrd.empty()) c.initrd = initrd;
  c.cmdline = FORKVM_TRY(in.str(kMaxCmdline));
  c.mem_mib = FORKVM_TRY(in.u64());
  if (c.mem_mib == 0 || c.mem_mib > (1ULL << 20))
    return make_error("state of the machine: {} MiB of memory", c.mem_mib);
  c.cpus = FORKVM_TRY(in.u32());
  if (c.cpus == 0 || c.cpus > kMaxCpus) return make_error("state of the machine: {} vCPUs", c.cpus);
  const uint32_t disks = FORKVM_TRY(in.u32());
  if (disks > kMaxDisks) return make_error("state of the machine: {} disks", disks);
  for (uint32_t i = 0; i < disks; ++i) {
    DiskConfig d;
    d.path = FORKVM_TRY(in.str(kMaxPath));
    d.read_only = FORKVM_TRY(in.boolean());
    d.chain = FORKVM_TRY(in.boolean());
    c.disks.push_back(std::move(d));
  }
  c.rng = FORKVM_TRY(in.boolean());
  if (FORKVM_TRY(in.boolean())) {
    VsockConfig v;
    v.uds_path = FORKVM_TRY(in.str(kMaxPath));
    v.guest_cid = FORKVM_TRY(in.u64());
    c.vsock = v;
  }
  if (FORKVM_TRY(in.boolean())) c.net = NetConfig{FORKVM_TRY(in.u32())};
  return c;
}

Result<MachineConfig> merge_restore_config(const MachineConfig& recorded, const MachineConfig& given) {
  MachineConfig c = recorded;
  c.console = given.console;
  if (recorded.vsock.has_value() != given.vsock.has_value()) {
    return recorded.vsock
               ? make_error("the snapshot has a vsock device: restore needs --vsock PATH")
               : make_error("the snapshot has no vsock device: --vsock cannot be added on restore");
  }
  c.vsock = given.vsock;
  if (!recorded.net && given.net)
    return make_error("the snapshot has no network device: --net cannot be added on restore");
  if (recorded.net) c.net = given.net.value_or(*recorded.net);
  if (!given.disks.empty()) {
    if (given.disks.size() != recorded.disks.size()) {
      return make_error("the snapshot has {} disk(s), {} given", recorded.disks.size(), given.disks.size());
    }
    c.disks = given.disks;
  }
  return c;
}

}  // namespace forkvm::snapshot
