// forkvm run: boot a kernel and run it until the guest stops.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "api/cli/machine_runner.hpp"
#include "api/engine/image.hpp"
#include "devices/storage/chain_ops.hpp"
#include "vmm/log.hpp"
#include "vmm/machine.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kRunUsage = R"(usage: forkvm run --kernel PATH [options]
       forkvm run --image NAME [options]

  --image NAME|DIR    boot a guest image (default: the Debian image tools/guest/artifacts
                      image makes): its kernel, and its root filesystem as /dev/vda through
                      a copy-on-write layer of this VM's own, removed when the VM stops
  --kernel PATH       vmlinux (ELF, booted directly) or bzImage
  --initrd PATH       initramfs
  --cmdline STR       extra kernel command line
  --mem MiB           guest memory (default 256)
  --cpus N            vCPUs (default 1)
  --disk PATH[,ro]    a virtio-blk disk; repeat for more (/dev/vda, /dev/vdb, ...)
  --disk chain:DIR[,ro]
                      a layered copy-on-write disk (forkvm disk --help): DIR is a chain
                      directory or descriptor; writes go to its top layer
  --console PATH|-    serial console to a file, or - for stdout (default)
  --no-rng            leave out the virtio-rng device
  --vsock PATH        a virtio-vsock device; host programs connect to the Unix socket
                      PATH and send "CONNECT <port>\n"; guest connections to host port P
                      go to PATH_P
  --vsock-cid N       the guest's vsock CID (default 3)
  --net               a virtio-net device on a TAP in netns fkvm-SLOT (needs root and nft);
                      the guest is 172.16.0.2/30 via 172.16.0.1, reached from the host
                      at 10.200.x.(4*SLOT+2)
  --net-slot SLOT     which network slot (default 0; one VM per slot)
  --control PATH      serve a control socket at PATH: one JSON request per line,
                      {"op":"status|pause|resume|stop"} or {"op":"snapshot","dir":DIR}
                      (see forkvm snapshot, forkvm restore)
  --verbose           log VMM setup steps

exit status: 0 guest powered off, 3 guest rebooted, 4 guest kernel panic,
5 triple fault, 6 KVM could not run the guest, 130 stopped by a signal,
2 bad command line, 1 other VMM failure.
)";

// The private disk layer of --image, removed when the VM stops.
struct ScratchDisk {
  std::string dir;
  ScratchDisk() = default;
  ScratchDisk(const ScratchDisk&) = delete;
  ScratchDisk& operator=(const ScratchDisk&) = delete;
  ~ScratchDisk() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

Result<MachineConfig> config_from(const Args& args, ScratchDisk& scratch) {
  MachineConfig c;
  std::string image_cmdline;
  if (auto name = args.get("image")) {
    auto image = FORKVM_TRY(engine::find_image(*name));
    c.kernel = image.kernel;
    image_cmdline = image.cmdline;
    const char* tmp = std::getenv("TMPDIR");
    scratch.dir = fmt::format("{}/forkvm-rootfs-{}", tmp != nullptr ? tmp : "/tmp", ::getpid());
    storage::CreateOptions disk;
    disk.base = image.rootfs;
    auto chain = FORKVM_TRY(storage::create_chain(scratch.dir, disk));
    c.disks.push_back({chain, false, true});
  }
  if (auto kernel = args.get("kernel")) c.kernel = *kernel;
  if (c.kernel.empty()) return make_error("--kernel or --image is required");
  c.initrd = args.get("initrd");
  c.cmdline = image_cmdline;
  if (auto extra = args.get("cmdline")) c.cmdline += (c.cmdline.empty() ? "" : " ") + *extra;
  c.mem_mib = FORKVM_TRY(args.get_uint("mem", 256, 16, 1ULL << 20));
  c.cpus = static_cast<uint32_t>(FORKVM_TRY(args.get_uint("cpus", 1, 1, 255)));
  FORKVM_CHECK(host_options(args, args.has("net") || args.get("net-slot").has_value(), c));
  c.rng = !args.has("no-rng");
  return c;
}

}  // namespace

int run_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv,
                          {"image", "kernel", "initrd", "cmdline", "mem", "cpus", "disk", "console", "vsock",
                           "vsock-cid", "net-slot", "control"},
                          {"no-rng", "net", "verbose", "help"});
  if (args && args->has("help")) {
    std::fputs(kRunUsage, stdout);
    return 0;
  }
  if (args && !args->positional().empty()) args = make_error("unexpected argument '{}'", args->positional()[0]);
  ScratchDisk scratch;
  auto config = args ? config_from(*args, scratch) : Result<MachineConfig>(args.error());
  if (config) {
    if (auto valid = validate(*config); !valid) config = valid.error();
  }
  if (!config) {
    std::fprintf(stderr, "forkvm run: %s\n", config.error().message.c_str());
    return kUsageError;
  }
  if (args->has("verbose")) set_log_level(LogLevel::debug);

  auto machine = Machine::create(*config);
  if (!machine) {
    std::fprintf(stderr, "forkvm run: %s\n", machine.error().message.c_str());
    return 1;
  }
  return run_machine(**machine, "forkvm run", args->get("control"));
}

}  // namespace forkvm::cli
