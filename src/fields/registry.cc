#include "fields/registry.h"

#include <fmt/format.h>

#include <map>

namespace j2v {

// Each datatype is defined in its own file; declared here and listed in all_datatypes().
Datatype number_datatype();
Datatype category_datatype();
Datatype boolean_datatype();
Datatype set_datatype();
Datatype dateparts_datatype();
Datatype entity_datatype();
Datatype vector_datatype();
Datatype text_datatype();
Datatype hash_datatype();

namespace {
const std::map<std::string, Datatype>& all_datatypes() {
  static const std::map<std::string, Datatype> types = [] {
    std::map<std::string, Datatype> m;
    for (auto make : {number_datatype, category_datatype, boolean_datatype, set_datatype, dateparts_datatype,
                      entity_datatype, vector_datatype, text_datatype, hash_datatype}) {
      Datatype d = make();
      m.emplace(d.name, std::move(d));
    }
    return m;
  }();
  return types;
}
}  // namespace

const char* cell_state_name(int state) {
  static const char* names[] = {"valued", "null", "padded", "masked", "other"};
  return (state >= 0 && state < kNumCellStates) ? names[state] : "invalid";
}

const char* Scalar::kind_name() const {
  switch (kind) {
    case Kind::kMissing: return "missing";
    case Kind::kNull: return "null";
    case Kind::kBool: return "a boolean";
    case Kind::kNumber: return "a number";
    case Kind::kString: return "a string";
    case Kind::kObject: return "an object";
    case Kind::kArray: return "an array";
  }
  return "?";
}

void Field::encode(const Scalar& value, Column& column, size_t row) const {
  switch (value.kind) {
    case Scalar::Kind::kMissing:
    case Scalar::Kind::kNull:
      if (!spec_.nullable && !spec_.target)
        throw EncodeError(fmt::format("is {} but the field is not nullable", value.kind_name()));
      column.state[row] = static_cast<uint8_t>(CellState::kNull);
      return;
    case Scalar::Kind::kString:
      if (value.text == kMaskLiteral) {
        column.state[row] = static_cast<uint8_t>(CellState::kMasked);
        return;
      }
      break;
    default:
      break;
  }
  encode_value(value, column, row);
}

void Field::encode_record(const Scalar* values, const uint8_t* present, int64_t slots, Column& column,
                          size_t first) const {
  for (int64_t s = 0; s < slots; ++s) {
    size_t cell = first + static_cast<size_t>(s);
    if (present[s])
      encode(values[s], column, cell);
    else
      column.state[cell] = static_cast<uint8_t>(CellState::kPadded);
  }
}

std::vector<std::string> datatype_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : all_datatypes()) names.push_back(name);
  return names;
}

const Datatype& find_datatype(const std::string& name) {
  const auto& types = all_datatypes();
  auto it = types.find(name);
  if (it == types.end())
    throw SchemaError(fmt::format("unknown field type '{}' (allowed: {})", name,
                                  fmt::join(datatype_names(), ", ")));
  return it->second;
}

namespace {
void check_options(FieldSpec& spec, const nlohmann::json& defaults, const std::string& what) {
  for (const auto& [key, _] : spec.options.items()) {
    if (!defaults.contains(key)) {
      std::vector<std::string> allowed = {"type", "query", "target", "embed", "nullable",
                                          "active", "weight", "p_mask", "p_prune"};
      if (spec.is_branch()) allowed = {"type", "query", "embed", "active", "fields"};
      for (const auto& [k, __] : defaults.items()) allowed.push_back(k);
      throw SchemaError(fmt::format("field '{}': unknown option '{}' for {} (allowed: {})", spec.name, key, what,
                                    fmt::join(allowed, ", ")));
    }
  }
  for (const auto& [key, def] : defaults.items())
    if (!spec.options.contains(key)) spec.options[key] = def;
}

void build_level(std::vector<FieldSpec>& specs, int branch, const Address& parent, SchemaTree& tree,
                 std::vector<std::shared_ptr<Field>>& fields) {
  for (auto& spec : specs) {
    if (spec.is_branch()) {
      check_options(spec, branch_option_defaults(), "a branch");
      validate_branch_options(spec);
      if (!spec.active) continue;
      BranchNode node;
      node.address = parent.child(spec.name);
      node.parent = branch;
      node.depth = tree.branches[branch].depth + 1;
      node.query = spec.query_keys();
      node.length = spec.options["length"].get<int64_t>();
      node.parent_slots = tree.branches[branch].slots;
      node.slots = node.parent_slots * node.length;
      if (node.slots > (1 << 16))
        throw SchemaError(fmt::format("branch '{}': {} slots per record (the product of the lengths of it and its "
                                      "parents) is more than 65536; lower `length`",
                                      spec.name, node.slots));
      const std::string overflow = spec.options["overflow"].get<std::string>();
      node.overflow = overflow == "tail" ? Overflow::kTail : overflow == "error" ? Overflow::kError : Overflow::kHead;
      node.n_layers = spec.options["n_layers"].get<int64_t>();
      node.attention = spec.options["attention"].get<std::string>();
      node.n_kv_heads = spec.options["n_kv_heads"].get<int64_t>();
      node.embed = spec.embed;
      node.mask = BranchMask::from_json(spec.options["mask"]);
      int index = static_cast<int>(tree.branches.size());
      tree.branches.push_back(std::move(node));
      tree.branches[branch].children.push_back(static_cast<size_t>(index));
      // A copy: the recursion appends branches, which may move the vector this lives in
      // (ASan: heap-use-after-free, found by scripts/test.sh --sanitize).
      const Address address = tree.branches[index].address;
      build_level(spec.children, index, address, tree, fields);
      continue;
    }
    const Datatype* type;
    try {
      type = &find_datatype(spec.type);
    } catch (const SchemaError& e) {
      throw SchemaError("field '" + spec.name + "': " + e.what());
    }
    check_options(spec, type->option_defaults, "type " + spec.type);
    if (type->validate) type->validate(spec);
    if (!spec.active) continue;
    tree.branches[branch].leaves.push_back(fields.size());
    tree.branch_of_leaf.push_back(branch);
    fields.push_back(type->make(spec, parent.child(spec.name)));
  }
}

void add_older_options(std::vector<FieldSpec>& specs) {
  for (auto& spec : specs) {
    if (spec.is_branch()) {
      add_older_options(spec.children);
      continue;
    }
    auto it = all_datatypes().find(spec.type);
    if (it == all_datatypes().end()) continue;  // build_fields names the unknown type
    for (const auto& [key, value] : it->second.options_before_they_existed.items())
      if (!spec.options.contains(key)) spec.options[key] = value;
  }
}
}  // namespace

void add_options_saved_before_they_existed(Schema& saved) { add_older_options(saved.fields); }

std::vector<std::shared_ptr<Field>> build_fields(Schema& schema, SchemaTree* tree_out) {
  schema.validate();
  std::vector<std::shared_ptr<Field>> fields;
  SchemaTree tree;
  BranchNode root;
  root.address = schema.root();
  tree.branches.push_back(root);
  build_level(schema.fields, 0, schema.root(), tree, fields);
  if (tree_out) *tree_out = std::move(tree);
  return fields;
}

}  // namespace j2v
