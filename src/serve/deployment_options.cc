#include "serve/deployment_options.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <stdexcept>

namespace j2v {

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

#define J2V_STRING_SETTING(name) \
  {#name, [](DeploymentOptions& o, const std::string& v) { o.name(v); }, [](const DeploymentOptions& o) { return nlohmann::json(o.name()); }}
#define J2V_INT_SETTING(name)                                                                    \
  {#name, [](DeploymentOptions& o, const std::string& v) { o.name(parse_int(#name, v)); }, \
   [](const DeploymentOptions& o) { return nlohmann::json(o.name()); }}
#define J2V_FLOAT_SETTING(name)                                                                    \
  {#name, [](DeploymentOptions& o, const std::string& v) { o.name(parse_float(#name, v)); }, \
   [](const DeploymentOptions& o) { return nlohmann::json(o.name()); }}

const std::vector<Setting>& settings() {
  static const std::vector<Setting> all = {
      J2V_STRING_SETTING(ckpt_path),          J2V_STRING_SETTING(host),
      J2V_INT_SETTING(port),                  J2V_INT_SETTING(max_batch_size),
      J2V_FLOAT_SETTING(batch_timeout_ms),    J2V_INT_SETTING(workers),
      J2V_INT_SETTING(http_threads),          J2V_INT_SETTING(max_body_bytes),
      J2V_INT_SETTING(max_records_per_request), J2V_INT_SETTING(max_queue_records),
      J2V_STRING_SETTING(unknown_fields),     J2V_FLOAT_SETTING(keep_alive_timeout_s),
  };
  return all;
}

#undef J2V_STRING_SETTING
#undef J2V_INT_SETTING
#undef J2V_FLOAT_SETTING

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
  if (port() < 0 || port() > 65535) throw std::invalid_argument(fmt::format("port must be in 0..65535, not {}", port()));
  at_least("max_batch_size", static_cast<double>(max_batch_size()), 1);
  at_least("batch_timeout_ms", batch_timeout_ms(), 0);
  at_least("workers", static_cast<double>(workers()), 1);
  at_least("http_threads", static_cast<double>(http_threads()), 1);
  at_least("max_body_bytes", static_cast<double>(max_body_bytes()), 2);
  at_least("max_records_per_request", static_cast<double>(max_records_per_request()), 1);
  at_least("max_queue_records", static_cast<double>(max_queue_records()), 1);
  at_least("keep_alive_timeout_s", keep_alive_timeout_s(), 0);
  if (batch_timeout_ms() > 60'000) throw std::invalid_argument("batch_timeout_ms must be <= 60000");
  if (unknown_fields() != "ignore" && unknown_fields() != "reject")
    throw std::invalid_argument(fmt::format("unknown_fields must be 'ignore' or 'reject', not '{}'", unknown_fields()));
}

nlohmann::json DeploymentOptions::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& s : settings()) out[s.name] = s.get(*this);
  return out;
}

}  // namespace j2v
