// systemd unit-file generation from a SystemdUnitSpec, name validation and
// the journalctl/systemctl output parsers.
#include <doctest/doctest.h>

#include "guestinit/systemd_unit.hpp"

using namespace forkvm::agent;

namespace {

std::variant<UnitSpec, CodedError> spec(std::string_view json) {
  auto d = parse_object(json);
  REQUIRE(d.ok());
  return parse_unit_spec(*d);
}

std::string render(std::string_view json) {
  auto s = spec(json);
  REQUIRE(std::holds_alternative<UnitSpec>(s));
  return render_unit(std::get<UnitSpec>(s));
}

std::string_view error_code(std::string_view json) {
  auto s = spec(json);
  REQUIRE(std::holds_alternative<CodedError>(s));
  return std::get<CodedError>(s).code;
}

bool has_line(const std::string& unit, std::string_view line) {
  return unit.find(std::string(line) + "\n") != std::string::npos;
}

}  // namespace

TEST_CASE("service name validation") {
  CHECK(validate_service_name("web-app_1.v2") == std::nullopt);
  CHECK(validate_service_name("")->code == "SERVICE_NAME_EMPTY");
  CHECK(validate_service_name(std::string(129, 'a'))->code == "SERVICE_NAME_TOO_LONG");
  CHECK(validate_service_name(std::string(128, 'a')) == std::nullopt);
  CHECK(validate_service_name("has space")->code == "SERVICE_NAME_INVALID_CHARS");
  CHECK(validate_service_name("a/b")->code == "SERVICE_NAME_INVALID_CHARS");
  CHECK(validate_service_name("x\ny")->code == "SERVICE_NAME_INVALID_CHARS");
  CHECK(validate_service_name("tmpl@")->code == "SERVICE_NAME_INVALID_CHARS");
  CHECK(validate_service_name("systemd-journald")->code == "SERVICE_NAME_INVALID_PREFIX");
  CHECK(validate_service_name("forkvm-agent")->code == "SERVICE_NAME_INVALID_PREFIX");
  CHECK(validate_service_name("-rf")->code == "SERVICE_NAME_INVALID_PREFIX");
  CHECK(normalize_service_name("web.service") == "web");
  CHECK(normalize_service_name(".service") == ".service");
}

TEST_CASE("a long-running service unit") {
  std::string u = render(R"({"name":"web.service","mode":"service","exec":["npm run build","npm start"],
    "env":{"PORT":"3000","QUOTE":"a \"b\" 100% $HOME"},"user":"app","group":"app","workdir":"/srv/my app",
    "after":["network-online.target","db"],"requires":["db"],"onFailure":["notify"],
    "timeoutSec":30,"watchdogSec":10,"readySignal":true,
    "restartPolicy":{"policy":"on-failure","restartSec":5,"startLimitBurst":3,"startLimitIntervalSec":60}})");
  CHECK(u.rfind(std::string(kManagedMarker), 0) == 0);
  CHECK(has_line(u, "Description=web (forkvm)"));
  CHECK(has_line(u, "After=network-online.target db.service"));
  CHECK(has_line(u, "Requires=db.service"));
  CHECK(has_line(u, "OnFailure=notify.service"));
  CHECK(has_line(u, "StartLimitBurst=3"));
  CHECK(has_line(u, "StartLimitIntervalSec=60"));
  CHECK(has_line(u, "Type=notify"));
  CHECK(has_line(u, "NotifyAccess=all"));
  CHECK(has_line(u, "ExecStartPre=/bin/bash -c \"npm run build\""));
  CHECK(has_line(u, "ExecStart=/bin/bash -c \"npm start\""));
  CHECK(has_line(u, "Environment=\"PORT=3000\""));
  // Quotes and backslashes escaped, % doubled; $ kept (Environment= does not expand it).
  CHECK(has_line(u, "Environment=\"QUOTE=a \\\"b\\\" 100%% $HOME\""));
  CHECK(has_line(u, "User=app"));
  CHECK(has_line(u, "Group=app"));
  CHECK(has_line(u, "WorkingDirectory=\"/srv/my app\""));
  CHECK(has_line(u, "TimeoutSec=30"));
  CHECK(has_line(u, "WatchdogSec=10"));
  CHECK(has_line(u, "Restart=on-failure"));
  CHECK(has_line(u, "RestartSec=5"));
  CHECK(has_line(u, "WantedBy=multi-user.target"));
  CHECK(u.find("RemainAfterExit") == std::string::npos);
}

