// A store on a temporary directory with one account and its API key, and
// requests through Api::handle as that account: what route tests share.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <variant>

#include "api/auth/auth.hpp"
#include "api/routes/api.hpp"
#include "api/store/store.hpp"

namespace forkvm::api::test {

struct ApiFixture {
  std::string dir;
  std::unique_ptr<Store> store;
  std::string key;
  Account account;

  ApiFixture() {
    char tmpl[] = "/tmp/forkvm-api-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    auto s = open_sqlite_store(dir + "/forkvm.db");
    REQUIRE(s.ok());
    store = std::move(*s);
    auto issued = issue_api_key(*store, "default", "test");
    REQUIRE(issued.ok());
    key = issued->key;
    account = issued->account;
  }
  ~ApiFixture() { std::filesystem::remove_all(dir); }
  ApiFixture(const ApiFixture&) = delete;
  ApiFixture& operator=(const ApiFixture&) = delete;

  HttpResponse call(VmEngine& engine, const std::string& method, const std::string& target,
                    const std::string& body = "") {
    Api api(*store, engine, "{}");
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    r.headers.emplace_back("authorization", "Bearer " + key);
    r.request_id = "ri-test";
    HttpReply reply = api.handle(r);
    REQUIRE(std::holds_alternative<HttpResponse>(reply));
    return std::get<HttpResponse>(reply);
  }
};

}  // namespace forkvm::api::test
