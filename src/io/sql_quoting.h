#pragma once
// Quoting for SQL text handed to DuckDB: a name as "identifier", a value as 'literal',
// the quote character doubled inside.
#include <string>

namespace j2v::io {

inline std::string quoted_with(const std::string& text, char quote) {
  std::string out(1, quote);
  for (char c : text) {
    if (c == quote) out += quote;
    out += c;
  }
  return out + quote;
}

inline std::string quote_identifier(const std::string& name) { return quoted_with(name, '"'); }
inline std::string quote_string_literal(const std::string& text) { return quoted_with(text, '\''); }

}  // namespace j2v::io
