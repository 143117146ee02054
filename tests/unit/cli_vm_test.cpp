// `forkvm vm`: argument parsing, request building (paths, encoding, bodies),
// configuration and reading the answers, all without a network.
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "api/cli/http_client.hpp"
#include "api/cli/vm_api.hpp"

using namespace forkvm::cli;

namespace {

VmPlan plan(std::vector<std::string> argv) {
  auto p = plan_vm_command(argv);
  REQUIRE_MESSAGE(p.ok(), (p.ok() ? "" : p.error().message));
  return *p;
}

std::string plan_error(std::vector<std::string> argv) {
  auto p = plan_vm_command(argv);
  REQUIRE_MESSAGE(!p.ok(), "planned without an error");
  return p.error().message;
}

constexpr const char* kId = "abcdefghij0123456789";

}  // namespace

TEST_CASE("percent encoding matches encodeURIComponent") {
  CHECK(percent_encode_segment("/home/user/a b.txt") == "%2Fhome%2Fuser%2Fa%20b.txt");
  CHECK(percent_encode_segment("AZaz09-_.!~*'()") == "AZaz09-_.!~*'()");
  CHECK(percent_encode_segment("a?b#c%d&e=f+g:h@i") == "a%3Fb%23c%25d%26e%3Df%2Bg%3Ah%40i");
  CHECK(percent_encode_segment("\xC3\xA9") == "%C3%A9");  // é, byte by byte, upper-case hex
  CHECK(percent_encode_segment("") == "");
}

TEST_CASE("help and usage errors") {
  CHECK(plan({}).op == VmOp::help);
  CHECK(plan({"--help"}).op == VmOp::help);
  CHECK(plan({"list", "--help"}).op == VmOp::help);
  CHECK(plan_error({"bogus"}).find("unknown vm command 'bogus'") != std::string::npos);
  CHECK(plan_error({"get"}).find("one VM ID") != std::string::npos);
  CHECK(plan_error({"get", "a", "b"}).find("one VM ID") != std::string::npos);
  CHECK(plan_error({"list", "x"}).find("no arguments") != std::string::npos);
  // An option of another subcommand is unknown here.
  CHECK(plan_error({"get", kId, "--count", "2"}).find("unknown option --count") != std::string::npos);
  CHECK(plan_error({"list", "--nope"}).find("unknown option --nope") != std::string::npos);
  CHECK(plan_error({"fork", kId, "--count", "0"}).find("--count must be between") != std::string::npos);
  CHECK(plan_error({"create", "--mem-gb", "x"}).find("--mem-gb wants a number") != std::string::npos);
  CHECK(plan_error({"logs", kId, "--lines", "5"}).find("--lines goes with --service") != std::string::npos);
}

TEST_CASE("common options anywhere") {
  VmPlan p = plan({"--url", "http://h:1", "list", "--key=k1"});
  CHECK(p.op == VmOp::list);
  CHECK(p.url == "http://h:1");
  CHECK(p.key == "k1");
  CHECK(p.request.method == "GET");
  CHECK(p.request.path == "/v1/vms");
  CHECK(!p.request.body);
}

TEST_CASE("create bodies") {
  CHECK(plan({"create"}).request.body == "{}");
  VmPlan p = plan({"create", "--name", "box \"1\"", "--snapshot", "sc-abcdefghij0123456789", "--mem-gb", "4",
                   "--vcpus=2"});
  CHECK(p.request.method == "POST");
  CHECK(p.request.path == "/v1/vms");
  CHECK(p.request.body ==
        R"({"name":"box \"1\"","snapshotId":"sc-abcdefghij0123456789","memSizeGb":4,"vcpuCount":2})");
}

TEST_CASE("ids are one encoded segment") {
  CHECK(plan({"get", kId}).request.path == std::string("/v1/vms/") + kId);
  CHECK(plan({"get", "../snapshots"}).request.path == "/v1/vms/..%2Fsnapshots");
  CHECK(plan({"delete", kId}).request.method == "DELETE");
}

TEST_CASE("lifecycle calls") {
  VmPlan fork = plan({"fork", kId});
  CHECK(fork.request.path == std::string("/v1/vms/") + kId + "/fork");
  CHECK(fork.request.body == "{}");
  CHECK(plan({"fork", kId, "--count", "3"}).request.body == R"({"count":3})");
  CHECK(plan({"snapshot", kId}).request.body == "{}");
  CHECK(plan({"snapshot", kId, "--name", "base"}).request.body == R"({"name":"base"})");
  CHECK(plan({"snapshot", kId}).request.path == std::string("/v1/vms/") + kId + "/snapshot");
  for (const char* op : {"suspend", "start", "stop"}) {
    VmPlan p = plan({op, kId});
    CHECK(p.request.method == "POST");
    CHECK(p.request.path == std::string("/v1/vms/") + kId + "/" + op);
  }
  CHECK(!plan({"stop", kId}).request.body);  // bodyless, as the SDK sends them
  CHECK(plan({"start", kId}).request.body == "{}");
}

