// The identity op without its syscalls: request validation, hex, host
// names, machine-id format, the clock rule, the order of the steps (with a
// fake IdentitySystem) and the atomic file write it uses for /etc.
#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "guestinit/fs_util.hpp"
#include "guestinit/hex.hpp"
#include "guestinit/identity.hpp"

using namespace forkvm;
using namespace forkvm::agent;

namespace {

constexpr int64_t kNow = 1'700'000'000'000'000'000;

std::string seed_hex(size_t bytes) { return std::string(bytes * 2, 'a'); }

Result<IdentitySpec> parse(const std::string& json) {
  auto d = parse_object(json);
  REQUIRE(d.ok());
  return parse_identity_request(*d);
}

std::string req(const std::string& extra, size_t seed_bytes = 64) {
  return fmt::format(R"({{"op":"identity","seed":"{}","unixTimeNs":{}{}}})", seed_hex(seed_bytes), kNow,
                     extra);
}

// Records what the op would have done to a guest.
struct FakeSystem final : IdentitySystem {
  std::vector<std::string> calls;
  int64_t guest_ns = kNow;
  std::string fail;  // the call that fails
  std::string files;

  Status maybe_fail(const std::string& what) {
    calls.push_back(what);
    if (what.rfind(fail, 0) == 0 && !fail.empty()) return make_error("{} failed", what);
    return {};
  }
  Status reseed(std::string_view seed) override { return maybe_fail(fmt::format("reseed {}", seed.size())); }
  Result<int64_t> realtime_ns() override {
    FORKVM_CHECK(maybe_fail("now"));
    return guest_ns;
  }
  Status set_realtime_ns(int64_t ns) override { return maybe_fail(fmt::format("settime {}", ns)); }
  Result<std::string> random_bytes(size_t n) override {
    FORKVM_CHECK(maybe_fail(fmt::format("random {}", n)));
    return std::string(n, '\xff');
  }
  Status write_file(std::string_view path, std::string_view content, unsigned mode) override {
    files += fmt::format("{} {:o} {}", path, mode, content);
    return maybe_fail(fmt::format("write {}", path));
  }
  Status set_hostname(std::string_view name) override { return maybe_fail(fmt::format("hostname {}", name)); }
};

}  // namespace

TEST_CASE("hex round trip and bad hex") {
  CHECK(hex_encode(std::string("\x00\x01\xab\xff", 4)) == "0001abff");
  CHECK(hex_decode("0001ABff") == std::string("\x00\x01\xab\xff", 4));
  CHECK(hex_decode("") == std::string());
  CHECK_FALSE(hex_decode("abc"));  // odd length
  CHECK_FALSE(hex_decode("zz"));
  CHECK_FALSE(hex_decode("0x00"));
  CHECK_FALSE(hex_decode("a "));
}

TEST_CASE("identity request: a full valid request") {
  auto s = parse(req(R"(,"hostname":"web-1.example","regenerateMachineId":true)"));
  REQUIRE(s.ok());
  CHECK(s->seed == std::string(64, '\xaa'));
  CHECK(s->unix_time_ns == kNow);
  CHECK(s->hostname == "web-1.example");
  CHECK(s->regenerate_machine_id);
  auto minimal = parse(req(""));
  REQUIRE(minimal.ok());
  CHECK_FALSE(minimal->hostname);
  CHECK_FALSE(minimal->regenerate_machine_id);
  CHECK_FALSE(parse(req(R"(,"hostname":null)"))->hostname);  // null: keep the name
}

