#pragma once
// A node's place in the schema tree, written as a dotted path ("record.items.price").
// Addresses name encoder buffers, model modules, payload keys and metric names, so the
// structure is spelled once, in the schema.
#include <string>
#include <vector>

namespace j2v {

class Address {
 public:
  Address() = default;
  explicit Address(std::vector<std::string> parts) : parts_(std::move(parts)) {}
  Address(std::string root) : parts_{std::move(root)} {}  // NOLINT: "record" reads naturally
  Address(const char* root) : parts_{root} {}             // NOLINT

  Address child(const std::string& name) const {
    auto parts = parts_;
    parts.push_back(name);
    return Address(std::move(parts));
  }
  const std::vector<std::string>& parts() const { return parts_; }
  const std::string& leaf() const { return parts_.back(); }
  std::string str() const {
    std::string out;
    for (size_t i = 0; i < parts_.size(); ++i) {
      if (i) out += '.';
      out += parts_[i];
    }
    return out;
  }
  bool operator==(const Address& o) const { return parts_ == o.parts_; }
  bool operator<(const Address& o) const { return parts_ < o.parts_; }

 private:
  std::vector<std::string> parts_;
};

}  // namespace j2v
