// Keys: extraction from headers, hashing (a known SHA-256 vector), issuing
// and authenticating, and that only the hash is stored.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "api/auth/auth.hpp"
#include "api/auth/sha256.hpp"
#include "api/models/ids.hpp"

using namespace forkvm::api;

TEST_CASE("sha256 test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("credentials from headers") {
  CHECK(extract_credential("Bearer abc", std::nullopt) == "abc");
  CHECK(extract_credential("bearer   abc  ", std::nullopt) == "abc");
  CHECK(extract_credential(std::nullopt, "tok") == "tok");
  CHECK(extract_credential("Basic xyz", "tok") == "tok");
  CHECK(!extract_credential("Bearer ", std::nullopt));
  CHECK(!extract_credential("Basic xyz", std::nullopt));
  CHECK(!extract_credential(std::nullopt, std::nullopt));
}

TEST_CASE("issue, authenticate, and store only the hash") {
  char tmpl[] = "/tmp/forkvm-auth-test-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  {
    auto store = open_sqlite_store(dir + "/forkvm.db").value();
    auto issued = issue_api_key(*store, "alice", "test");
    REQUIRE(issued.ok());
    CHECK(looks_like_api_key(issued->key));
    auto again = issue_api_key(*store, "alice", "second");
    CHECK(again->account.id == issued->account.id);  // same account, new key
    CHECK(again->key != issued->key);
    CHECK(authenticate(*store, issued->key)->name == "alice");
    CHECK(authenticate(*store, again->key)->name == "alice");
    CHECK(authenticate(*store, std::string("fvm_wrong")).error().code == ErrorCode::Unauthorized);
    CHECK(authenticate(*store, std::nullopt).error().code == ErrorCode::Unauthorized);
    auto bob = issue_api_key(*store, "bob", "");
    CHECK(authenticate(*store, bob->key)->id != issued->account.id);
    // The key text never reaches the database files.
    std::string all;
    for (const auto& f : std::filesystem::directory_iterator(dir)) {
      std::ifstream in(f.path(), std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
    CHECK(all.find(issued->key) == std::string::npos);
    CHECK(all.find(sha256_hex(issued->key)) != std::string::npos);
  }
  std::filesystem::remove_all(dir);
}
