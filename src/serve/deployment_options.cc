#include "serve/deployment_options.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <type_traits>

#include "base/available_cores.h"

namespace j2v::serve {

namespace {

int64_t parse_int(const std::string& key, const std::string& text) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size())
    throw std::invalid_argument(fmt::format("{} takes an integer, not '{}'", key, text));
  return v;
}

double parse_float(const std::string& key, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v))
    throw std::invalid_argument(fmt::format("{} takes a number, not '{}'", key, text));
  return v;
}

struct Setting {
  std::string name;
  std::function<void(DeploymentOptions&, const std::string&)> set;
  std::function<nlohmann::json(const DeploymentOptions&)> get;
};

// One row per setting: its name and its accessor, parsed as the accessor's type.
template <typename T>
Setting setting(const char* name, DeploymentOptions& (DeploymentOptions::*setter)(const T&),
                const T& (DeploymentOptions::*getter)() const) {
  return {name,
          [=](DeploymentOptions& o, const std::string& text) {
            if constexpr (std::is_same_v<T, std::string>) (o.*setter)(text);
            else if constexpr (std::is_same_v<T, double>) (o.*setter)(parse_float(name, text));
            else (o.*setter)(parse_int(name, text));
          },
          [=](const DeploymentOptions& o) { return nlohmann::json((o.*getter)()); }};
}

const std::vector<Setting>& settings() {
  using O = DeploymentOptions;
  static const std::vector<Setting> all = {
      setting<std::string>("ckpt_path", &O::ckpt_path, &O::ckpt_path),
      setting<std::string>("host", &O::host, &O::host),
      setting<int64_t>("port", &O::port, &O::port),
      setting<int64_t>("max_batch_size", &O::max_batch_size, &O::max_batch_size),
      setting<double>("batch_timeout_ms", &O::batch_timeout_ms, &O::batch_timeout_ms),
      setting<int64_t>("workers", &O::workers, &O::workers),
      setting<int64_t>("http_threads", &O::http_threads, &O::http_threads),
      setting<int64_t>("max_connections", &O::max_connections, &O::max_connections),
      setting<int64_t>("max_header_bytes", &O::max_header_bytes, &O::max_header_bytes),
      setting<double>("request_timeout_s", &O::request_timeout_s, &O::request_timeout_s),
      setting<int64_t>("max_body_bytes", &O::max_body_bytes, &O::max_body_bytes),
      setting<int64_t>("max_records_per_request", &O::max_records_per_request, &O::max_records_per_request),
      setting<int64_t>("max_queue_records", &O::max_queue_records, &O::max_queue_records),
      setting<std::string>("unknown_fields", &O::unknown_fields, &O::unknown_fields),
      setting<double>("keep_alive_timeout_s", &O::keep_alive_timeout_s, &O::keep_alive_timeout_s),
      setting<std::string>("float32_matmul_precision", &O::float32_matmul_precision, &O::float32_matmul_precision),
  };
  return all;
}

}  // namespace

const std::vector<std::string>& DeploymentOptions::keys() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& s : settings()) out.push_back(s.name);
    return out;
  }();
  return names;
}

void DeploymentOptions::set(const std::string& key, const std::string& value) {
  for (const auto& s : settings())
    if (s.name == key) return s.set(*this, value);
  throw std::invalid_argument(
      fmt::format("unknown serve option '{}' (allowed: {})", key, fmt::join(keys(), ", ")));
}

std::string DeploymentOptions::env_name(const std::string& key) {
  std::string out = "JSON2VEC_";
  for (char c : key) out += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

DeploymentOptions DeploymentOptions::from_env() {
  DeploymentOptions options;
  for (const auto& s : settings()) {
    std::string var = env_name(s.name);
    const char* value = std::getenv(var.c_str());
    if (!value) continue;
    try {
      s.set(options, value);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(fmt::format("environment variable {}: {}", var, e.what()));
    }
  }
  return options;
}

void DeploymentOptions::validate() const {
  auto at_least = [](const char* key, double value, double minimum) {
    if (value < minimum) throw std::invalid_argument(fmt::format("{} must be >= {}, not {}", key, minimum, value));
  };
  if (host().empty()) throw std::invalid_argument("host must not be empty (127.0.0.1 serves this machine only)");
  if (port() < 0 || port() > 65535)
    throw std::invalid_argument(fmt::format("port must be in 0..65535, not {}", port()));
  at_least("max_batch_size", static_cast<double>(max_batch_size()), 1);
  at_least("batch_timeout_ms", batch_timeout_ms(), 0);
  at_least("workers", static_cast<double>(workers()), 1);
  at_least("http_threads", static_cast<double>(http_threads()), 1);
  at_least("max_body_bytes", static_cast<double>(max_body_bytes()), 2);
  at_least("max_records_per_request", static_cast<double>(max_records_per_request()), 1);
  at_least("max_queue_records", static_cast<double>(max_queue_records()), 1);
  at_least("keep_alive_timeout_s", keep_alive_timeout_s(), 0);
  at_least("max_connections", static_cast<double>(max_connections()), 1);
  at_least("max_header_bytes", static_cast<double>(max_header_bytes()), 1024);
  if (request_timeout_s() <= 0) throw std::invalid_argument("request_timeout_s must be > 0");
  // Each worker holds a model copy and a thread: beyond these the process would exhaust
  // memory or the thread limit instead of serving.
  const int64_t cores = available_cores();
  for (auto [key, value] : {std::pair<const char*, int64_t>{"workers", workers()}, {"http_threads", http_threads()}})
    if (value > kMaxThreadsPerCore * cores)
      throw std::invalid_argument(fmt::format("{} must be <= {} ({} per core, {} cores here), not {}", key,
                                              kMaxThreadsPerCore * cores, kMaxThreadsPerCore, cores, value));
  if (max_header_bytes() > (int64_t{1} << 20)) throw std::invalid_argument("max_header_bytes must be <= 1048576");
  if (batch_timeout_ms() > 60'000) throw std::invalid_argument("batch_timeout_ms must be <= 60000");
  if (unknown_fields() != "ignore" && unknown_fields() != "reject")
    throw std::invalid_argument(fmt::format("unknown_fields must be 'ignore' or 'reject', not '{}'", unknown_fields()));
  if (float32_matmul_precision() != "highest" && float32_matmul_precision() != "medium")
    throw std::invalid_argument(fmt::format("float32_matmul_precision must be 'highest' or 'medium', not '{}'",
                                            float32_matmul_precision()));
}

nlohmann::json DeploymentOptions::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& s : settings()) out[s.name] = s.get(*this);
  return out;
}

}  // namespace j2v::serve
