// What a VMM can set up before it knows which snapshot it will restore: the
// KVM VM with its in-kernel interrupt controllers and PIT, and its vCPUs.
// Creating them costs milliseconds on hardware KVM (and ~100 ms in the nested
// rig); a standby VMM (`forkvm restore --standby`) pays that ahead of time
// so a restore does not (Machine::restore).
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/kvm.hpp"
#include "vmm/result.hpp"
#include "vmm/vcpu.hpp"
#include "vmm/vm.hpp"

namespace forkvm {

struct PreparedVm {
  Kvm kvm;
  Vm vm;                    // setup_x86() done
  std::vector<Vcpu> vcpus;  // indices 0..n-1, no state set

  static Result<PreparedVm> create(uint32_t vcpus);
};

}  // namespace forkvm
