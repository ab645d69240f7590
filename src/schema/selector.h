#pragma once
// Selectors over the nodes of a schema, after the reference's `where`:
//   where("type") == "number",  where("name").is_in({"note", "seller"}),
//   where("address").matches("record\\.items\\..*"),  ~where("target") == true, a & b, a | b.
// A node's attributes are its address, name and type, the common flags (target, embed,
// nullable, active, weight, p_mask, p_prune) and its datatype's options (max_vocab_size,
// length, ...); an attribute a node does not have reads as null. Regular expressions match
// the whole value (ECMAScript syntax).
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "schema/schema.h"

namespace j2v {

// One node of a schema as selectors see it: a copy, so reading a selection never changes
// the schema it came from.
struct SchemaNode {
  std::string address;  // "record.items.price"
  FieldSpec spec;
  nlohmann::json attributes() const;
};
// The attributes of the root, which only `extend` may select (to add top-level fields).
nlohmann::json root_attributes(const Schema& schema);

class Selector {
 public:
  Selector(std::function<bool(const nlohmann::json&)> test, std::string description)
      : test_(std::make_shared<std::function<bool(const nlohmann::json&)>>(std::move(test))),
        description_(std::move(description)) {}
  bool operator()(const SchemaNode& node) const { return (*test_)(node.attributes()); }
  bool test(const nlohmann::json& attributes) const { return (*test_)(attributes); }
  // How the selector reads, for errors: `type == "number" & name != "price"`.
  const std::string& description() const { return description_; }

  Selector operator&(const Selector& other) const;
  Selector operator|(const Selector& other) const;
  Selector operator~() const;

 private:
  std::shared_ptr<std::function<bool(const nlohmann::json&)>> test_;
  std::string description_;
};

class Attribute {
 public:
  explicit Attribute(std::string name) : name_(std::move(name)) {}
  Selector operator==(const nlohmann::json& value) const;
  Selector operator!=(const nlohmann::json& value) const;
  Selector is_in(const std::vector<nlohmann::json>& values) const;
  // The whole value (as text for a string, its JSON otherwise) matches the regular expression.
  // Throws std::invalid_argument when the expression does not compile.
  Selector matches(const std::string& regex) const;
  // A string attribute containing `part`, or a list attribute holding `part` as an element.
  Selector contains(const nlohmann::json& part) const;
  Selector is_null() const;

 private:
  std::string name_;
};

inline Attribute where(std::string attribute) { return Attribute(std::move(attribute)); }

// Every node of the schema, pre-order (a branch before its children), the root excluded.
std::vector<SchemaNode> schema_nodes(const Schema& schema);
// The nodes `selector` picks, in schema order.
std::vector<SchemaNode> select_nodes(const Schema& schema, const Selector& selector);

}  // namespace j2v