TEST_CASE("identity request: seed length and encoding") {
  CHECK(parse(req("", 16)).ok());
  CHECK(parse(req("", 512)).ok());
  auto short_seed = parse(req("", 15));
  REQUIRE_FALSE(short_seed.ok());
  CHECK(short_seed.error().message == "seed has 15 bytes; 16..512 are accepted");
  CHECK_FALSE(parse(req("", 513)).ok());
  CHECK_FALSE(parse(req("", 0)).ok());
  auto bad = parse(fmt::format(R"({{"seed":"{}zz","unixTimeNs":{}}})", seed_hex(32), kNow));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("not hex") != std::string::npos);
  CHECK_FALSE(parse(fmt::format(R"({{"seed":"{}a","unixTimeNs":{}}})", seed_hex(32), kNow)).ok());
  // base64 is not accepted: '+', '/', '=' are not hex.
  CHECK_FALSE(
      parse(fmt::format(R"({{"seed":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","unixTimeNs":{}}})", kNow)).ok());
  auto missing = parse(fmt::format(R"({{"unixTimeNs":{}}})", kNow));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("seed") != std::string::npos);
  CHECK_FALSE(parse(fmt::format(R"({{"seed":123,"unixTimeNs":{}}})", kNow)).ok());
}

TEST_CASE("identity request: the time must be nanoseconds since the epoch") {
  auto missing = parse(fmt::format(R"({{"seed":"{}"}})", seed_hex(32)));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("unixTimeNs") != std::string::npos);
  // Seconds, milliseconds and microseconds of today are all refused.
  for (int64_t t :
       {int64_t{1'700'000'000}, int64_t{1'700'000'000'000}, int64_t{1'700'000'000'000'000}, int64_t{-1}}) {
    auto r = parse(fmt::format(R"({{"seed":"{}","unixTimeNs":{}}})", seed_hex(32), t));
    CHECK_FALSE(r.ok());
  }
  CHECK_FALSE(parse(fmt::format(R"({{"seed":"{}","unixTimeNs":"{}"}})", seed_hex(32), kNow)).ok());
  CHECK_FALSE(parse(fmt::format(R"({{"seed":"{}","unixTimeNs":1.7e18}})", seed_hex(32))).ok());
}

