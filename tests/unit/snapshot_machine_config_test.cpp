#include <doctest/doctest.h>

#include "snapshot/machine_config.hpp"

namespace forkvm::snapshot {
namespace {

MachineConfig sample() {
  MachineConfig c;
  c.kernel = "/k/vmlinux";
  c.initrd = "/k/initrd";
  c.cmdline = "forkvm.test=counter";
  c.mem_mib = 512;
  c.cpus = 2;
  c.disks = {{"/d/root.img", false, false}, {"/d/chain", true, true}};
  c.vsock = VsockConfig{"/tmp/v.sock", 7};
  c.net = NetConfig{3};
  return c;
}

TEST_CASE("machine config round trip") {
  StateWriter w;
  encode_machine_config(sample(), w);
  const auto bytes = w.take();
  StateReader r(bytes, "the machine");
  auto c = decode_machine_config(r);
  REQUIRE(c.ok());
  CHECK(c->kernel == "/k/vmlinux");
  CHECK(c->initrd == "/k/initrd");
  CHECK(c->mem_mib == 512);
  CHECK(c->cpus == 2);
  REQUIRE(c->disks.size() == 2);
  CHECK(c->disks[1].path == "/d/chain");
  CHECK(c->disks[1].read_only);
  CHECK(c->disks[1].chain);
  CHECK(c->vsock->guest_cid == 7);
  CHECK(c->net->slot == 3);
  for (size_t n = 0; n < bytes.size(); ++n) {
    StateReader cut(std::span<const uint8_t>(bytes).first(n), "the machine");
    CHECK_FALSE(decode_machine_config(cut).ok());
  }
}

TEST_CASE("restore takes host identity from the restorer and keeps the device list") {
  const MachineConfig recorded = sample();
  MachineConfig given;
  given.console = "/tmp/c";
  given.vsock = VsockConfig{"/tmp/new.sock", 9};
  auto c = merge_restore_config(recorded, given);
  REQUIRE(c.ok());
  CHECK(c->console == "/tmp/c");
  CHECK(c->vsock->uds_path == "/tmp/new.sock");
  CHECK(c->vsock->guest_cid == 9);
  CHECK(c->net->slot == 3);  // recorded slot unless given
  CHECK(c->disks.size() == 2);
  CHECK(c->mem_mib == 512);

  MachineConfig no_vsock;
  auto missing = merge_restore_config(recorded, no_vsock);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("--vsock") != std::string::npos);

  given.disks = {{"/x.img", false, false}};
  auto wrong = merge_restore_config(recorded, given);
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().message.find("2 disk(s), 1 given") != std::string::npos);
}

}  // namespace
}  // namespace forkvm::snapshot