TEST_CASE("exec: command line, SDK body shape, timeouts") {
  VmPlan p = plan({"exec", kId, "--", "echo", "a b", "it's", "$HOME"});
  CHECK(p.op == VmOp::exec);
  CHECK(p.request.path == std::string("/v1/vms/") + kId + "/exec-await");
  CHECK(p.request.body == R"({"command":"echo 'a b' 'it'\\''s' '$HOME'","terminal":null,"timeoutMs":null})");
  CHECK(p.request.timeout_ms == 0);
  // One word is a shell line as is; options after -- belong to the command.
  VmPlan one = plan({"exec", kId, "--timeout-ms", "500", "--", "ls -l | wc -l"});
  CHECK(one.request.body == R"({"command":"ls -l | wc -l","terminal":null,"timeoutMs":500})");
  CHECK(one.request.timeout_ms > 500);
  CHECK(plan({"exec", kId, "--", "grep", "--count", "x"}).request.body ==
        R"({"command":"grep --count x","terminal":null,"timeoutMs":null})");
  CHECK(plan_error({"exec", kId}).find("COMMAND") != std::string::npos);
  CHECK(plan_error({"exec", kId, "--"}).find("COMMAND") != std::string::npos);
}

TEST_CASE("shell quoting") {
  CHECK(shell_quote("plain-word_1.txt") == "plain-word_1.txt");
  CHECK(shell_quote("") == "''");
  CHECK(shell_quote("a b") == "'a b'");
  CHECK(shell_quote("'") == "''\\'''");
  CHECK(exec_command_line({"true"}) == "true");
  CHECK(exec_command_line({"printf", "%s\\n", "x;y"}) == "printf '%s\\n' 'x;y'");
}

TEST_CASE("cp: direction, the guest path as one segment, PUT body") {
  VmPlan in = plan({"cp", "./local.txt", std::string(kId) + ":/home/user/a b.txt"});
  CHECK(in.op == VmOp::cp_in);
  CHECK(in.vm_id == kId);
  CHECK(in.local_path == "./local.txt");
  CHECK(in.guest_path == "/home/user/a b.txt");
  CHECK(in.request.method == "PUT");
  CHECK(in.request.path == std::string("/v1/vms/") + kId + "/files/%2Fhome%2Fuser%2Fa%20b.txt");

  VmPlan out = plan({"cp", std::string(kId) + ":/etc/hostname", "-"});
  CHECK(out.op == VmOp::cp_out);
  CHECK(out.request.method == "GET");
  CHECK(out.request.path == std::string("/v1/vms/") + kId + "/files/%2Fetc%2Fhostname");
  CHECK(out.local_path == "-");

  // A '/' before the ':' makes it a host path, as with scp.
  CHECK(plan({"cp", "./a:b", std::string(kId) + ":/x"}).local_path == "./a:b");
  CHECK(plan_error({"cp", "a", "b"}).find("exactly one side") != std::string::npos);
  CHECK(plan_error({"cp", std::string(kId) + ":/a", std::string(kId) + ":/b"}).find("exactly one side") !=
        std::string::npos);
  CHECK(plan_error({"cp", "a", std::string(kId) + ":"}).find("no guest path") != std::string::npos);
  CHECK(plan_error({"cp", "a"}).find("source and a destination") != std::string::npos);

  CHECK(file_put_body("hi\n") == R"({"content":"aGkK","encoding":"base64"})");
  CHECK(file_put_body(std::string("\0\xff", 2)) == R"({"content":"AP8=","encoding":"base64"})");
}

TEST_CASE("logs: terminals or a service's journal") {
  VmPlan t = plan({"logs", kId});
  CHECK(t.request.path == std::string("/v1/vms/") + kId + "/terminals");
  CHECK(!t.service);
  CHECK(terminal_logs_path(kId, "main term") ==
        std::string("/v1/vms/") + kId + "/terminals/main%20term/logs");
  VmPlan s = plan({"logs", kId, "--service", "web app", "--lines", "20"});
  CHECK(s.service == "web app");
  CHECK(s.request.path == std::string("/v1/vms/") + kId + "/systemd/services/web%20app/logs?lines=20");
  CHECK(plan({"logs", kId, "--service", "web"}).request.path ==
        std::string("/v1/vms/") + kId + "/systemd/services/web/logs");
}

TEST_CASE("server URL") {
  auto u = parse_server_url("http://127.0.0.1:8080");
  REQUIRE(u.ok());
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == "8080");
  CHECK(u->prefix == "");
  u = parse_server_url("http://example.com/api/");
  REQUIRE(u.ok());
  CHECK(u->host == "example.com");
  CHECK(u->port == "80");
  CHECK(u->prefix == "/api");
  u = parse_server_url("http://[::1]:9000");
  REQUIRE(u.ok());
  CHECK(u->host == "::1");
  CHECK(u->port == "9000");
  CHECK(!parse_server_url("https://api.freestyle.sh").ok());
  CHECK(!parse_server_url("127.0.0.1:8080").ok());
  CHECK(!parse_server_url("http://h:0").ok());
  CHECK(!parse_server_url("http://h:99999").ok());
  CHECK(!parse_server_url("http://h:8x").ok());
  CHECK(!parse_server_url("http://:80").ok());
  CHECK(!parse_server_url("http://h/a?b").ok());
}

