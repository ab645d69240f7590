#pragma once
// The declarative description of one schema node. Common options live here; options that
// belong to one datatype (max_vocab_size, loss, ...) live in `options` and are checked and
// defaulted by that datatype (fields/), so adding a datatype never touches this file.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace j2v {

struct FieldSpec {
  std::string type;                 // registered datatype name: "number", "category", ...
  std::string name;                 // this node's address segment
  std::vector<std::string> query;   // keys from the parent object to the value; empty = {name}
  bool target = false;              // predicted, never an input (always pruned)
  bool embed = false;               // emit this node's embedding in predictions
  bool nullable = true;             // a null cell is an input state, not an error
  bool active = true;               // an inactive field is skipped entirely
  double weight = 1.0;              // loss weight
  double p_mask = 0.0;              // share of cells hidden and reconstructed in training
  double p_prune = 0.0;             // share of records where the whole field is dropped in training
  nlohmann::json options = nlohmann::json::object();
  std::vector<FieldSpec> children;  // for branch nodes

  bool is_branch() const { return type == "branch"; }
  const std::vector<std::string>& query_keys() const;
  nlohmann::json to_json() const;
  // `value` is a type string ("number") or an options map ({type: number, target: true}).
  static FieldSpec from_json(const std::string& name, const nlohmann::json& value);
};

// Fluent builders mirroring the Python API: j2v::Category("merchant").max_vocab_size(128).target()
template <typename Self>
struct FieldBuilder : FieldSpec {
  FieldBuilder(std::string type_name, std::string field_name) {
    type = std::move(type_name);
    name = std::move(field_name);
  }
  Self& self() { return static_cast<Self&>(*this); }
  Self& target(bool v = true) { FieldSpec::target = v; return self(); }
  Self& embed(bool v = true) { FieldSpec::embed = v; return self(); }
  Self& nullable(bool v = true) { FieldSpec::nullable = v; return self(); }
  Self& active(bool v = true) { FieldSpec::active = v; return self(); }
  Self& weight(double v) { FieldSpec::weight = v; return self(); }
  Self& p_mask(double v) { FieldSpec::p_mask = v; return self(); }
  Self& p_prune(double v) { FieldSpec::p_prune = v; return self(); }
  Self& query(const std::string& path);
  Self& option(const std::string& key, nlohmann::json v) { options[key] = std::move(v); return self(); }
};

struct Number : FieldBuilder<Number> {
  explicit Number(std::string name) : FieldBuilder("number", std::move(name)) {}
  Number& loss(const std::string& v) { return option("loss", v); }   // mse | mae | huber
  Number& n_frequencies(int v) { return option("n_frequencies", v); }
};

struct Category : FieldBuilder<Category> {
  explicit Category(std::string name) : FieldBuilder("category", std::move(name)) {}
  Category& max_vocab_size(int v) { return option("max_vocab_size", v); }
  Category& topk(int v) { return option("topk", v); }
  Category& p_unavailable(double v) { return option("p_unavailable", v); }
};

// A repeated sub-record (an order's line items): `length` slots per parent, its own
// transformer, pooled into one token of its parent. See schema/schema_tree.h.
struct Branch : FieldBuilder<Branch> {
  Branch(std::string name, std::vector<FieldSpec> fields) : FieldBuilder("branch", std::move(name)) {
    children = std::move(fields);
  }
  Branch& length(int v) { return option("length", v); }
  Branch& overflow(const std::string& v) { return option("overflow", v); }  // head | tail | error
  Branch& n_layers(int v) { return option("n_layers", v); }
  Branch& attention(const std::string& v) { return option("attention", v); }  // mha | gqa | mqa | none
  Branch& n_kv_heads(int v) { return option("n_kv_heads", v); }
};

}  // namespace j2v

#include "schema/query_path.h"
template <typename Self>
Self& j2v::FieldBuilder<Self>::query(const std::string& path) {
  FieldSpec::query = parse_query_path(path);
  return self();
}
