// The control socket of a running VMM: a Unix stream socket served on the
// machine's event loop. One JSON object per line in each direction; every
// request gets exactly one response line, in order.
//
//   {"op":"status"}   -> {"ok":true,"state":"running"|"paused","cpus":N,"mem_mib":M,
//                         "restored":bool[,"vsock_cid":C]}
//   {"op":"pause"}    -> {"ok":true,"state":"paused"}
//   {"op":"resume"}   -> {"ok":true,"state":"running"}
//   {"op":"snapshot","dir":"/path"[,"stop":true]}
//                     -> {"ok":true,"dir":"/path","pause_ms":F,"total_ms":F,"state_bytes":N,
//                         "memory_file_bytes":N,"memory_data_bytes":N,"memory_delta":bool,
//                         "disks":["/path/chain",...],"stopped":bool}
//                        pauses the vCPUs, saves device/vCPU/VM state and freezes every
//                        writable layered disk (DIR/chain, DIR/chain.1, ...: the disk as the
//                        memory saw it; the VM goes on with a new top layer). Then the
//                        guest runs again while a fork()ed copy of the VMM writes memory;
//                        the response comes when the snapshot is complete on disk
//                        (total_ms). With "stop":true memory is written while paused and
//                        the VMM exits after the response.
//   {"op":"fork","count":N,"prefix":"/tmp/p"}
//   {"op":"fork","children":[{"control":P,"console":P,"vsock":P,"cid":C,"net_slot":S,
//                             "disks":[DIR,...],"log":P},...]}
//                     -> {"ok":true,"pause_ms":F,"save_ms":F,"freeze_ms":F,"fork_ms":F,
//                         "children":[{"pid":P,"control":"/tmp/p-1.ctl",
//                         "console":"/tmp/p-1.console"},...]}
//                        live fork: N child VMMs continue from this instant, sharing
//                        guest RAM copy-on-write (Machine::fork). Each writable layered
//                        disk is frozen; every child gets a chain of its own in DIR
//                        (default PREFIX-i.disk<d>) over the frozen layers.
//   {"op":"grow-disk","disk":D,"bytes":N}
//                     -> {"ok":true,"disk":D,"bytes":N}
//                        grows layered disk D (0-based, as given on the command line) to
//                        N bytes with the vCPUs briefly paused; the guest gets a
//                        configuration-change interrupt and sees the new capacity (its
//                        filesystem is the guest's to grow: resize2fs). Never shrinks.
//   {"op":"stop"}     -> {"ok":true}, then the VMM exits (`forkvm run` status 130)
//   anything else     -> {"ok":false,"error":"..."}
//
// Requests run on the event loop thread, one at a time per connection; a
// snapshot answers once its memory is written, and the loop serves devices
// and other connections meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "vmm/event_loop.hpp"
#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm {

struct ControlStatus {
  bool paused = false;
  uint32_t cpus = 0;
  uint64_t mem_mib = 0;
  bool restored = false;
  std::optional<uint64_t> vsock_cid;
};

struct SnapshotRequest {
  std::string dir;
  bool stop = false;
};

struct SnapshotStats {
  std::string dir;
  double pause_ms = 0;  // vCPUs paused until resumed (or until saved, with stop)
  double total_ms = 0;  // until the snapshot was complete on disk
  uint64_t state_bytes = 0;
  uint64_t memory_file_bytes = 0;  // guest RAM
  uint64_t memory_data_bytes = 0;  // bytes of memory actually written
  bool memory_delta = false;       // only the pages that differ from the file the VM was restored from
  std::vector<std::string> disks;  // frozen chain descriptors, per writable layered disk
  bool stopped = false;
};

// One child of a live fork. Empty fields are derived from the parent's.
struct ForkChildSpec {
  std::string control;  // its control socket
  std::string console;
  std::string vsock;  // its vsock socket (when the parent has vsock)
  uint64_t vsock_cid = 0;
  std::optional<uint32_t> net_slot;
  std::vector<std::string> disk_dirs;  // a new chain per writable layered disk
  std::string log;                     // its stdout and stderr (default: the parent's)
};

struct ForkRequest {
  uint32_t count = 0;
  std::string prefix;                   // names for children not spelled out
  std::vector<ForkChildSpec> children;  // when given, count = children.size()
};

struct ForkChild {
  int pid = 0;
  std::string control;  // its control socket
  std::string console;
};

struct GrowDiskRequest {
  uint32_t disk = 0;
  uint64_t bytes = 0;
};

struct ForkStats {
  double pause_ms = 0;   // the parent's vCPUs paused: save + freeze + one fork()
  double save_ms = 0;    // of which: vCPU, VM and device state
  double freeze_ms = 0;  // of which: freezing writable layered disks
  double fork_ms = 0;    // of which: the fork() of the spawner (it forks the children)
  std::vector<ForkChild> children;
};

// What the control socket drives; Machine implements it.
class ControlTarget {
 public:
  virtual ~ControlTarget() = default;
  virtual ControlStatus control_status() = 0;
  virtual Status control_pause() = 0;
  virtual Status control_resume() = 0;
  // Calls `done` on the loop thread once the snapshot is complete (maybe
  // before returning). Leaves the VM paused when `stop`; the server then
  // calls control_stop() after the response is out.
  using SnapshotDone = std::function<void(Result<SnapshotStats>)>;
  virtual void control_snapshot(const SnapshotRequest& request, SnapshotDone done) = 0;
  virtual void control_stop() = 0;
  virtual Result<ForkStats> control_fork(const ForkRequest& request) = 0;
  virtual Status control_grow_disk(const GrowDiskRequest& request) = 0;
};

class ControlServer {
 public:
  // Binds `path` (an existing socket file there is replaced) and watches it
  // on `loop`. The loop and target must outlive the server.
  static Result<std::unique_ptr<ControlServer>> create(EventLoop& loop, const std::string& path,
                                                       ControlTarget& target);
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;
  ~ControlServer();  // unlinks the socket path

  // Answers one request line: `reply` gets the response line (without
  // newline) and whether the VMM must stop once it is sent, now or later
  // (a snapshot answers when written). Public for tests.
  using Reply = std::function<void(std::string line, bool stop_after)>;
  void handle(std::string_view request, Reply reply);

 private:
  ControlServer(EventLoop& loop, std::string path, UniqueFd listener, ControlTarget& target);
  void on_accept();
  void on_readable(int fd);
  void process_lines(int fd);
  void close_connection(int fd);

  struct Connection {
    UniqueFd fd;
    std::string buffer;
    uint64_t serial = 0;   // tells a reused fd from the connection a late reply was for
    bool waiting = false;  // a request is being answered: later lines wait
  };
  uint64_t next_serial_ = 1;
  EventLoop& loop_;
  std::string path_;
  UniqueFd listener_;
  ControlTarget& target_;
  std::unordered_map<int, Connection> connections_;
};

// Client side: sends one request line to the control socket at `path` and
// returns the response line. For the CLI and for programs driving a VMM.
Result<std::string> control_request(const std::string& path, std::string_view request_json,
                                    int timeout_ms = 120000);

}  // namespace forkvm
