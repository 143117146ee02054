// The machine section of a snapshot: the MachineConfig a VM was built from,
// and how a restore combines it with what the caller asks for. The device
// list must come out the same (the guest knows its devices by MMIO window),
// while host-side identity (console, vsock socket and CID, network slot,
// disk paths) is the restorer's.
#pragma once

#include "vmm/machine.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm::snapshot {

void encode_machine_config(const MachineConfig& config, StateWriter& out);
Result<MachineConfig> decode_machine_config(StateReader& in);

// `recorded` from the snapshot, `given` from the restorer: console, vsock
// (uds_path, guest_cid) and net slot come from `given`; disks too when it
// names any (same count). A device the snapshot has and `given` does not
// configure (or the reverse) is an error that says which option to pass.
Result<MachineConfig> merge_restore_config(const MachineConfig& recorded, const MachineConfig& given);

}  // namespace forkvm::snapshot
