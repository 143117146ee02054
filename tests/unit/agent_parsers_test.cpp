// Pure parts of the agent: /etc/passwd and /etc/group, ANSI stripping and
// the terminal line log, /proc parsers.
#include <doctest/doctest.h>

#include "guestinit/ansi.hpp"
#include "guestinit/stats.hpp"
#include "guestinit/users.hpp"

using namespace forkvm::agent;

namespace {
constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "# a comment\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "broken line without enough fields\n"
    "bad:x:notanumber:1::/:/bin/sh\n"
    "alice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh\r\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin";
constexpr std::string_view kGroup =
    "root:x:0:\n"
    "sudo:x:27:alice,bob\n"
    "docker:x:999:bob,alice\n"
    "alice:x:1000:\n"
    "weird:x::alice\n";
}  // namespace

TEST_CASE("passwd parsing skips malformed lines") {
  auto users = parse_passwd(kPasswd);
  REQUIRE(users.size() == 4);
  CHECK(users[0].name == "root");
  CHECK(users[2].name == "alice");
  CHECK(users[2].uid == 1000);
  CHECK(users[2].home == "/home/alice");
  CHECK(users[2].shell == "/bin/zsh");  // the \r is gone
  CHECK(users[3].uid == 65534);
}

TEST_CASE("group parsing and account resolution") {
  auto groups = parse_group(kGroup);
  REQUIRE(groups.size() == 4);
  CHECK(groups[1].members == std::vector<std::string>{"alice", "bob"});
  auto a = resolve_account("alice", kPasswd, kGroup);
  REQUIRE(a);
  CHECK(a->uid == 1000);
  CHECK(a->gid == 1000);
  CHECK(a->groups == std::vector<gid_t>{1000, 27, 999});
  auto by_uid = resolve_account("1000", kPasswd, kGroup);
  REQUIRE(by_uid);
  CHECK(by_uid->name == "alice");
  CHECK_FALSE(resolve_account("mallory", kPasswd, kGroup));
  CHECK_FALSE(resolve_account("", kPasswd, kGroup));
  auto root = resolve_account("root", kPasswd, "");
  REQUIRE(root);
  CHECK(root->groups == std::vector<gid_t>{0});
}

TEST_CASE("ANSI stripping") {
  CHECK(strip_ansi("\x1b[1;32mgreen\x1b[0m plain") == "green plain");
  CHECK(strip_ansi("a\x1b]0;window title\x07"
                   "b") == "ab");
  CHECK(strip_ansi("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
                   "b") == "alinkb");
  CHECK(strip_ansi("\x1b(Bx\x1b=y\x1b"
                   "7z") == "xyz");
  CHECK(strip_ansi("line\r\n\tnext\x07\x08") == "line\n\tnext");
  CHECK(strip_ansi("\x1bPdcs stuff\x1b\\after") == "after");
  CHECK(strip_ansi("caf\xc3\xa9") == "caf\xc3\xa9");  // UTF-8 passes through
  // A sequence split across feeds.
  AnsiStripper s;
  std::string out = s.feed("ab\x1b[");
  out += s.feed("31");
  out += s.feed("mcd");
  CHECK(out == "abcd");
}

TEST_CASE("terminal line log stamps and bounds lines") {
  LineLog log(3, 8);
  log.feed("one\r\ntw", 100);
  log.feed("o\n\x1b[31mthree\x1b[0m\nfour\nfive-is-too-long\npartial", 200);
  auto lines = log.snapshot();
  REQUIRE(lines.size() == 4);  // 3 kept complete lines + the partial one
  CHECK(lines[0].line == "three");
  CHECK(lines[1].line == "four");
  CHECK(lines[2].line == "five-is-");  // cut at max_line
  CHECK(lines[3].line == "partial");
  CHECK(lines[3].timestamp_ms == 200);
  LineLog l2;
  l2.feed("tw", 100);
  l2.feed("o\n", 200);
  CHECK(l2.snapshot().front().timestamp_ms == 100);  // when the first byte came
  CHECK(iso8601_ms(1700000000123) == "2023-11-14T22:13:20.123Z");
}

TEST_CASE("stats parsing from /proc text") {
  auto a = parse_proc_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n");
  auto b = parse_proc_stat("cpu  150 0 100 850 50 0 0 0 0 0\n");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->total == 1000);
  CHECK(a->idle == 850);
  CHECK(cpu_percent(*a, *b) == doctest::Approx(200.0 / 3.0));  // 100 busy of 150
  CHECK(cpu_percent(*b, *a) == 0.0);                           // counters never go back
  CHECK_FALSE(parse_proc_stat("intr 1 2 3"));
  CHECK_FALSE(parse_proc_stat("cpu  x y z"));

  auto m = parse_meminfo(
      "MemTotal:        2048000 kB\nMemFree:          512000 kB\nMemAvailable:    1024000 kB\n");
  REQUIRE(m);
  CHECK(m->total_bytes == 2048000ull * 1024);
  CHECK(m->available_bytes == 1024000ull * 1024);
  CHECK(m->used_bytes == 1024000ull * 1024);
  auto old = parse_meminfo("MemTotal: 100 kB\nMemFree: 40 kB\n");
  REQUIRE(old);
  CHECK(old->available_bytes == 40 * 1024);
  CHECK_FALSE(parse_meminfo("garbage"));

  auto l = parse_loadavg("0.50 1.25 2.00 1/123 4567\n");
  REQUIRE(l);
  CHECK(l->five == doctest::Approx(1.25));
  CHECK_FALSE(parse_loadavg("0.5"));
  CHECK(parse_uptime("12345.67 2345.00\n").value_or(0) == doctest::Approx(12345.67));
}
