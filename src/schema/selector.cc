#include "schema/selector.h"

#include <regex>
#include <stdexcept>

namespace j2v {
namespace {

const nlohmann::json& attribute_of(const nlohmann::json& attributes, const std::string& name) {
  static const nlohmann::json null;
  auto it = attributes.find(name);
  return it == attributes.end() ? null : *it;
}

// Numbers compare by value, so where("weight") == 1 selects a weight of 1.0.
bool same(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

void collect(const std::string& parent, const std::vector<FieldSpec>& fields, std::vector<SchemaNode>& out) {
  for (const auto& f : fields) {
    std::string address = parent + "." + f.name;
    out.push_back({address, f});
    if (f.is_branch()) collect(address, f.children, out);
  }
}

}  // namespace

nlohmann::json SchemaNode::attributes() const {
  nlohmann::json a = spec.options;
  auto dot = address.rfind('.');
  a["address"] = address;
  a["parent"] = dot == std::string::npos ? "" : address.substr(0, dot);
  a["name"] = spec.name;
  a["type"] = spec.type;
  a["target"] = spec.target;
  a["embed"] = spec.embed;
  a["nullable"] = spec.nullable;
  a["active"] = spec.active;
  a["weight"] = spec.weight;
  a["p_mask"] = spec.p_mask;
  a["p_prune"] = spec.p_prune;
  return a;
}

nlohmann::json root_attributes(const Schema& schema) {
  return {{"address", schema.name}, {"parent", ""}, {"name", schema.name}, {"type", "root"}};
}

Selector Selector::operator&(const Selector& other) const {
  auto a = test_, b = other.test_;
  return Selector([a, b](const nlohmann::json& n) { return (*a)(n) && (*b)(n); },
                  "(" + description_ + " & " + other.description_ + ")");
}

Selector Selector::operator|(const Selector& other) const {
  auto a = test_, b = other.test_;
  return Selector([a, b](const nlohmann::json& n) { return (*a)(n) || (*b)(n); },
                  "(" + description_ + " | " + other.description_ + ")");
}

Selector Selector::operator~() const {
  auto a = test_;
  return Selector([a](const nlohmann::json& n) { return !(*a)(n); }, "~" + description_);
}

Selector Attribute::operator==(const nlohmann::json& value) const {
  auto name = name_;
  return Selector([name, value](const nlohmann::json& n) { return same(attribute_of(n, name), value); },
                  name + " == " + value.dump());
}

Selector Attribute::operator!=(const nlohmann::json& value) const {
  auto name = name_;
  return Selector([name, value](const nlohmann::json& n) { return !same(attribute_of(n, name), value); },
                  name + " != " + value.dump());
}

Selector Attribute::is_in(const std::vector<nlohmann::json>& values) const {
  auto name = name_;
  return Selector(
      [name, values](const nlohmann::json& n) {
        const auto& v = attribute_of(n, name);
        for (const auto& candidate : values)
          if (same(v, candidate)) return true;
        return false;
      },
      name + " in " + nlohmann::json(values).dump());
}

Selector Attribute::matches(const std::string& regex) const {
  std::shared_ptr<std::regex> compiled;
  try {
    compiled = std::make_shared<std::regex>(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw std::invalid_argument("where(\"" + name_ + "\").matches(\"" + regex + "\"): not a valid regular expression (" +
                                e.what() + ")");
  }
  auto name = name_;
  return Selector(
      [name, compiled](const nlohmann::json& n) {
        const auto& v = attribute_of(n, name);
        if (v.is_null()) return false;
        return std::regex_match(v.is_string() ? v.get<std::string>() : v.dump(), *compiled);
      },
      name + " matches " + nlohmann::json(regex).dump());
}

Selector Attribute::contains(const nlohmann::json& part) const {
  auto name = name_;
  return Selector(
      [name, part](const nlohmann::json& n) {
        const auto& v = attribute_of(n, name);
        if (v.is_string() && part.is_string()) return v.get<std::string>().find(part.get<std::string>()) != std::string::npos;
        if (v.is_array())
          for (const auto& e : v)
            if (same(e, part)) return true;
        return false;
      },
      name + " contains " + part.dump());
}

Selector Attribute::is_null() const {
  auto name = name_;
  return Selector([name](const nlohmann::json& n) { return attribute_of(n, name).is_null(); }, name + " is null");
}

std::vector<SchemaNode> schema_nodes(const Schema& schema) {
  std::vector<SchemaNode> out;
  collect(schema.name, schema.fields, out);
  return out;
}

std::vector<SchemaNode> select_nodes(const Schema& schema, const Selector& selector) {
  std::vector<SchemaNode> out;
  for (auto& node : schema_nodes(schema))
    if (selector(node)) out.push_back(std::move(node));
  return out;
}

}  // namespace j2v
