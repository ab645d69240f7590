#include "base/value_type.h"

#include <stdexcept>

namespace j2v {

ValueType ValueType::list(ValueType element) {
  ValueType type(Kind::kList);
  type.element_.push_back(std::move(element));
  return type;
}

ValueType ValueType::structure(std::vector<std::pair<std::string, ValueType>> members) {
  ValueType type(Kind::kStruct);
  type.members_ = std::move(members);
  return type;
}

const ValueType& ValueType::element() const {
  if (kind_ != Kind::kList) throw std::logic_error("ValueType::element() of a " + str() + ", which is not a list");
  return element_.front();
}

std::string ValueType::str() const {
  switch (kind_) {
    case Kind::kBoolean: return "BOOLEAN";
    case Kind::kInt32: return "INTEGER";
    case Kind::kInt64: return "BIGINT";
    case Kind::kFloat32: return "FLOAT";
    case Kind::kFloat64: return "DOUBLE";
    case Kind::kString: return "VARCHAR";
    case Kind::kJson: return "JSON";
    case Kind::kList: return element_.front().str() + "[]";
    case Kind::kStruct: {
      std::string out = "STRUCT(";
      for (size_t i = 0; i < members_.size(); ++i) {
        out += i ? ", \"" : "\"";
        for (char c : members_[i].first) out += c == '"' ? std::string("\"\"") : std::string(1, c);
        out += "\" " + members_[i].second.str();
      }
      return out + ")";
    }
  }
  return "JSON";
}

bool ValueType::operator==(const ValueType& other) const {
  return kind_ == other.kind_ && element_ == other.element_ && members_ == other.members_;
}

}  // namespace j2v
