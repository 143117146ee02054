// file checks: 5 MiB binary round trip, odd paths, atomic write keeping the
// mode, list, stat, mkdir, remove, and the error codes.
#include <sys/stat.h>

#include <random>

#include "tests/integration/agent_host_checks.hpp"

using namespace forkvm::agent;

namespace agent_test {

void run_file_checks(Context& c) {
  auto& cl = c.client;
  std::string base = c.dir + "/files dir/ünïcödé";
  {
    std::string data(5u << 20, '\0');
    std::mt19937_64 rng(42);
    for (auto& ch : data) ch = static_cast<char>(rng() & 0xff);
    std::string path = base + "/sub/big file.bin";
    auto w = cl.write_file({.path = path}, data);
    check("write 5 MiB binary file (creating parents)", w.ok() && *w == data.size(),
          w.ok() ? "" : err_or(w.error()));
    auto r = cl.read_file_all(path, 16u << 20);
    check("read 5 MiB back byte-exact", r.ok() && *r == data,
          r.ok() ? fmt::format("size={}", r->size()) : err_or(r.error()));
    size_t chunks = 0;
    auto n = cl.read_file(path, [&](std::string_view) { return ++chunks > 0; });
    check("read streams in chunks", n.ok() && *n == data.size() && chunks >= 80,
          fmt::format("chunks={}", chunks));
    auto small = cl.read_file_all(path, 1000);
    check("read over the caller's limit is refused",
          !small.ok() && agent_error_code(small.error()) == "FILE_TOO_LARGE",
          small.ok() ? "ok" : err_or(small.error()));
  }
  {
    std::string path = base + "/mode.txt";
    auto w1 = cl.write_file({.path = path}, "one");
    ::chmod(path.c_str(), 0600);
    auto w2 = cl.write_file({.path = path}, "two");
    struct stat st {};
    ::stat(path.c_str(), &st);
    auto r = cl.read_file_all(path, 100);
    check("rewrite keeps the existing mode",
          w1.ok() && w2.ok() && (st.st_mode & 07777) == 0600 && r.ok() && *r == "two",
          fmt::format("mode={:o}", st.st_mode & 07777));
    auto w3 = cl.write_file({.path = path, .mode = 0640u}, "three");
    ::stat(path.c_str(), &st);
    check("write with an explicit mode", w3.ok() && (st.st_mode & 07777) == 0640,
          fmt::format("mode={:o}", st.st_mode & 07777));
    auto w4 = cl.write_file({.path = c.dir + "/owned.txt", .owner = "nobody"}, "x");
    ::stat((c.dir + "/owned.txt").c_str(), &st);
    check("write with an explicit owner", w4.ok() && st.st_uid == 65534,
          w4.ok() ? std::to_string(st.st_uid) : err_or(w4.error()));
    auto empty = cl.write_file({.path = c.dir + "/empty.txt"}, "");
    auto er = cl.read_file_all(c.dir + "/empty.txt", 10);
    check("empty file round trip", empty.ok() && er.ok() && er->empty(),
          empty.ok() ? "" : err_or(empty.error()));
  }
  {
    auto nf = cl.read_file_all(c.dir + "/nope/missing.txt", 100);
    check("read missing file gives FILE_NOT_FOUND",
          !nf.ok() && agent_error_code(nf.error()) == "FILE_NOT_FOUND", nf.ok() ? "ok" : err_or(nf.error()));
    auto isdir = cl.read_file_all(c.dir, 100);
    check("read a directory gives IS_A_DIRECTORY",
          !isdir.ok() && agent_error_code(isdir.error()) == "IS_A_DIRECTORY",
          isdir.ok() ? "ok" : err_or(isdir.error()));
    auto notdir = cl.list_dir(base + "/mode.txt");
    check("list a file gives NOT_A_DIRECTORY",
          !notdir.ok() && agent_error_code(notdir.error()) == "NOT_A_DIRECTORY",
          notdir.ok() ? "ok" : err_or(notdir.error()));
    auto longname = cl.write_file({.path = c.dir + "/" + std::string(300, 'n')}, "x");
    check("very long name gives NAME_TOO_LONG",
          !longname.ok() && agent_error_code(longname.error()) == "NAME_TOO_LONG",
          longname.ok() ? "ok" : err_or(longname.error()));
    auto dots = cl.write_file({.path = base + "/../dotdot.txt"}, "dd");
    auto dr = cl.read_file_all(c.dir + "/files dir/dotdot.txt", 10);
    check("paths with .. are used as given", dots.ok() && dr.ok() && *dr == "dd",
          dots.ok() ? "" : err_or(dots.error()));
    auto forbidden = cl.write_file({.path = "/root/forkvm-agent-test-forbidden.txt", .user = "nobody"}, "x");
    check("write as nobody into /root gives FORBIDDEN",
          !forbidden.ok() && agent_error_code(forbidden.error()) == "FORBIDDEN",
          forbidden.ok() ? "ok" : err_or(forbidden.error()));
  }
  {
    std::string d = c.dir + "/listing";
    auto mk = cl.mkdir(d + "/sub/deeper");
    auto w = cl.write_file({.path = d + "/a.txt"}, "a");
    ::symlink("a.txt", (d + "/link").c_str());
    auto l = cl.list_dir(d);
    bool ok = l.ok() && l->size() == 3 && (*l)[0].name == "a.txt" && (*l)[0].kind == "file" &&
              (*l)[1].name == "link" && (*l)[1].kind == "symlink" && (*l)[2].name == "sub" &&
              (*l)[2].kind == "directory";
    check("mkdir -p and list a directory", mk.ok() && w.ok() && ok,
          l.ok() ? fmt::format("n={}", l->size()) : err_or(l.error()));
    auto st = cl.stat(d + "/a.txt");
    check("stat a file",
          st.ok() && st->kind == "file" && st->size == 1 && st->user == "root" && st->mtime_ms > 0,
          st.ok() ? st->kind : err_or(st.error()));
    auto sl = cl.stat(d + "/link");
    check("stat a symlink", sl.ok() && sl->kind == "symlink" && sl->link_target == "a.txt",
          sl.ok() ? sl->kind : err_or(sl.error()));
    auto nonempty = cl.remove(d);
    check("remove a non-empty directory without recursive gives DIRECTORY_NOT_EMPTY",
          !nonempty.ok() && agent_error_code(nonempty.error()) == "DIRECTORY_NOT_EMPTY",
          nonempty.ok() ? "ok" : err_or(nonempty.error()));
    auto rm = cl.remove(d, true);
    struct stat sb {};
    check("remove recursive", rm.ok() && ::stat(d.c_str(), &sb) != 0, rm.ok() ? "" : err_or(rm.error()));
    auto again = cl.remove(d, true);
    check("remove missing gives FILE_NOT_FOUND",
          !again.ok() && agent_error_code(again.error()) == "FILE_NOT_FOUND",
          again.ok() ? "ok" : err_or(again.error()));
  }
  {
    // Many entries arrive over several events.
    std::string d = c.dir + "/many";
    auto r = cl.exec({.command = "mkdir -p '" + d + "' && cd '" + d +
                                 "' && for i in $(seq 1 5000); do : > file-with-a-longish-name-$i; done"});
    auto l = cl.list_dir(d);
    check("list 5000 entries", r.ok() && l.ok() && l->size() == 5000,
          l.ok() ? std::to_string(l->size()) : err_or(l.error()));
  }
}

}  // namespace agent_test
