#pragma once
// Integers read back from documents json2vec wrote itself (checkpoints, saved field and
// callback state). Such a document can still be damaged or hand-edited, and nlohmann's
// get<int64_t>() converts a float such as 1e300 with a cast whose result is undefined. These
// readers take only JSON integers in int64 range and refuse anything else by key, so a bad
// value becomes an error the user sees instead of a wrong count or undefined behaviour.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace j2v {

// object[key] as an integer; `fallback` when the key is absent. Throws std::invalid_argument
// naming the key when the value is not an integer in int64 range.
int64_t read_integer(const nlohmann::json& object, const std::string& key, int64_t fallback);
// object[key] as a list of such integers; empty when the key is absent.
std::vector<int64_t> read_integers(const nlohmann::json& object, const std::string& key);
// A value that is itself expected to be an integer; `what` names it in the error.
int64_t as_integer(const nlohmann::json& value, const std::string& what);

}  // namespace j2v
