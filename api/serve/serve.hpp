// `forkvm serve` and `forkvm keys`, as functions the command line calls.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/engine/local_engine.hpp"
#include "api/http/server.hpp"
#include "vmm/result.hpp"

namespace forkvm::api {

struct ServeOptions {
  std::string data_dir = "./data";
  HttpServerOptions http;
  engine::LocalEngineOptions engine;  // data_dir is filled from data_dir
};

// Splits "ADDR:PORT" ("127.0.0.1:8080", "[::1]:8080", ":8080" = all IPv4).
Status parse_listen(std::string_view text, HttpServerOptions& http);

// Opens <data>/forkvm.db (creating the directory and schema), makes a first
// key when there is none, and serves until SIGINT/SIGTERM. Returns the exit status.
int run_serve(const ServeOptions& options);

// `forkvm keys create`: prints a new key for `account` on stdout.
int run_keys_create(const std::string& data_dir, const std::string& account, const std::string& label);

}  // namespace forkvm::api
