#include "fields/registry.h"

#include <fmt/format.h>

#include <map>

namespace j2v {

// One line per datatype: each is defined in its own file.
Datatype number_datatype();
Datatype category_datatype();

namespace {
const std::map<std::string, Datatype>& all_datatypes() {
  static const std::map<std::string, Datatype> types = [] {
    std::map<std::string, Datatype> m;
    for (auto make : {number_datatype, category_datatype}) {
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

std::vector<std::shared_ptr<Field>> build_fields(Schema& schema) {
  schema.validate();
  std::vector<std::shared_ptr<Field>> fields;
  for (auto& spec : schema.fields) {
    if (!spec.children.empty() || spec.type == "branch")
      throw SchemaError("field '" + spec.name + "': branches are not supported yet");
    const Datatype* type;
    try {
      type = &find_datatype(spec.type);
    } catch (const SchemaError& e) {
      throw SchemaError("field '" + spec.name + "': " + e.what());
    }
    for (const auto& [key, _] : spec.options.items()) {
      if (!type->option_defaults.contains(key)) {
        std::vector<std::string> allowed = {"type", "query", "target", "embed", "nullable",
                                            "active", "weight", "p_mask", "p_prune"};
        for (const auto& [k, __] : type->option_defaults.items()) allowed.push_back(k);
        throw SchemaError(fmt::format("field '{}': unknown option '{}' for type {} (allowed: {})",
                                      spec.name, key, spec.type, fmt::join(allowed, ", ")));
      }
    }
    for (const auto& [key, def] : type->option_defaults.items())
      if (!spec.options.contains(key)) spec.options[key] = def;
    if (type->validate) type->validate(spec);
    if (!spec.active) continue;
    fields.push_back(type->make(spec, schema.root().child(spec.name)));
  }
  return fields;
}

}  // namespace j2v
