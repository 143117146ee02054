// identity: the host calls it right after a live fork or a restore, when
// several guests have just come out of one memory image with the same RNG
// state, clock and name. See identity.hpp for the steps and their order.
#include "guestinit/identity.hpp"
#include "guestinit/identity_sys.hpp"
#include "guestinit/ops.hpp"
#include "guestinit/stream.hpp"

namespace forkvm::agent {

void op_identity(Stream& s, const JsonValue& req) {
  auto spec = parse_identity_request(req);
  if (!spec.ok()) return s.end_error(code::kBadRequest, spec.error().message);
  LinuxIdentitySystem sys;
  auto done = apply_identity(*spec, sys);
  if (!done.ok()) return s.end_error(code::kIdentityFailed, done.error().message);
  s.end_ok(identity_result_json(*done));
}

}  // namespace forkvm::agent
