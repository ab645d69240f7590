#pragma once
// Changes to a schema as values: each returns the changed copy and leaves its input as it
// was, so a change that fails (a selector matching nothing, a key a node cannot take) changes
// nothing. Datatype options are checked when the result is built into fields (the datatype
// knows its options); the structural and common-key checks are done here. The model applies
// these and keeps what still fits (model/model.h).
#include <string>
#include <vector>

#include "schema/schema.h"
#include "schema/selector.h"

namespace j2v {

// Sets `changes` (common keys such as active, target, p_mask, or datatype options) on every
// selected node. `type`, `name`, `query` and `fields` are refused: they make another node,
// so remove it and extend with the new one.
Schema update_schema(const Schema& schema, const Selector& selector, const nlohmann::json& changes);
// Adds `fields` under every selected branch (or at the top level, when the selector selects
// the root: where("address") == "record"). A name already used there is refused.
Schema extend_schema(const Schema& schema, const Selector& selector, const std::vector<FieldSpec>& fields);
// Deletes the selected nodes (a branch with everything under it).
Schema remove_from_schema(const Schema& schema, const Selector& selector);
// The addresses the selector picks; throws SchemaError naming the selector when none.
std::vector<std::string> selected_addresses(const Schema& schema, const Selector& selector, const std::string& action);

}  // namespace j2v
