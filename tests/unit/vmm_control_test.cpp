// The control socket's request handling, against a recording target: no
// KVM, no socket.
#include <unistd.h>

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "vmm/control.hpp"
#include "vmm/event_loop.hpp"

namespace forkvm {
namespace {

struct Recorder final : ControlTarget {
  std::vector<ForkRequest> forks;
  std::vector<SnapshotRequest> snapshots;
  std::vector<GrowDiskRequest> grows;
  SnapshotDone pending;
  bool stopped = false;

  ControlStatus control_status() override { return {false, 2, 512, true, 7}; }
  Status control_pause() override { return {}; }
  Status control_resume() override { return {}; }
  void control_snapshot(const SnapshotRequest& r, SnapshotDone done) override {
    snapshots.push_back(r);
    pending = std::move(done);
  }
  void control_stop() override { stopped = true; }
  Status control_grow_disk(const GrowDiskRequest& r) override {
    if (r.disk > 0) return make_error("no disk {}", r.disk);
    grows.push_back(r);
    return {};
  }
  Result<ForkStats> control_fork(const ForkRequest& r) override {
    forks.push_back(r);
    ForkStats s;
    s.pause_ms = 1.5;
    for (uint32_t i = 0; i < r.count; ++i) s.children.push_back({100 + static_cast<int>(i), "c.ctl", "c.console"});
    return s;
  }
};

template <typename T>
T take(Result<T> r) {
  REQUIRE(r.ok());
  return std::move(*r);
}

struct Fixture {
  std::unique_ptr<EventLoop> loop = take(EventLoop::create());
  Recorder target;
  std::string path = "/tmp/forkvm-control-test-" + std::to_string(::getpid()) + ".sock";
  std::unique_ptr<ControlServer> server = take(ControlServer::create(*loop, path, target));
  std::vector<std::pair<std::string, bool>> replies;

  void send(const std::string& line) {
    server->handle(line, [this](std::string r, bool stop) { replies.emplace_back(std::move(r), stop); });
  }
};

TEST_CASE("fork: count and prefix, or children spelled out, or a clear error") {
  Fixture f;
  f.send(R"({"op":"fork","count":2,"prefix":"/tmp/p"})");
  REQUIRE(f.target.forks.size() == 1);
  CHECK(f.target.forks[0].count == 2);
  CHECK(f.target.forks[0].prefix == "/tmp/p");
  CHECK(f.replies.back().first.find(R"("pid":101)") != std::string::npos);

  f.send(R"({"op":"fork","children":[{"control":"/r/a.ctl","vsock":"/r/a.vsock","cid":40,"net_slot":37,)"
         R"("disks":["/d/a"],"log":"/d/a.log"}]})");
  REQUIRE(f.target.forks.size() == 2);
  const ForkRequest& r = f.target.forks[1];
  REQUIRE(r.children.size() == 1);
  CHECK(r.count == 1);
  CHECK(r.children[0].control == "/r/a.ctl");
  CHECK(r.children[0].vsock_cid == 40);
  CHECK(r.children[0].net_slot == 37u);
  CHECK(r.children[0].disk_dirs == std::vector<std::string>{"/d/a"});
  CHECK(r.children[0].log == "/d/a.log");

  for (const char* bad : {R"({"op":"fork","children":[]})", R"({"op":"fork","children":[{"console":"x"}]})",
                          R"({"op":"fork","children":[{"control":"x","cid":-1}]})",
                          R"({"op":"fork","children":[{"control":"x","disks":"d"}]})", R"({"op":"fork","count":2})",
                          R"({"op":"fork","count":"2","prefix":"p"})"}) {
    INFO(bad);
    f.send(bad);
    CHECK(f.replies.back().first.find(R"("ok":false)") != std::string::npos);
  }
  CHECK(f.target.forks.size() == 2);
}

TEST_CASE("grow-disk: disk and bytes are required; the target's refusal is the answer") {
  Fixture f;
  f.send(R"({"op":"grow-disk","disk":0,"bytes":4294967296})");
  REQUIRE(f.target.grows.size() == 1);
  CHECK(f.target.grows[0].bytes == 4294967296ULL);
  CHECK(f.replies.back().first == R"({"ok":true,"disk":0,"bytes":4294967296})");
  f.send(R"({"op":"grow-disk","bytes":1})");
  CHECK(f.replies.back().first.find("a disk index") != std::string::npos);
  f.send(R"({"op":"grow-disk","disk":0,"bytes":0})");
  CHECK(f.replies.back().first.find("the disk's new size") != std::string::npos);
  f.send(R"({"op":"grow-disk","disk":1,"bytes":512})");
  CHECK(f.replies.back().first == R"({"ok":false,"error":"no disk 1"})");
  CHECK(f.target.grows.size() == 1);
}

TEST_CASE("snapshot answers when the target is done, not before") {
  Fixture f;
  f.send(R"({"op":"snapshot","dir":"/tmp/s"})");
  REQUIRE(f.target.snapshots.size() == 1);
  CHECK(f.replies.empty());
  SnapshotStats s;
  s.dir = "/tmp/s";
  s.pause_ms = 2;
  s.disks = {"/tmp/s/chain"};
  f.target.pending(s);
  REQUIRE(f.replies.size() == 1);
  CHECK(f.replies[0].first.find(R"("disks":["/tmp/s/chain"])") != std::string::npos);
  CHECK_FALSE(f.replies[0].second);

  f.send(R"({"op":"snapshot","dir":"/tmp/s","stop":true})");
  s.stopped = true;
  f.target.pending(s);
  CHECK(f.replies.back().second);  // the VMM stops once this is sent

  f.send(R"({"op":"snapshot","dir":"/tmp/s"})");
  f.target.pending(make_error("disk full"));
  CHECK(f.replies.back().first.find("disk full") != std::string::npos);
  f.send(R"({"op":"snapshot"})");
  CHECK(f.replies.back().first.find(R"("ok":false)") != std::string::npos);
}

}  // namespace
}  // namespace forkvm
