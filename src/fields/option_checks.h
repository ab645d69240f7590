#pragma once
// Checks of a datatype's options that name the field, the option, the allowed values and
// what was given, so a bad schema says how to fix it.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <initializer_list>
#include <string>

#include "schema/field_spec.h"
#include "schema/schema.h"

namespace j2v::options {

inline void fail(const FieldSpec& spec, const std::string& key, const std::string& rule) {
  throw SchemaError(fmt::format("field '{}': option '{}' {}, got {}", spec.name, key, rule, spec.options.at(key).dump()));
}

inline int64_t integer_in(const FieldSpec& spec, const std::string& key, int64_t lo, int64_t hi) {
  const auto& v = spec.options.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    fail(spec, key, fmt::format("must be an integer in [{}, {}]", lo, hi));
  return v.get<int64_t>();
}

inline double number_in(const FieldSpec& spec, const std::string& key, double lo, double hi) {
  const auto& v = spec.options.at(key);
  if (!v.is_number() || v.get<double>() < lo || v.get<double>() > hi)
    fail(spec, key, fmt::format("must be a number in [{}, {}]", lo, hi));
  return v.get<double>();
}

inline bool boolean(const FieldSpec& spec, const std::string& key) {
  const auto& v = spec.options.at(key);
  if (!v.is_boolean()) fail(spec, key, "must be true or false");
  return v.get<bool>();
}

inline std::string one_of(const FieldSpec& spec, const std::string& key, std::initializer_list<const char*> allowed) {
  const auto& v = spec.options.at(key);
  if (v.is_string())
    for (const char* a : allowed)
      if (v.get<std::string>() == a) return a;
  fail(spec, key, fmt::format("must be one of {}", fmt::join(allowed, ", ")));
  return {};
}

}  // namespace j2v::options
