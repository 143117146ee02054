// forkvm disk: layered copy-on-write disks (devices/storage/) from the
// command line. Every subcommand is offline: a chain a running VM has open
// is refused (its top layer is locked), except `info`.
#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "devices/storage/chain_ops.hpp"
#include "devices/storage/layer_store.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kDiskUsage = R"(usage: forkvm disk <command> [options]

A layered disk is an immutable raw base image under a chain of copy-on-write
layers. DIR is a chain directory (holding the descriptor file DIR/chain) or
the descriptor itself; use it as a VM disk with `forkvm run --disk chain:DIR`.

  create-chain --base IMG --dir DIR [--layers ROOT] [--size BYTES] [--cluster-kib N]
                      a chain over IMG with one empty writable layer; layers go in
                      ROOT (default DIR/layers; share ROOT between VMs so forks share
                      layers); N is the cluster size, 4..1024 KiB (default 64)
  freeze DIR          make the top layer read-only and start a new empty top
  grow DIR --size BYTES
                      make the disk BYTES long (never shorter); the guest's filesystem
                      is its own to grow (resize2fs). A running VM grows its disk with
                      `forkvm control --control PATH '{"op":"grow-disk",...}'`
  fork DIR --out DIR2 freeze DIR, then make DIR2 a chain over the same frozen layers
                      with its own top (both sides then write separately)
  flatten DIR --out DIR2
                      merge every layer into one, in a new chain DIR2 over the same base
  export DIR --out IMG
                      write the disk as the guest sees it to a raw (sparse) image
  info DIR            geometry, base, layers and who holds each layer
  delete DIR          drop the chain's hold on its layers and remove its descriptor
  gc ROOT             remove the layers in ROOT that nothing holds or has open
)";

int fail(const Error& e) {
  std::fprintf(stderr, "forkvm disk: %s\n", e.message.c_str());
  return 1;
}

Result<std::string> one_dir(const Args& args, const char* cmd) {
  if (args.positional().size() != 2) return make_error("{} takes one chain directory", cmd);
  return args.positional()[1];
}

Result<std::string> need(const Args& args, const char* name) {
  auto v = args.get(name);
  if (!v || v->empty()) return make_error("--{} is required", name);
  return *v;
}

// What each subcommand prints on success; errors go up.
Result<std::string> run(const Args& args) {
  if (args.positional().empty()) return make_error("a command is required (forkvm disk --help)");
  const std::string& cmd = args.positional()[0];
  if (cmd == "create-chain") {
    if (args.positional().size() != 1) return make_error("create-chain takes options only");
    storage::CreateOptions o;
    o.base = FORKVM_TRY(need(args, "base"));
    o.layers_root = args.get("layers").value_or("");
    if (args.get("size")) o.size = FORKVM_TRY(args.get_uint("size", 0, 512, 1ULL << 50));
    const uint64_t kib = FORKVM_TRY(args.get_uint("cluster-kib", 64, 4, 1024));
    if ((kib & (kib - 1)) != 0) return make_error("--cluster-kib must be a power of two, got {}", kib);
    o.cluster_shift = static_cast<uint32_t>(__builtin_ctzll(kib) + 10);
    const std::string dir = FORKVM_TRY(need(args, "dir"));
    return FORKVM_TRY(storage::create_chain(dir, o)) + "\n";
  }
  if (cmd == "gc") {
    const std::string root = FORKVM_TRY(one_dir(args, "gc"));
    const auto removed = FORKVM_TRY(storage::gc(root));
    std::string out;
    for (const auto& id : removed) out += "removed " + id + "\n";
    return out;
  }
  const std::string dir = FORKVM_TRY(one_dir(args, cmd.c_str()));
  if (cmd == "freeze") {
    const auto frozen = FORKVM_TRY(storage::freeze_chain(dir));
    return fmt::format("froze layer {}\n", frozen.layers.back());
  }
  if (cmd == "grow") {
    if (!args.get("size")) return make_error("grow needs --size BYTES");
    const uint64_t size = FORKVM_TRY(args.get_uint("size", 0, 512, 1ULL << 50));
    FORKVM_CHECK(storage::grow_chain(dir, size));
    return fmt::format("{} bytes\n", size);
  }
  if (cmd == "info") return storage::chain_info(dir);
  if (cmd == "delete") {
    FORKVM_CHECK(storage::delete_chain(dir));
    return std::string();
  }
  if (cmd != "fork" && cmd != "flatten" && cmd != "export")
    return make_error("unknown command '{}' (forkvm disk --help)", cmd);
  const std::string out = FORKVM_TRY(need(args, "out"));
  if (cmd == "fork") return FORKVM_TRY(storage::fork_chain(dir, out)) + "\n";
  if (cmd == "flatten") return FORKVM_TRY(storage::flatten_chain(dir, out)) + "\n";
  FORKVM_CHECK(storage::export_raw(dir, out));
  return out + "\n";
}

}  // namespace

int disk_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"base", "dir", "layers", "size", "cluster-kib", "out"}, {"help"});
  if (args && args->has("help")) {
    std::fputs(kDiskUsage, stdout);
    return 0;
  }
  if (!args) {
    std::fprintf(stderr, "forkvm disk: %s\n", args.error().message.c_str());
    return kUsageError;
  }
  auto out = run(*args);
  if (!out) return fail(out.error());
  std::fputs(out->c_str(), stdout);
  return 0;
}

}  // namespace forkvm::cli
