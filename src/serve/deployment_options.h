#pragma once
// Settings of `json2vec serve` / j2v::Deployment. Each setting has one name used three
// ways: the C++ setter (DeploymentOptions().port(8000)), the CLI flag (--port 8000) and the
// environment variable (JSON2VEC_PORT=8000), so a container can be configured either way.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/options.h"

namespace j2v::serve {

constexpr int64_t kMaxThreadsPerCore = 4;  // workers, and http_threads

struct DeploymentOptions {
  J2V_ARG(std::string, ckpt_path) = "";  // the checkpoint served (Deployment(options) only)
  J2V_ARG(std::string, host) = "127.0.0.1";
  J2V_ARG(int64_t, port) = 8000;  // 0 picks a free port: Deployment::port() names it
  // Records run in one forward pass at most; a request never spans two passes, and one
  // larger than this runs alone, in slices of this size.
  J2V_ARG(int64_t, max_batch_size) = 128;
  // The longest the oldest queued record waits for others to join its batch. The wait
  // ends early once no other request is being read, so a lone client is not slowed.
  J2V_ARG(double, batch_timeout_ms) = 2.0;
  // Forward-pass threads, each with its own model copy and one kernel thread: with two,
  // one batch runs while the next is collected. At most kMaxThreadsPerCore per core.
  J2V_ARG(int64_t, workers) = 2;
  // Threads of the HTTP event loop, which reads, checks and answers requests for every
  // connection (forward passes run on the workers). At most kMaxThreadsPerCore per core.
  J2V_ARG(int64_t, http_threads) = 2;
  // Open connections at most (idle keep-alive ones included); further ones are closed at once.
  J2V_ARG(int64_t, max_connections) = 10000;
  // A request's line and headers together; more is answered 431.
  J2V_ARG(int64_t, max_header_bytes) = 16384;
  // From a request's first byte to its last: a client sending slower is answered 408 and
  // closed (slowloris), and never holds up others.
  J2V_ARG(double, request_timeout_s) = 10.0;
  J2V_ARG(int64_t, max_body_bytes) = 1 << 20;
  J2V_ARG(int64_t, max_records_per_request) = 1024;
  // Records waiting for a worker; past this /predict answers 503 (back-pressure).
  J2V_ARG(int64_t, max_queue_records) = 8192;
  J2V_ARG(std::string, unknown_fields) = "ignore";  // ignore | reject (422 naming the key)
  J2V_ARG(double, keep_alive_timeout_s) = 5.0;
  // highest | medium: as trainer.float32_matmul_precision (engine/precision.h), for the
  // forward passes of this process.
  J2V_ARG(std::string, float32_matmul_precision) = "highest";

 public:
  // Every setting by its name, in display order.
  static const std::vector<std::string>& keys();
  // Sets one setting from text (a flag's or an environment variable's value); throws
  // std::invalid_argument naming the setting and what it takes.
  void set(const std::string& key, const std::string& value);
  // Defaults overridden by every JSON2VEC_<KEY> environment variable that is set.
  static DeploymentOptions from_env();
  static std::string env_name(const std::string& key);  // "max_batch_size" -> JSON2VEC_MAX_BATCH_SIZE
  void validate() const;  // throws std::invalid_argument naming the setting
  nlohmann::json to_json() const;
};

}  // namespace j2v::serve
