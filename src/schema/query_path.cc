#include "schema/query_path.h"

#include <stdexcept>

namespace j2v {

std::vector<std::string> parse_query_path(const std::string& text) {
  std::vector<std::string> keys;
  std::string current;
  bool in_literal = false;
  bool segment_was_literal = false;
  for (char c : text) {
    if (c == '`') {
      in_literal = !in_literal;
      segment_was_literal = true;
    } else if (c == '.' && !in_literal) {
      if (current.empty() && !segment_was_literal)
        throw std::invalid_argument("query '" + text + "' has an empty segment");
      keys.push_back(current);
      current.clear();
      segment_was_literal = false;
    } else {
      current += c;
    }
  }
  if (in_literal) throw std::invalid_argument("query '" + text + "' has an unclosed backtick");
  if (current.empty() && !segment_was_literal)
    throw std::invalid_argument("query '" + text + "' has an empty segment");
  keys.push_back(current);
  return keys;
}

std::string format_query_path(const std::vector<std::string>& keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i) out += '.';
    if (keys[i].find('.') != std::string::npos || keys[i].find('`') != std::string::npos ||
        keys[i].empty())
      out += '`' + keys[i] + '`';
    else
      out += keys[i];
  }
  return out;
}

}  // namespace j2v
