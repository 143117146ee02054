// The public face of libforkvm for programs that embed the VMM.
//
//   forkvm::MachineConfig cfg;
//   cfg.kernel = "/var/cache/forkvm/kernel/<hash>/vmlinux";
//   cfg.cpus = 2;
//   auto machine = forkvm::Machine::create(cfg);
//   if (!machine) { /* machine.error().message says why */ }
//   auto exit = (*machine)->run();   // blocks until the guest stops
#pragma once

#include "vmm/machine.hpp"
#include "vmm/result.hpp"