TEST_CASE("URL and key: flag, then environment, then defaults") {
  auto dir = std::filesystem::temp_directory_path() / "forkvm-cli-vm-test";
  std::filesystem::create_directories(dir);
  std::string key_file = (dir / "api-key").string();
  std::ofstream(key_file) << "fvm_fromfile\n";

  auto c = resolve_client_config(std::nullopt, std::nullopt, nullptr, nullptr, key_file);
  REQUIRE(c.ok());
  CHECK(c->url.host == "127.0.0.1");
  CHECK(c->url.port == "8080");
  CHECK(c->key == "fvm_fromfile");

  c = resolve_client_config(std::nullopt, std::nullopt, "http://env:1", "fvm_env", key_file);
  REQUIRE(c.ok());
  CHECK(c->url.host == "env");
  CHECK(c->key == "fvm_env");

  c = resolve_client_config(std::string("http://flag:2"), std::string("fvm_flag"), "http://env:1", "fvm_env",
                            key_file);
  REQUIRE(c.ok());
  CHECK(c->url.host == "flag");
  CHECK(c->key == "fvm_flag");

  c = resolve_client_config(std::nullopt, std::nullopt, "", "", (dir / "missing").string());
  REQUIRE(c.ok());
  CHECK(c->key.empty());
  CHECK(!resolve_client_config(std::string("ftp://x"), std::nullopt, nullptr, nullptr, key_file).ok());
  std::filesystem::remove_all(dir);
}

TEST_CASE("reading answers") {
  CHECK(describe_api_error(404,
                           R"({"error":"VM_NOT_FOUND","code":"VM_NOT_FOUND","message":"VM not found: x"})") ==
        "VM_NOT_FOUND: VM not found: x");
  CHECK(describe_api_error(400, R"({"error":"INVALID_VM_ID","message":"bad"})") == "INVALID_VM_ID: bad");
  CHECK(describe_api_error(502, "Bad Gateway\n") == "HTTP 502: Bad Gateway");
  CHECK(describe_api_error(500, "") == "HTTP 500");

  auto e = parse_exec_output(R"({"stdout":"out\n","stderr":"err\n","statusCode":3})");
  REQUIRE(e.ok());
  CHECK(e->stdout_text == "out\n");
  CHECK(e->stderr_text == "err\n");
  CHECK(e->status_code == 3);
  e = parse_exec_output(R"({"stdout":"","stderr":"","statusCode":null})");
  REQUIRE(e.ok());
  CHECK(!e->status_code);
  CHECK(!parse_exec_output("nope").ok());

  auto f = parse_file_content(R"({"content":"aGkK","encoding":"base64"})");
  REQUIRE(f.ok());
  CHECK(*f == "hi\n");
  CHECK(*parse_file_content(R"({"content":"plain"})") == "plain");
  CHECK(!parse_file_content(R"({"content":"!!","encoding":"base64"})").ok());
  CHECK(parse_file_content(R"({"files":[{"name":"a","kind":"file"}]})").error().message.find("directory") !=
        std::string::npos);

  auto names = parse_terminal_names(R"({"terminals":[{"name":"main","status":"running"},{"name":"b"}]})");
  REQUIRE(names.ok());
  CHECK(*names == std::vector<std::string>{"main", "b"});
  auto lines = parse_log_lines(R"({"logs":[{"line":"$ ls","timestamp":null},{"line":"a"}]})");
  REQUIRE(lines.ok());
  CHECK(*lines == std::vector<std::string>{"$ ls", "a"});
  lines =
      parse_log_lines(R"({"logs":[{"message":"started","timestamp":"2025-01-01T00:00:00Z","unit":"w"}]})");
  REQUIRE(lines.ok());
  CHECK(*lines == std::vector<std::string>{"2025-01-01T00:00:00Z started"});

  auto table = format_vm_table(
      R"({"vms":[{"id":"abcdefghij0123456789","name":"n1","state":"stopped"}],"totalCount":1})");
  REQUIRE(table.ok());
  CHECK(*table ==
        "ID                    STATE       NAME\n"
        "abcdefghij0123456789  stopped     n1\n");
  CHECK(pretty_json(R"({"id":"x"})") == "{\n  \"id\": \"x\"\n}\n");
  CHECK(pretty_json("not json") == "not json");
}
