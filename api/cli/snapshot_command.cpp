// forkvm snapshot / forkvm control: clients of a running VMM's control socket.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/commands.hpp"
#include "vmm/control.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kSnapshotUsage = R"(usage: forkvm snapshot --control PATH --dir DIR [--stop]

Asks the VMM serving the control socket PATH (forkvm run/restore --control PATH)
to snapshot its VM into DIR: the vCPUs pause, DIR/state and DIR/memory are
written, and the VM resumes (or, with --stop, the VMM exits). Prints the
JSON response; exit status 0 when it says "ok":true.
)";

constexpr const char* kControlUsage = R"(usage: forkvm control --control PATH JSON

Sends one request line (e.g. '{"op":"status"}') to the control socket PATH and
prints the response line. Ops: status, pause, resume, snapshot, stop.
)";

// 0 when the response is a JSON object with "ok": true.
int print_response(const Result<std::string>& response, const char* name) {
  if (!response) {
    std::fprintf(stderr, "%s: %s\n", name, response.error().message.c_str());
    return 1;
  }
  std::printf("%s\n", response->c_str());
  rapidjson::Document doc;
  doc.Parse(response->c_str());
  const bool ok = !doc.HasParseError() && doc.IsObject() && doc.HasMember("ok") && doc["ok"].IsBool() &&
                  doc["ok"].GetBool();
  if (!ok && doc.IsObject() && doc.HasMember("error") && doc["error"].IsString()) {
    std::fprintf(stderr, "%s: %s\n", name, doc["error"].GetString());
  }
  return ok ? 0 : 1;
}

}  // namespace

int snapshot_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"control", "dir"}, {"stop", "help"});
  if (args && args->has("help")) {
    std::fputs(kSnapshotUsage, stdout);
    return 0;
  }
  if (args && (!args->get("control") || !args->get("dir")))
    args = make_error("--control PATH and --dir DIR are required");
  if (args && !args->positional().empty())
    args = make_error("unexpected argument '{}'", args->positional()[0]);
  if (!args) {
    std::fprintf(stderr, "forkvm snapshot: %s\n%s", args.error().message.c_str(), kSnapshotUsage);
    return kUsageError;
  }
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("op");
  w.String("snapshot");
  w.Key("dir");
  const std::string dir = *args->get("dir");
  w.String(dir.c_str());
  w.Key("stop");
  w.Bool(args->has("stop"));
  w.EndObject();
  return print_response(control_request(*args->get("control"), sb.GetString()), "forkvm snapshot");
}

int control_command(const std::vector<std::string>& argv) {
  auto args = Args::parse(argv, {"control"}, {"help"});
  if (args && args->has("help")) {
    std::fputs(kControlUsage, stdout);
    return 0;
  }
  if (args && (!args->get("control") || args->positional().size() != 1)) {
    args = make_error("--control PATH and one JSON request are required");
  }
  if (!args) {
    std::fprintf(stderr, "forkvm control: %s\n%s", args.error().message.c_str(), kControlUsage);
    return kUsageError;
  }
  return print_response(control_request(*args->get("control"), args->positional()[0]), "forkvm control");
}

}  // namespace forkvm::cli
