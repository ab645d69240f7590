#pragma once
// A JSON value carried as the text it was read from inside an nlohmann::json tree, so a
// prediction row can hold its input record verbatim (key order and number spelling kept)
// without parsing the record into a tree and printing it again. Stored as an nlohmann binary
// value with a subtype of its own; the row writers recognise it as a column's value and
// write the text itself. Code that wants the tree calls materialize_raw_json() first.
// The text must be one valid JSON value: only wrap text that a JSON parser accepted.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace j2v {

nlohmann::json raw_json(std::string_view text);
bool is_raw_json(const nlohmann::json& value);
// The text of a raw value (is_raw_json(value) must hold).
std::string_view raw_json_text(const nlohmann::json& value);
// Replaces every raw value inside `value` (at any depth) by its parsed tree.
void materialize_raw_json(nlohmann::json& value);
// `value` printed compactly, as dump() would print it once materialized, with each raw value's
// text copied as it is: for callers that only print.
std::string dump_with_raw_json(const nlohmann::json& value);

}  // namespace j2v
