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
  Number& embedding(const std::string& v) { return option("embedding", v); }  // piecewise | periodic | both
  Number& n_bins(int v) { return option("n_bins", v); }
  Number& linear_term(bool v) { return option("linear_term", v); }  // the clamped standardised value as a feature
  Number& n_frequencies(int v) { return option("n_frequencies", v); }
  Number& transform(const std::string& v) { return option("transform", v); }  // none | log
};

struct Category : FieldBuilder<Category> {
  explicit Category(std::string name) : FieldBuilder("category", std::move(name)) {}
  Category& max_vocab_size(int v) { return option("max_vocab_size", v); }
  Category& topk(int v) { return option("topk", v); }
  Category& p_unavailable(double v) { return option("p_unavailable", v); }
};

struct Boolean : FieldBuilder<Boolean> {
  explicit Boolean(std::string name) : FieldBuilder("boolean", std::move(name)) {}
  Boolean& threshold(double v) { return option("threshold", v); }
};

struct Set : FieldBuilder<Set> {
  explicit Set(std::string name) : FieldBuilder("set", std::move(name)) {}
  Set& max_vocab_size(int v) { return option("max_vocab_size", v); }
  Set& max_size(int v) { return option("max_size", v); }
  Set& threshold(double v) { return option("threshold", v); }
  Set& topk(int v) { return option("topk", v); }
};

// Parts: day_of_year, week_of_year, month_of_year, day_of_month, week_of_month,
// day_of_week, hour_of_day, minute_of_hour.
struct DateParts : FieldBuilder<DateParts> {
  explicit DateParts(std::string name) : FieldBuilder("dateparts", std::move(name)) {}
  DateParts& parts(std::vector<std::string> v) { return option("parts", std::move(v)); }
  DateParts& format(const std::string& strptime_pattern) { return option("format", strptime_pattern); }
  DateParts& unit(const std::string& v) { return option("unit", v); }  // s | ms, for Unix times
  DateParts& utc(bool v = true) { return option("utc", v); }
};

struct Entity : FieldBuilder<Entity> {
  explicit Entity(std::string name) : FieldBuilder("entity", std::move(name)) {}
  Entity& max_entities(int v) { return option("max_entities", v); }
};

struct Vector : FieldBuilder<Vector> {
  Vector(std::string name, int n_dim) : FieldBuilder("vector", std::move(name)) { option("n_dim", n_dim); }
  Vector& loss(const std::string& v) { return option("loss", v); }  // l2 | l1
  Vector& normalize(bool v = true) { return option("normalize", v); }
};

struct Text : FieldBuilder<Text> {
  explicit Text(std::string name) : FieldBuilder("text", std::move(name)) {}
  Text& max_features(int v) { return option("max_features", v); }
  Text& buckets(int v) { return option("buckets", v); }
};

// An identifier from an unbounded set (accounts, devices), hashed: equal values share an
// embedding without a vocabulary.
struct Hash : FieldBuilder<Hash> {
  explicit Hash(std::string name) : FieldBuilder("hash", std::move(name)) {}
  Hash& buckets(int v) { return option("buckets", v); }
  Hash& num_hashes(int v) { return option("num_hashes", v); }
};

// Hides whole items of a branch in training: Mask().rate(0.2), Mask().count(1).window("end").
struct Mask {
  nlohmann::json json = nlohmann::json::object();
  Mask& rate(double v) { json["rate"] = v; return *this; }
  Mask& count(int v) { json["count"] = v; return *this; }
  Mask& window(const std::string& v) { json["window"] = v; return *this; }  // random | start | end
  Mask& p(double v) { json["p"] = v; return *this; }
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
  Branch& mask(const Mask& m) { return option("mask", m.json); }
};

}  // namespace j2v

#include "schema/query_path.h"
template <typename Self>
Self& j2v::FieldBuilder<Self>::query(const std::string& path) {
  FieldSpec::query = parse_query_path(path);
  return self();
}
