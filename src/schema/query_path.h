#pragma once
// Where a field's value lives inside a record. "a.b.c" walks nested objects; a segment in
// backticks is one literal key, so names that contain dots stay reachable: "meta.`user.id`".
#include <string>
#include <vector>

namespace j2v {

std::vector<std::string> parse_query_path(const std::string& text);
std::string format_query_path(const std::vector<std::string>& keys);

}  // namespace j2v
