// The privileged half of the identity op: the real IdentitySystem. Every
// call here changes the whole guest (entropy pool, wall clock, hostname,
// /etc), so the host-side tests fake it and only a real guest runs it.
#pragma once

#include "guestinit/identity.hpp"

namespace forkvm::agent {

class LinuxIdentitySystem final : public IdentitySystem {
 public:
  // RNDADDENTROPY then RNDRESEEDCRNG on /dev/urandom (CAP_SYS_ADMIN).
  Status reseed(std::string_view seed) override;
  Result<int64_t> realtime_ns() override;
  Status set_realtime_ns(int64_t ns) override;          // clock_settime (CAP_SYS_TIME)
  Result<std::string> random_bytes(size_t n) override;  // getrandom(), after the reseed
  Status write_file(std::string_view path, std::string_view content, unsigned mode) override;
  Status set_hostname(std::string_view name) override;  // sethostname (CAP_SYS_ADMIN)
};

}  // namespace forkvm::agent
