#include "schema/schema_tree.h"
#include "base/json_read.h"

#include <algorithm>

#include "schema/schema.h"

namespace j2v {

const char* overflow_name(Overflow o) {
  switch (o) {
    case Overflow::kHead: return "head";
    case Overflow::kTail: return "tail";
    case Overflow::kError: return "error";
  }
  return "?";
}

std::vector<int> SchemaTree::lineage(int branch) const {
  std::vector<int> chain;
  for (int b = branch; b >= 0; b = branches[b].parent) chain.push_back(b);
  std::reverse(chain.begin(), chain.end());
  return chain;
}

const nlohmann::json& branch_option_defaults() {
  static const nlohmann::json defaults = {
      {"length", 16}, {"overflow", "head"}, {"n_layers", 1}, {"attention", "gqa"}, {"n_kv_heads", 0}, {"mask", nullptr}};
  return defaults;
}

void validate_branch_options(const FieldSpec& spec) {
  auto fail = [&](const std::string& key, const std::string& what) {
    throw SchemaError("branch '" + spec.name + "': option '" + key + "' " + what + ", got " + spec.options[key].dump());
  };
  const auto& o = spec.options;
  if (!o["length"].is_number_integer() || o["length"].get<int64_t>() < 1 || o["length"].get<int64_t>() > 4096)
    fail("length", "must be an integer in [1, 4096]");
  const auto& overflow = o["overflow"];
  if (!overflow.is_string() || (overflow != "head" && overflow != "tail" && overflow != "error"))
    fail("overflow", "must be one of head, tail, error");
  if (!o["n_layers"].is_number_integer() || o["n_layers"].get<int64_t>() < 0 || o["n_layers"].get<int64_t>() > 64)
    fail("n_layers", "must be an integer in [0, 64]");
  const auto& attention = o["attention"];
  if (!attention.is_string() ||
      (attention != "mha" && attention != "gqa" && attention != "mqa" && attention != "none"))
    fail("attention", "must be one of mha, gqa, mqa, none");
  if (!o["n_kv_heads"].is_number_integer() || o["n_kv_heads"].get<int64_t>() < 0)
    fail("n_kv_heads", "must be a non-negative integer (0: half the heads for gqa)");
  const auto& mask = o["mask"];
  if (mask.is_null()) return;
  auto mask_fail = [&](const std::string& what) {
    throw SchemaError("branch '" + spec.name + "': option 'mask' " + what + ", got " + mask.dump());
  };
  if (!mask.is_object()) mask_fail("must be a mapping like {rate: 0.2} or {count: 1, window: end}");
  for (const auto& [key, _] : mask.items())
    if (key != "rate" && key != "count" && key != "window" && key != "p")
      mask_fail("has unknown key '" + key + "' (allowed: rate, count, window, p)");
  if (mask.contains("rate") == mask.contains("count")) mask_fail("needs exactly one of rate and count");
  if (mask.contains("rate") &&
      (!mask["rate"].is_number() || !(mask["rate"].get<double>() > 0) || mask["rate"].get<double>() > 1))
    mask_fail("needs rate in (0, 1]");
  if (mask.contains("count") &&
      (!mask["count"].is_number_integer() || mask["count"].get<int64_t>() < 1 ||
       mask["count"].get<int64_t>() > o["length"].get<int64_t>()))
    mask_fail("needs count an integer in [1, length]");
  if (mask.contains("window") &&
      (!mask["window"].is_string() ||
       (mask["window"] != "random" && mask["window"] != "start" && mask["window"] != "end")))
    mask_fail("needs window one of random, start, end");
  if (mask.contains("p") && (!mask["p"].is_number() || mask["p"].get<double>() < 0 || mask["p"].get<double>() > 1))
    mask_fail("needs p in [0, 1]");
}

BranchMask BranchMask::from_json(const nlohmann::json& value) {
  BranchMask m;
  if (!value.is_object()) return m;
  m.enabled = true;
  m.rate = value.value("rate", 0.0);
  m.count = read_integer(value, "count", 0);
  std::string window = value.value("window", std::string("random"));
  m.window = window == "start" ? Window::kStart : window == "end" ? Window::kEnd : Window::kRandom;
  m.p = value.value("p", 1.0);
  return m;
}

}  // namespace j2v
