// The "identity" op's logic: after a live fork or a restore, several guests
// run from one memory image, so each must reseed its RNG, step its clock and
// (when asked) take a new machine-id and hostname. Parsing, validation and
// the order of the steps live here, pure; the syscalls sit behind
// IdentitySystem (identity_sys.cpp is the real one) so tests can fake them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "guestinit/json.hpp"
#include "vmm/result.hpp"

namespace forkvm::agent {

// The seed is host randomness: fewer than 16 bytes is too little to matter,
// more than 512 is a confused host (the kernel pool takes 256 at a time).
inline constexpr size_t kMinSeedBytes = 16;
inline constexpr size_t kMaxSeedBytes = 512;
// Below this (2001-09-09) the host sent seconds, ms or us, not ns: refusing
// beats setting the guest's clock to 1970.
inline constexpr int64_t kMinUnixTimeNs = 1'000'000'000'000'000'000;
// Steps within this are noise (the request's own transit time).
inline constexpr int64_t kClockStepThresholdNs = 1'000'000;
// The kernel's HOST_NAME_MAX.
inline constexpr size_t kMaxHostname = 64;
inline constexpr std::string_view kMachineIdPath = "/etc/machine-id";
inline constexpr std::string_view kHostnamePath = "/etc/hostname";

struct IdentitySpec {
  std::string seed;  // raw bytes, decoded from hex
  int64_t unix_time_ns = 0;
  std::optional<std::string> hostname;
  bool regenerate_machine_id = false;
};

// Validates every field before anything is done, so a bad request changes
// nothing. Errors are BAD_REQUEST messages naming the field.
Result<IdentitySpec> parse_identity_request(const JsonValue& req);

// RFC 1123 host names: dot-separated labels of 1-63 letters, digits and
// '-', not starting or ending with '-'; at most kMaxHostname in all.
bool valid_hostname(std::string_view name);

// 16 random bytes as systemd writes a machine-id: a version 4 UUID's bits,
// 32 lowercase hex characters (the file adds a newline).
std::string format_machine_id(std::string_view random16);

// The step to make: host - guest, or 0 when within the threshold.
int64_t clock_step_ns(int64_t host_ns, int64_t guest_ns, int64_t threshold_ns = kClockStepThresholdNs);

// Everything the op reads from or does to the guest, one syscall's worth each.
class IdentitySystem {
 public:
  virtual ~IdentitySystem() = default;
  // Mixes seed into the input pool (credited) and reseeds the CRNG now.
  virtual Status reseed(std::string_view seed) = 0;
  virtual Result<int64_t> realtime_ns() = 0;
  virtual Status set_realtime_ns(int64_t ns) = 0;
  virtual Result<std::string> random_bytes(size_t n) = 0;
  virtual Status write_file(std::string_view path, std::string_view content, unsigned mode) = 0;
  virtual Status set_hostname(std::string_view name) = 0;
};

struct IdentityOutcome {
  bool reseeded = false;
  int64_t clock_offset_ns = 0;  // host - guest, as measured
  int64_t clock_step_ns = 0;    // the step made (0: none)
  std::string machine_id;       // set when regenerated
  std::string hostname;         // set when changed
};

// Reseed, clock, machine-id, hostname, in that order: the machine-id is
// drawn after the reseed, or every fork would draw the same one. Stops at
// the first failure; the error says which step failed and what was done.
Result<IdentityOutcome> apply_identity(const IdentitySpec& spec, IdentitySystem& sys);

std::string identity_result_json(const IdentityOutcome& o);

}  // namespace forkvm::agent
