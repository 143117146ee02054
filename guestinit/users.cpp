// /etc/passwd and /etc/group parsing and per-thread identity switching.
#include "guestinit/users.hpp"

#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>

#include "vmm/unique_fd.hpp"

namespace forkvm::agent {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t p = s.find(sep, start);
    if (p == std::string_view::npos) {
      out.push_back(s.substr(start));
      return out;
    }
    out.push_back(s.substr(start, p - start));
    start = p + 1;
  }
}

template <typename T>
std::optional<T> parse_id(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return static_cast<T>(v);
}

template <typename F>
void for_each_line(std::string_view text, F&& f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty() && line[0] != '#') f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

}  // namespace

std::vector<PasswdEntry> parse_passwd(std::string_view text) {
  std::vector<PasswdEntry> out;
  for_each_line(text, [&](std::string_view line) {
    auto f = split(line, ':');
    if (f.size() != 7 || f[0].empty()) return;
    auto uid = parse_id<uid_t>(f[2]);
    auto gid = parse_id<gid_t>(f[3]);
    if (!uid || !gid) return;
    out.push_back({std::string(f[0]), *uid, *gid, std::string(f[5]), std::string(f[6])});
  });
  return out;
}

std::vector<GroupEntry> parse_group(std::string_view text) {
  std::vector<GroupEntry> out;
  for_each_line(text, [&](std::string_view line) {
    auto f = split(line, ':');
    if (f.size() != 4 || f[0].empty()) return;
    auto gid = parse_id<gid_t>(f[2]);
    if (!gid) return;
    GroupEntry g{std::string(f[0]), *gid, {}};
    if (!f[3].empty())
      for (auto m : split(f[3], ','))
        if (!m.empty()) g.members.emplace_back(m);
    out.push_back(std::move(g));
  });
  return out;
}

std::optional<Account> resolve_account(std::string_view user, std::string_view passwd_text,
                                       std::string_view group_text) {
  auto users = parse_passwd(passwd_text);
  auto numeric = parse_id<uid_t>(user);
  auto it = std::find_if(users.begin(), users.end(), [&](const PasswdEntry& e) {
    return e.name == user || (numeric && e.uid == *numeric);
  });
  if (it == users.end()) return std::nullopt;
  Account a{it->name, it->uid, it->gid, {it->gid}, it->home, it->shell};
  for (const auto& g : parse_group(group_text)) {
    bool member = std::find(g.members.begin(), g.members.end(), a.name) != g.members.end();
    if (member && std::find(a.groups.begin(), a.groups.end(), g.gid) == a.groups.end())
      a.groups.push_back(g.gid);
  }
  return a;
}

Result<std::string> read_small_file(const char* path, size_t cap) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(fmt::format("read {}", path));
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > cap) return make_error("{} is larger than {} bytes", path, cap);
    out.append(buf, static_cast<size_t>(n));
  }
}

std::optional<Account> lookup_account(std::string_view user, const char* passwd, const char* group) {
  auto p = read_small_file(passwd);
  if (!p.ok()) return std::nullopt;
  auto g = read_small_file(group);
  return resolve_account(user, *p, g.ok() ? std::string_view(*g) : std::string_view());
}

std::string user_name(uid_t uid) {
  auto p = read_small_file("/etc/passwd");
  if (p.ok())
    for (const auto& e : parse_passwd(*p))
      if (e.uid == uid) return e.name;
  return std::to_string(uid);
}

std::string group_name(gid_t gid) {
  auto p = read_small_file("/etc/group");
  if (p.ok())
    for (const auto& e : parse_group(*p))
      if (e.gid == gid) return e.name;
  return std::to_string(gid);
}

std::optional<gid_t> lookup_gid(std::string_view group) {
  auto p = read_small_file("/etc/group");
  if (p.ok())
    for (const auto& e : parse_group(*p))
      if (e.name == group) return e.gid;
  return parse_id<gid_t>(group);
}

ThreadIdentity::ThreadIdentity(const Account* acct) {
  if (acct == nullptr || ::geteuid() != 0 || acct->uid == 0) return;
  active_ = true;
  int n = ::getgroups(0, nullptr);
  saved_groups_.resize(n > 0 ? static_cast<size_t>(n) : 0);
  if (n > 0 && ::getgroups(n, saved_groups_.data()) != n) saved_groups_.clear();
  // Groups first: after fsuid drops, the thread could no longer change them.
  if (::syscall(SYS_setgroups, acct->groups.size(), acct->groups.data()) != 0) ok_ = false;
  ::setfsgid(acct->gid);
  ::setfsuid(acct->uid);
  // setfsuid reports the previous value; asking again (-1 is never valid,
  // so nothing changes) tells whether the switch happened.
  if (static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) != acct->uid) ok_ = false;
}

ThreadIdentity::~ThreadIdentity() {
  if (!active_) return;
  ::setfsuid(0);
  ::setfsgid(0);
  ::syscall(SYS_setgroups, saved_groups_.size(), saved_groups_.data());
}

}  // namespace forkvm::agent
