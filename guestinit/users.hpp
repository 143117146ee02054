// Linux users and groups from /etc/passwd and /etc/group. The agent is a
// static binary, where glibc's NSS lookups (getpwnam) do not work, so it
// parses the files itself; the parsers are pure for unit tests.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::agent {

struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
  std::string shell;
};

struct GroupEntry {
  std::string name;
  gid_t gid = 0;
  std::vector<std::string> members;
};

// Malformed lines (wrong field count, non-numeric ids, comments) are skipped.
std::vector<PasswdEntry> parse_passwd(std::string_view text);
std::vector<GroupEntry> parse_group(std::string_view text);

// A resolved account: what a child process needs to become that user.
struct Account {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // primary first, then supplementary
  std::string home;
  std::string shell;
};

// Pure resolution from file contents: a name, or a numeric uid.
std::optional<Account> resolve_account(std::string_view user, std::string_view passwd_text,
                                       std::string_view group_text);
// Reads /etc/passwd and /etc/group (paths overridable for tests).
std::optional<Account> lookup_account(std::string_view user, const char* passwd = "/etc/passwd",
                                      const char* group = "/etc/group");
std::string user_name(uid_t uid);   // numeric string when unknown
std::string group_name(gid_t gid);  // numeric string when unknown
std::optional<gid_t> lookup_gid(std::string_view group);

// Switches the calling thread's filesystem identity (fsuid, fsgid and
// supplementary groups, all per-thread in the kernel) for file operations
// done as a user, and restores root's on destruction. Raw syscalls on
// purpose: glibc's setgroups() would change every thread of the agent.
class ThreadIdentity {
 public:
  explicit ThreadIdentity(const Account* acct);
  ~ThreadIdentity();
  ThreadIdentity(const ThreadIdentity&) = delete;
  ThreadIdentity& operator=(const ThreadIdentity&) = delete;
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  bool active_ = false;
  bool ok_ = true;
  std::vector<gid_t> saved_groups_;
};

Result<std::string> read_small_file(const char* path, size_t cap = 16u << 20);

}  // namespace forkvm::agent
