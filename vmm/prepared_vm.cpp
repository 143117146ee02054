#include "vmm/prepared_vm.hpp"

namespace forkvm {

Result<PreparedVm> PreparedVm::create(uint32_t vcpus) {
  auto kvm = FORKVM_TRY(Kvm::open());
  auto vm = FORKVM_TRY(Vm::create(kvm));
  FORKVM_CHECK(vm.setup_x86());
  std::vector<Vcpu> created;
  created.reserve(vcpus);
  for (uint32_t i = 0; i < vcpus; ++i) created.push_back(FORKVM_TRY(Vcpu::create(vm, kvm, i)));
  return PreparedVm{std::move(kvm), std::move(vm), std::move(created)};
}

}  // namespace forkvm