TEST_CASE("identity request: hostname and regenerateMachineId types") {
  auto bad = parse(req(R"(,"hostname":"bad_name")"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("hostname 'bad_name'") != std::string::npos);
  CHECK_FALSE(parse(req(R"(,"hostname":"")")).ok());
  CHECK_FALSE(parse(req(R"(,"hostname":7)")).ok());
  CHECK_FALSE(parse(req(R"(,"regenerateMachineId":"yes")")).ok());
  CHECK_FALSE(parse(req(R"(,"regenerateMachineId":1)")).ok());
}

TEST_CASE("host names follow RFC 1123 labels") {
  for (const char* ok : {"a", "web-1", "1st", "UPPER", "a.b.c", "vm-0123.forkvm.local", "xn--bcher-kva"})
    CHECK_MESSAGE(valid_hostname(ok), ok);
  CHECK(valid_hostname(std::string(63, 'a')));
  CHECK_FALSE(valid_hostname(std::string(64, 'a')));                               // a label is at most 63
  CHECK(valid_hostname(std::string(31, 'a') + "." + std::string(32, 'b')));        // 64 in all
  CHECK_FALSE(valid_hostname(std::string(32, 'a') + "." + std::string(32, 'b')));  // 65: over HOST_NAME_MAX
  for (const char* bad :
       {"", "-a", "a-", "a_b", "a..b", "a.", ".a", "a b", "a/b", "a\nb", "h\xc3\xa9", "a.-b"})
    CHECK_MESSAGE(!valid_hostname(bad), bad);
}

TEST_CASE("machine-id: 32 lowercase hex characters with version 4 bits") {
  CHECK(format_machine_id(std::string(16, '\0')) == "00000000000040008000000000000000");
  std::string id = format_machine_id(std::string(16, '\xff'));
  CHECK(id == "ffffffffffff4fffbfffffffffffffff");
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
}

TEST_CASE("the clock steps only beyond the threshold") {
  CHECK(clock_step_ns(kNow, kNow) == 0);
  CHECK(clock_step_ns(kNow + 1'000'000, kNow) == 0);  // exactly 1 ms: noise
  CHECK(clock_step_ns(kNow + 1'000'001, kNow) == 1'000'001);
  CHECK(clock_step_ns(kNow - 5'000'000'000, kNow) == -5'000'000'000);  // the guest is ahead: step back
  CHECK(clock_step_ns(kNow + 10, kNow, 0) == 10);
}

TEST_CASE("apply_identity: every step, in order") {
  FakeSystem sys;
  sys.guest_ns = kNow - 3'000'000'000;  // a snapshot restored 3 s later
  IdentitySpec spec{std::string(64, 'x'), kNow, "child-1", true};
  auto o = apply_identity(spec, sys);
  REQUIRE(o.ok());
  // The machine-id is drawn after the reseed, or every fork would draw the same.
  CHECK(sys.calls == std::vector<std::string>{"reseed 64", "now", fmt::format("settime {}", kNow),
                                              "random 16", "write /etc/machine-id", "write /etc/hostname",
                                              "hostname child-1"});
  CHECK(sys.files == "/etc/machine-id 444 ffffffffffff4fffbfffffffffffffff\n/etc/hostname 644 child-1\n");
  CHECK(o->reseeded);
  CHECK(o->clock_offset_ns == 3'000'000'000);
  CHECK(o->clock_step_ns == 3'000'000'000);
  CHECK(identity_result_json(*o) ==
        R"({"reseeded":true,"clockOffsetNs":3000000000,"clockStepNs":3000000000,)"
        R"("machineId":"ffffffffffff4fffbfffffffffffffff","hostname":"child-1"})");
}

TEST_CASE("apply_identity: only what was asked") {
  FakeSystem sys;
  sys.guest_ns = kNow - 200'000;  // 0.2 ms behind: no step
  auto o = apply_identity(IdentitySpec{std::string(16, 'x'), kNow, std::nullopt, false}, sys);
  REQUIRE(o.ok());
  CHECK(sys.calls == std::vector<std::string>{"reseed 16", "now"});
  CHECK(identity_result_json(*o) == R"({"reseeded":true,"clockOffsetNs":200000,"clockStepNs":0})");
}

TEST_CASE("apply_identity: stops at the first failure and says what was done") {
  IdentitySpec spec{std::string(64, 'x'), kNow, "child-1", true};
  {
    FakeSystem sys;
    sys.fail = "reseed";
    auto o = apply_identity(spec, sys);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().message == "reseed: reseed 64 failed (nothing changed)");
    CHECK(sys.calls.size() == 1);  // no machine-id from an RNG that was not reseeded
  }
  {
    FakeSystem sys;
    sys.guest_ns = kNow - 2'000'000;
    sys.fail = "settime";
    auto o = apply_identity(spec, sys);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().message.rfind("clock: settime", 0) == 0);
    CHECK(o.error().message.find("(done: reseeded)") != std::string::npos);
  }
  {
    FakeSystem sys;
    sys.guest_ns = kNow - 2'000'000;
    sys.fail = "write /etc/hostname";
    auto o = apply_identity(spec, sys);
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().message ==
          "hostname: write /etc/hostname failed (done: reseeded, clock stepped by 2000000 ns, "
          "machine-id ffffffffffff4fffbfffffffffffffff)");
    CHECK(sys.calls.back() == "write /etc/hostname");  // the running name is left alone
  }
}

TEST_CASE("write_file_atomic replaces a file whole and leaves no temp file") {
  char tmpl[] = "/tmp/forkvm-identity-test.XXXXXX";
  REQUIRE(::mkdtemp(tmpl) != nullptr);
  std::string dir = tmpl;
  std::string path = dir + "/machine-id";
  auto read = [&] {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  };
  REQUIRE(write_file_atomic(path, "old\n", 0644).ok());
  REQUIRE(write_file_atomic(path, "0123456789abcdef0123456789abcdef\n", 0444).ok());
  CHECK(read() == "0123456789abcdef0123456789abcdef\n");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0444);
  int entries = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      entries += std::string_view(e->d_name) == "." || std::string_view(e->d_name) == ".." ? 0 : 1;
    ::closedir(d);
  }
  CHECK(entries == 1);
  auto missing = write_file_atomic(dir + "/no/such/dir/hostname", "x\n", 0644);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("create temp file in " + dir + "/no/such/dir") == 0);
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}
