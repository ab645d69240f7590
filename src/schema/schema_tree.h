#pragma once
// The schema's branches as the encoder and the model walk them. The root is branch 0 with
// one slot; a branch with `length` L under a parent with S slots per record has S x L
// slots per record, and every leaf under it has one cell per slot. Slot s of a branch is
// element s % L of the array found in the parent's slot s / L.
#include <cstdint>
#include <string>
#include <vector>

#include "schema/address.h"
#include "schema/field_spec.h"

namespace j2v {

enum class Overflow { kHead, kTail, kError };
const char* overflow_name(Overflow o);

// Training-time hiding of whole items of a branch (and everything under them), to be
// reconstructed: a `rate` of each list's items or a `count` of them, chosen at random or
// as a window at the list's start or end (the last k events of a history), in a share
// `p` of the lists.
struct BranchMask {
  enum class Window { kRandom, kStart, kEnd };
  bool enabled = false;
  double rate = 0.0;   // used when count == 0
  int64_t count = 0;
  Window window = Window::kRandom;
  double p = 1.0;
  static BranchMask from_json(const nlohmann::json& value);  // null: disabled
};

struct BranchNode {
  Address address;
  int parent = -1;                  // branch index; -1 for the root
  int depth = 0;                    // 0 for the root
  std::vector<std::string> query;   // keys from the parent's element to the array
  int64_t length = 1;               // slots per parent slot
  int64_t slots = 1;                // slots per record
  int64_t parent_slots = 1;         // the parent's slots per record (1 for the root)
  Overflow overflow = Overflow::kHead;
  int64_t n_layers = 0;             // 0: the model's n_layers (root)
  std::string attention = "mha";    // mha | gqa | mqa | none; the root is mha, a branch gqa unless set
  int64_t n_kv_heads = 0;           // key/value heads (gqa); 0 = as attention implies
  bool embed = false;
  BranchMask mask;
  std::vector<size_t> leaves;       // leaf (field) indices directly under this branch
  std::vector<size_t> children;     // branch indices directly under this branch
};

struct SchemaTree {
  std::vector<BranchNode> branches;    // pre-order: a parent comes before its children
  std::vector<int> branch_of_leaf;     // leaf index -> the branch that holds it

  bool nested() const { return branches.size() > 1; }
  int64_t leaf_slots(size_t leaf) const { return branches[branch_of_leaf[leaf]].slots; }
  // Root first, then each branch down to `branch`.
  std::vector<int> lineage(int branch) const;
};

// Allowed options of a branch node, with defaults; checked and filled by build_fields.
const nlohmann::json& branch_option_defaults();
// Throws SchemaError naming the branch and the option.
void validate_branch_options(const FieldSpec& spec);

}  // namespace j2v
