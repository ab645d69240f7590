#include "schema/schema_edit.h"

#include <algorithm>
#include <functional>
#include <set>

namespace j2v {
namespace {

// Calls `visit(address, spec)` on every node, parents first; specs can be changed in place.
void for_each_node(const std::string& parent, std::vector<FieldSpec>& fields,
                   const std::function<void(const std::string&, FieldSpec&)>& visit) {
  for (auto& f : fields) {
    std::string address = parent + "." + f.name;
    visit(address, f);
    if (f.is_branch()) for_each_node(address, f.children, visit);
  }
}

std::string names_of(const std::vector<SchemaNode>& nodes) {
  std::string out;
  for (size_t i = 0; i < nodes.size() && i < 12; ++i) out += (i ? ", " : "") + nodes[i].address;
  if (nodes.size() > 12) out += ", ...";
  return out;
}

}  // namespace

std::vector<std::string> selected_addresses(const Schema& schema, const Selector& selector, const std::string& action) {
  std::vector<std::string> out;
  auto nodes = schema_nodes(schema);
  for (const auto& n : nodes)
    if (selector(n)) out.push_back(n.address);
  if (out.empty())
    throw SchemaError(action + ": the selector `" + selector.description() + "` matches no node of the schema (nodes: " +
                      names_of(nodes) + ")");
  return out;
}

Schema update_schema(const Schema& schema, const Selector& selector, const nlohmann::json& changes) {
  if (!changes.is_object() || changes.empty())
    throw SchemaError("update: expected a map of options to set, e.g. {{\"p_mask\", 0.1}}, got " + changes.dump());
  for (const auto& [key, _] : changes.items())
    if (key == "type" || key == "name" || key == "query" || key == "fields" || key == "order" || key == "address")
      throw SchemaError("update: '" + key + "' cannot be changed in place (it makes another node): remove the node "
                        "and extend its parent with the new one");
  auto wanted = selected_addresses(schema, selector, "update");
  std::set<std::string> chosen(wanted.begin(), wanted.end());
  Schema out = schema;
  for_each_node(out.name, out.fields, [&](const std::string& address, FieldSpec& spec) {
    if (!chosen.count(address)) return;
    nlohmann::json merged = spec.to_json();
    for (const auto& [key, value] : changes.items()) merged[key] = value;
    auto children = spec.children;
    FieldSpec updated = FieldSpec::from_json(spec.name, merged);  // checks the common keys' types
    updated.children = std::move(children);  // an update of the parent keeps the children's own updates
    spec = std::move(updated);
  });
  out.validate();
  return out;
}

Schema extend_schema(const Schema& schema, const Selector& selector, const std::vector<FieldSpec>& fields) {
  if (fields.empty()) throw SchemaError("extend: no fields given");
  Schema out = schema;
  auto add = [&](const std::string& address, std::vector<FieldSpec>& into) {
    for (const auto& f : fields) {
      if (std::any_of(into.begin(), into.end(), [&](const FieldSpec& e) { return e.name == f.name; }))
        throw SchemaError("extend: '" + address + "' already has a field named '" + f.name + "'");
      into.push_back(f);
    }
  };
  int extended = 0;
  if (selector.test(root_attributes(schema))) {
    add(schema.name, out.fields);
    ++extended;
  }
  std::vector<std::string> not_branches;
  for_each_node(out.name, out.fields, [&](const std::string& address, FieldSpec& spec) {
    SchemaNode node{address, spec};
    if (!selector(node)) return;
    if (!spec.is_branch()) {
      not_branches.push_back(address);
      return;
    }
    add(address, spec.children);
    ++extended;
  });
  if (!not_branches.empty())
    throw SchemaError("extend: only a branch or the root takes new fields, and the selector `" +
                      selector.description() + "` also matches '" + not_branches.front() + "' (a " +
                      "leaf); narrow it, e.g. & where(\"type\") == \"branch\"");
  if (extended == 0)
    throw SchemaError("extend: the selector `" + selector.description() + "` matches no branch and not the root ('" +
                      schema.name + "')");
  out.validate();
  return out;
}

Schema remove_from_schema(const Schema& schema, const Selector& selector) {
  auto wanted = selected_addresses(schema, selector, "remove");
  std::set<std::string> chosen(wanted.begin(), wanted.end());
  std::function<void(const std::string&, std::vector<FieldSpec>&)> prune = [&](const std::string& parent,
                                                                              std::vector<FieldSpec>& fields) {
    fields.erase(std::remove_if(fields.begin(), fields.end(),
                                [&](const FieldSpec& f) { return chosen.count(parent + "." + f.name) > 0; }),
                 fields.end());
    for (auto& f : fields)
      if (f.is_branch()) prune(parent + "." + f.name, f.children);
  };
  Schema out = schema;
  prune(out.name, out.fields);
  out.validate();
  return out;
}

}  // namespace j2v
