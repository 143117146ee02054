// The identity op's pure half: request validation, formats, step order.
#include "guestinit/identity.hpp"

#include <vector>

#include "guestinit/hex.hpp"

namespace forkvm::agent {
namespace {

bool valid_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  for (char c : l)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
      return false;
  return true;
}

// "reseeded, clock stepped by N ns": the error context of a later failure.
std::string done_so_far(const IdentityOutcome& o) {
  std::vector<std::string> done;
  if (o.reseeded) done.emplace_back("reseeded");
  if (o.clock_step_ns != 0) done.push_back(fmt::format("clock stepped by {} ns", o.clock_step_ns));
  if (!o.machine_id.empty()) done.push_back("machine-id " + o.machine_id);
  if (done.empty()) return "nothing changed";
  std::string s = "done: " + done[0];
  for (size_t i = 1; i < done.size(); ++i) s += ", " + done[i];
  return s;
}

Error step_error(std::string_view step, const Error& e, const IdentityOutcome& o) {
  return make_error("{}: {} ({})", step, e.message, done_so_far(o));
}

}  // namespace

bool valid_hostname(std::string_view name) {
  if (name.empty() || name.size() > kMaxHostname) return false;
  for (;;) {
    size_t dot = name.find('.');
    if (!valid_label(name.substr(0, dot))) return false;  // also refuses "a..b" and a trailing dot
    if (dot == std::string_view::npos) return true;
    name.remove_prefix(dot + 1);
  }
}

std::string format_machine_id(std::string_view random16) {
  std::string b(random16.substr(0, 16));
  b.resize(16, '\0');
  // As systemd's id128 randomize: version 4, RFC 4122 variant.
  b[6] = static_cast<char>((static_cast<unsigned char>(b[6]) & 0x0fu) | 0x40u);
  b[8] = static_cast<char>((static_cast<unsigned char>(b[8]) & 0x3fu) | 0x80u);
  return hex_encode(b);
}

int64_t clock_step_ns(int64_t host_ns, int64_t guest_ns, int64_t threshold_ns) {
  int64_t d = host_ns - guest_ns;
  return (d > threshold_ns || d < -threshold_ns) ? d : 0;
}

Result<IdentitySpec> parse_identity_request(const JsonValue& req) {
  IdentitySpec spec;
  auto seed_hex = get_str(req, "seed");
  if (!seed_hex) return make_error("seed (hex string) is required");
  auto seed = hex_decode(*seed_hex);
  if (!seed) return make_error("seed is not hex (an even number of 0-9a-f characters)");
  if (seed->size() < kMinSeedBytes || seed->size() > kMaxSeedBytes)
    return make_error("seed has {} bytes; {}..{} are accepted", seed->size(), kMinSeedBytes, kMaxSeedBytes);
  spec.seed = std::move(*seed);

  auto t = get_i64(req, "unixTimeNs");
  if (!t) return make_error("unixTimeNs (integer, ns since the epoch) is required");
  if (*t < kMinUnixTimeNs)
    return make_error("unixTimeNs {} is before 2001: not nanoseconds since the epoch", *t);
  spec.unix_time_ns = *t;

  if (const JsonValue* h = member(req, "hostname"); h != nullptr && !h->IsNull()) {
    auto name = get_str(req, "hostname");
    if (!name || !valid_hostname(*name))
      return make_error(
          "hostname '{}' is not an RFC 1123 host name (labels of letters, digits, '-'; at most {})",
          name ? name->substr(0, 80) : std::string("?"), kMaxHostname);
    spec.hostname = std::move(*name);
  }
  if (const JsonValue* m = member(req, "regenerateMachineId"); m != nullptr && !m->IsBool())
    return make_error("regenerateMachineId must be a boolean");
  spec.regenerate_machine_id = bool_or(req, "regenerateMachineId", false);
  return spec;
}

Result<IdentityOutcome> apply_identity(const IdentitySpec& spec, IdentitySystem& sys) {
  IdentityOutcome o;
  if (auto r = sys.reseed(spec.seed); !r.ok()) return step_error("reseed", r.error(), o);
  o.reseeded = true;

  auto guest = sys.realtime_ns();
  if (!guest.ok()) return step_error("clock", guest.error(), o);
  o.clock_offset_ns = spec.unix_time_ns - *guest;
  if (int64_t step = clock_step_ns(spec.unix_time_ns, *guest); step != 0) {
    if (auto r = sys.set_realtime_ns(spec.unix_time_ns); !r.ok()) return step_error("clock", r.error(), o);
    o.clock_step_ns = step;
  }

  if (spec.regenerate_machine_id) {
    auto bytes = sys.random_bytes(16);
    if (!bytes.ok()) return step_error("machine-id", bytes.error(), o);
    std::string id = format_machine_id(*bytes);
    // systemd writes it read-only.
    if (auto r = sys.write_file(kMachineIdPath, id + "\n", 0444); !r.ok())
      return step_error("machine-id", r.error(), o);
    o.machine_id = std::move(id);
  }

  if (spec.hostname) {
    // The file first: if it cannot be written the running name stays as
    // the file says, and the guest stays consistent across reboots.
    if (auto r = sys.write_file(kHostnamePath, *spec.hostname + "\n", 0644); !r.ok())
      return step_error("hostname", r.error(), o);
    if (auto r = sys.set_hostname(*spec.hostname); !r.ok()) return step_error("hostname", r.error(), o);
    o.hostname = *spec.hostname;
  }
  return o;
}

std::string identity_result_json(const IdentityOutcome& o) {
  JsonWriter w;
  w.begin_object().field("reseeded", o.reseeded);
  w.field("clockOffsetNs", o.clock_offset_ns).field("clockStepNs", o.clock_step_ns);
  if (!o.machine_id.empty()) w.field("machineId", o.machine_id);
  if (!o.hostname.empty()) w.field("hostname", o.hostname);
  return w.end_object().take();
}

}  // namespace forkvm::agent