TEST_CASE("a oneshot unit") {
  std::string u = render(R"({"name":"setup","mode":"oneshot","exec":["echo one","echo $HOME > /tmp/x"],
    "remainAfterExit":false,"wantedBy":["default.target"],"deleteAfterSuccess":true,
    "restartPolicy":{"policy":"always"}})");
  CHECK(has_line(u, "Type=oneshot"));
  CHECK(has_line(u, "RemainAfterExit=no"));
  CHECK(has_line(u, "ExecStart=/bin/bash -c \"echo one\""));
  // $ doubled so systemd does not expand it: bash sees $HOME.
  CHECK(has_line(u, "ExecStart=/bin/bash -c \"echo $$HOME > /tmp/x\""));
  CHECK(has_line(u, "WantedBy=default.target"));
  CHECK(u.find("Restart=") == std::string::npos);  // restart applies to service mode only
  CHECK(u.find("ExecStartPost=") != std::string::npos);
  std::string d = render(R"({"name":"d","mode":"oneshot","exec":["true"]})");
  CHECK(has_line(d, "RemainAfterExit=yes"));
}

TEST_CASE("exec lines survive newlines and control characters") {
  CHECK(exec_line("printf 'a\\n'\necho b") == "/bin/bash -c \"printf 'a\\\\n'\\necho b\"");
  CHECK(exec_line(std::string("x\x01y")) == "/bin/bash -c \"x\\x01y\"");
}

TEST_CASE("unit spec refusals") {
  CHECK(error_code(R"({"name":"","mode":"service","exec":["x"]})") == "SERVICE_NAME_EMPTY");
  CHECK(error_code(R"({"name":"a b","mode":"service","exec":["x"]})") == "SERVICE_NAME_INVALID_CHARS");
  CHECK(error_code(R"({"name":"ok","mode":"weird","exec":["x"]})") == "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":[]})") == "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":["  "]})") == "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":["x"],"env":{"BAD KEY":"v"}})") == "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":["x"],"user":"a\nExecStart=/bin/evil"})") ==
        "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":["x"],"after":["a b"]})") == "BAD_REQUEST");
  CHECK(error_code(R"({"name":"ok","mode":"service","exec":["x"],"restartPolicy":{"policy":"sometimes"}})") ==
        "BAD_REQUEST");
}

TEST_CASE("journalctl json lines") {
  auto e = parse_journal_line(
      R"({"MESSAGE":"hello","__REALTIME_TIMESTAMP":"1700000000123456","PRIORITY":"6","_SYSTEMD_UNIT":"web.service"})");
  REQUIRE(e);
  CHECK(e->message == "hello");
  CHECK(e->timestamp == "2023-11-14T22:13:20.123Z");
  CHECK(e->priority == 6);
  CHECK(e->unit == "web.service");
  auto bin = parse_journal_line(R"({"MESSAGE":[104,105,255],"__REALTIME_TIMESTAMP":"x"})");
  REQUIRE(bin);
  CHECK(bin->message == "hi\xff");
  CHECK(bin->timestamp.empty());
  CHECK_FALSE(bin->priority);
  CHECK_FALSE(parse_journal_line("not json"));
  CHECK_FALSE(parse_journal_line(R"({"NO_MESSAGE":1})"));
}

TEST_CASE("systemctl show output") {
  auto p =
      parse_show_output("ActiveState=active\nSubState=running\nDescription=web (forkvm) = x\n\ngarbage\n");
  CHECK(p["ActiveState"] == "active");
  CHECK(p["SubState"] == "running");
  CHECK(p["Description"] == "web (forkvm) = x");
  CHECK(p.count("garbage") == 0);
}
