#include "data/record_encoder.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "base/errors.h"
#include "base/available_cores.h"
#include "schema/schema.h"

namespace j2v {

namespace od = simdjson::ondemand;

// Query paths as a tree of keys. A node is a field's value (field >= 0), an object to walk
// into, or both when two fields query the same object and a key inside it; a branch node
// (branch >= 0) is an array whose elements are objects matched against its children.
struct RecordEncoder::Trie {
  struct Node {
    std::string key;
    int field = -1;
    int branch = -1;
    std::vector<int> children;
  };
  std::vector<Node> nodes;
  std::vector<int64_t> cell_offset;    // field -> first of its cells in a record's scratch
  int64_t cells = 0;                   // cells per record, all fields and slots
  std::vector<int64_t> length_offset;  // branch -> first of its per-parent-slot lengths
  int64_t lengths = 0;

  int child(int node, std::string_view key) const {
    for (int c : nodes[node].children)
      if (nodes[c].key == key) return c;
    return -1;
  }
  int add_path(int from, const std::vector<std::string>& keys, const std::string& what) {
    int node = from;
    for (const auto& key : keys) {
      if (nodes[node].branch >= 0 && node != from)
        throw SchemaError(what + " queries into the list of another branch; declare it inside that branch");
      int next = child(node, key);
      if (next < 0) {
        next = static_cast<int>(nodes.size());
        nodes.push_back(Node{key, -1, -1, {}});
        nodes[node].children.push_back(next);
      }
      node = next;
    }
    if (nodes[node].branch >= 0)
      throw SchemaError(what + " queries the same key as a branch");
    return node;
  }
};

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return available_cores();
}

RecordEncoder::RecordEncoder(std::vector<std::shared_ptr<Field>> fields, SchemaTree tree)
    : fields_(std::move(fields)), tree_(std::move(tree)), trie_(std::make_unique<Trie>()) {
  if (tree_.branches.empty()) {  // a flat schema: every field sits in the root
    tree_.branches.push_back(BranchNode{});
    tree_.branch_of_leaf.assign(fields_.size(), 0);
    for (size_t f = 0; f < fields_.size(); ++f) tree_.branches[0].leaves.push_back(f);
  }
  Trie& t = *trie_;
  t.nodes.push_back(Trie::Node{});
  std::vector<int> element_root(tree_.branches.size(), 0);
  t.length_offset.assign(tree_.branches.size(), 0);
  for (size_t b = 1; b < tree_.branches.size(); ++b) {
    const auto& branch = tree_.branches[b];
    int node = t.add_path(element_root[branch.parent], branch.query, "branch '" + branch.address.str() + "'");
    if (t.nodes[node].field >= 0 || !t.nodes[node].children.empty())
      throw SchemaError("branch '" + branch.address.str() + "' queries the same key as another node");
    t.nodes[node].branch = static_cast<int>(b);
    element_root[b] = node;
    t.length_offset[b] = t.lengths;
    t.lengths += branch.parent_slots;
  }
  for (size_t f = 0; f < fields_.size(); ++f) {
    int b = tree_.branch_of_leaf[f];
    int node = t.add_path(element_root[b], fields_[f]->spec().query_keys(), "field '" + fields_[f]->address().str() + "'");
    if (t.nodes[node].field >= 0)
      throw SchemaError("fields '" + fields_[t.nodes[node].field]->address().str() + "' and '" +
                        fields_[f]->address().str() + "' query the same value");
    t.nodes[node].field = static_cast<int>(f);
    t.cell_offset.push_back(t.cells);
    t.cells += tree_.branches[b].slots;
  }
}

RecordEncoder::~RecordEncoder() = default;

namespace {

Scalar to_scalar(od::value value) {
  switch (value.type()) {
    case od::json_type::null:
      return Scalar::null();
    case od::json_type::boolean:
      return Scalar::of_bool(value.get_bool());
    case od::json_type::number: {
      std::string_view token = value.raw_json_token();
      return Scalar::of(value.get_double(), token);
    }
    case od::json_type::string:
      return Scalar::of(std::string_view(value.get_string()));
    case od::json_type::object: {
      Scalar s;
      s.kind = Scalar::Kind::kObject;
      return s;
    }
    case od::json_type::array: {
      Scalar s;
      s.kind = Scalar::Kind::kArray;
      return s;
    }
  }
  return Scalar::missing();
}

// A structural problem of the record (a list where the schema wants one, a list too long);
// its message names the branch.
class ShapeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One record's values, per field and slot, and its lists' lengths, per branch and parent slot.
struct RecordScratch {
  std::vector<Scalar> scalars;
  std::vector<int32_t> lengths;
  std::vector<uint8_t> present;  // per branch slot: inside its list (not padding)
  // The elements of every array a field's value is, one after another; reused per record.
  std::vector<Scalar> elements;
  std::vector<std::pair<int64_t, uint32_t>> arrays;  // (cell in scalars, first element)

  void clear() {
    std::fill(scalars.begin(), scalars.end(), Scalar::missing());
    std::fill(lengths.begin(), lengths.end(), 0);
    elements.clear();
    arrays.clear();
  }
  // The element pool may have moved while it grew: point the arrays at it once it is final.
  void resolve_arrays() {
    for (const auto& [cell, first] : arrays) scalars[cell].elements = elements.data() + first;
  }
};

template <typename Trie>
struct Walker {
  const Trie& trie;
  const SchemaTree& tree;
  RecordScratch& scratch;

  // Matches the object's keys against the trie; values whose keys no field asks for are
  // skipped without being materialised.
  void walk_object(od::object object, int node, int64_t slot) {
    for (auto member : object) {
      std::string_view key = member.unescaped_key();
      int c = trie.child(node, key);
      if (c < 0) continue;
      const auto& child = trie.nodes[c];
      od::value value = member.value();
      if (child.branch >= 0) {
        walk_list(value, c, slot);
      } else if (!child.children.empty()) {
        if (value.type() == od::json_type::object) {
          if (child.field >= 0) {
            Scalar s;
            s.kind = Scalar::Kind::kObject;
            put(child.field, slot, s);
          }
          walk_object(value.get_object(), c, slot);
        } else if (child.field >= 0) {
          put_value(child.field, slot, value);
        }
        // A non-object where the path goes deeper: the deeper fields stay missing.
      } else if (child.field >= 0) {
        put_value(child.field, slot, value);
      }
    }
  }

  void put(int field, int64_t slot, const Scalar& s) { scratch.scalars[trie.cell_offset[field] + slot] = s; }

  // A field's value; an array's elements go to the record's element pool (sets, vectors).
  void put_value(int field, int64_t slot, od::value value) {
    if (value.type() != od::json_type::array) {
      put(field, slot, to_scalar(value));
      return;
    }
    Scalar s;
    s.kind = Scalar::Kind::kArray;
    auto first = static_cast<uint32_t>(scratch.elements.size());
    for (auto element : value.get_array()) scratch.elements.push_back(to_scalar(element.value()));
    s.size = static_cast<uint32_t>(scratch.elements.size() - first);
    int64_t cell = trie.cell_offset[field] + slot;
    scratch.scalars[cell] = s;
    scratch.arrays.emplace_back(cell, first);
  }

  // The elements of a branch's list fill its slots under parent slot `slot`; a missing or
  // null list has no elements (every slot padded).
  void walk_list(od::value value, int node, int64_t slot) {
    int b = trie.nodes[node].branch;
    const BranchNode& branch = tree.branches[b];
    od::json_type type = value.type();
    if (type == od::json_type::null) return;
    // A lone object where a list is declared is a list of one (a record with one line item
    // is often written without the list).
    if (type == od::json_type::object) {
      walk_object(value.get_object(), node, slot * branch.length);
      scratch.lengths[trie.length_offset[b] + slot] = 1;
      return;
    }
    if (type != od::json_type::array)
      throw ShapeError(fmt::format("branch '{}' expects a list of objects, got {}", branch.address.str(),
                                   to_scalar(value).kind_name()));
    od::array array = value.get_array();
    int64_t skip = 0;
    if (branch.overflow != Overflow::kHead) {
      int64_t count = static_cast<int64_t>(array.count_elements());
      if (count > branch.length) {
        if (branch.overflow == Overflow::kError)
          throw ShapeError(fmt::format("branch '{}' has {} items, more than its length {} (overflow: error; "
                                       "overflow: head or tail keeps the first or the last {})",
                                       branch.address.str(), count, branch.length, branch.length));
        skip = count - branch.length;
      }
    }
    int64_t index = 0, used = 0;
    for (auto element : array) {
      if (index++ < skip) continue;
      if (used >= branch.length) break;  // overflow: head
      od::value item = element.value();
      od::json_type item_type = item.type();
      if (item_type == od::json_type::object) {
        walk_object(item.get_object(), node, slot * branch.length + used);
      } else if (item_type != od::json_type::null) {  // a null item is a slot whose fields are all null
        throw ShapeError(fmt::format("branch '{}': item {} is {}, expected an object", branch.address.str(), index,
                                     to_scalar(item).kind_name()));
      }
      ++used;
    }
    scratch.lengths[trie.length_offset[b] + slot] = static_cast<int32_t>(used);
  }

  // Marks the slots inside their lists, branch by branch from the root down.
  void mark_present(const std::vector<int64_t>& present_offset) {
    scratch.present[0] = 1;
    for (size_t b = 1; b < tree.branches.size(); ++b) {
      const auto& branch = tree.branches[b];
      const uint8_t* parent = scratch.present.data() + present_offset[branch.parent];
      const int32_t* lengths = scratch.lengths.data() + trie.length_offset[b];
      uint8_t* mine = scratch.present.data() + present_offset[b];
      for (int64_t p = 0; p < branch.parent_slots; ++p)
        for (int64_t j = 0; j < branch.length; ++j) mine[p * branch.length + j] = parent[p] && j < lengths[p];
    }
  }
};

// Runs fn(thread_index, begin, end) over [0, n) split into contiguous ranges.
template <typename Fn>
void parallel_ranges(size_t n, int threads, Fn fn) {
  threads = std::max(1, std::min<int>(threads, static_cast<int>((n + 1023) / 1024)));
  if (threads <= 1) {
    fn(0, size_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  size_t chunk = (n + threads - 1) / threads;
  for (int t = 0; t < threads; ++t) {
    size_t begin = std::min(n, t * chunk), end = std::min(n, begin + chunk);
    pool.emplace_back(fn, t, begin, end);
  }
  for (auto& th : pool) th.join();
}

// The first error by record order, whichever thread found it.
class FirstError {
 public:
  void offer(size_t row, std::string message) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!has_ || row < row_) {
      has_ = true;
      row_ = row;
      message_ = std::move(message);
    }
  }
  void raise_if_any() const {
    if (has_) throw DataError(message_);
  }

 private:
  std::mutex mutex_;
  bool has_ = false;
  size_t row_ = 0;
  std::string message_;
};

template <typename Trie, typename OnRecord>
void parse_records(const RecordBuffer& records, const std::vector<int64_t>* rows, size_t begin, size_t end,
                   const Trie& trie, const SchemaTree& tree, FirstError& errors, OnRecord on_record) {
  od::parser parser;
  RecordScratch scratch;
  scratch.scalars.resize(static_cast<size_t>(trie.cells));
  scratch.lengths.resize(static_cast<size_t>(trie.lengths));
  std::vector<int64_t> present_offset;
  int64_t present_cells = 0;
  for (const auto& b : tree.branches) {
    present_offset.push_back(present_cells);
    present_cells += b.slots;
  }
  scratch.present.resize(static_cast<size_t>(present_cells));
  Walker<Trie> walker{trie, tree, scratch};
  for (size_t i = begin; i < end; ++i) {
    size_t r = rows ? static_cast<size_t>((*rows)[i]) : i;
    scratch.clear();
    std::string_view text = records.record(r);
    try {
      od::document doc = parser.iterate(simdjson::padded_string_view(text.data(), text.size(), records.capacity(r)));
      od::object object;
      auto error = doc.get_object().get(object);
      if (error) {
        if (error == simdjson::INCORRECT_TYPE)
          errors.offer(i, fmt::format("{}: the record is not a JSON object", records.where(r)));
        else
          errors.offer(i, fmt::format("{}: malformed JSON ({})", records.where(r),
                                      simdjson::error_message(error)));
        return;
      }
      walker.walk_object(object, 0, 0);
      // `{"a":1} {"a":2}` or `{"a":1}}`: one record per line; taking the first object would
      // drop the rest silently.
      if (!doc.current_location().error()) {  // a token left: OUT_OF_BOUNDS means the line ended
        errors.offer(i, fmt::format("{}: content after the JSON object (one record per line)", records.where(r)));
        return;
      }
    } catch (const simdjson::simdjson_error& e) {
      errors.offer(i, fmt::format("{}: malformed JSON ({})", records.where(r), e.what()));
      return;
    } catch (const ShapeError& e) {
      errors.offer(i, fmt::format("{}: {}", records.where(r), e.what()));
      return;
    }
    scratch.resolve_arrays();
    walker.mark_present(present_offset);
    if (!on_record(i, r, scratch, present_offset)) return;
  }
}

}  // namespace

std::vector<std::unique_ptr<FieldStats>> RecordEncoder::collect_stats(const RecordBuffer& records,
                                                                      const std::vector<int64_t>* rows,
                                                                      int threads) const {
  size_t n = rows ? rows->size() : records.size();
  int t = resolve_threads(threads);
  std::vector<std::vector<std::unique_ptr<FieldStats>>> per_thread(t);
  FirstError errors;
  parallel_ranges(n, t, [&](int thread, size_t begin, size_t end) {
    auto& stats = per_thread[thread];
    for (auto& f : fields_) stats.push_back(f->new_stats());
    parse_records(records, rows, begin, end, *trie_, tree_, errors,
                  [&](size_t i, size_t r, const RecordScratch& scratch, const std::vector<int64_t>& present_offset) {
                    for (size_t f = 0; f < fields_.size(); ++f) {
                      int b = tree_.branch_of_leaf[f];
                      const Scalar* cells = scratch.scalars.data() + trie_->cell_offset[f];
                      const uint8_t* present = scratch.present.data() + present_offset[b];
                      try {
                        for (int64_t s = 0; s < tree_.branches[b].slots; ++s)
                          if (present[s]) stats[f]->observe(cells[s]);
                      } catch (const EncodeError& e) {
                        errors.offer(i, fmt::format("{}: field '{}' {}", records.where(r),
                                                    fields_[f]->address().str(), e.what()));
                        return false;
                      }
                    }
                    return true;
                  });
  });
  errors.raise_if_any();
  std::vector<std::unique_ptr<FieldStats>> merged;
  for (auto& f : fields_) merged.push_back(f->new_stats());
  for (auto& stats : per_thread)
    for (size_t f = 0; f < stats.size(); ++f) merged[f]->merge(*stats[f]);
  return merged;
}

EncodedTable RecordEncoder::encode(std::shared_ptr<const RecordBuffer> records, const std::vector<int64_t>* rows,
                                   int threads) const {
  for (const auto& f : fields_)
    if (!f->fitted())
      throw std::logic_error("field '" + f->address().str() + "' is encoded before its state was fitted");
  size_t n = rows ? rows->size() : records->size();
  EncodedTable table;
  table.rows = static_cast<int64_t>(n);
  table.source = records;
  table.columns.resize(fields_.size());
  for (size_t f = 0; f < fields_.size(); ++f) {
    auto& column = table.columns[f];
    column.width = fields_[f]->width();
    column.slots = tree_.leaf_slots(f);
    column.resize(n * static_cast<size_t>(column.slots), fields_[f]->uses_values(), fields_[f]->uses_indices());
  }
  table.lengths.resize(tree_.branches.size());
  table.present.resize(tree_.branches.size());
  for (size_t b = 0; b < tree_.branches.size(); ++b) {
    if (b > 0) table.lengths[b].assign(n * static_cast<size_t>(tree_.branches[b].parent_slots), 0);
    table.present[b].assign(n * static_cast<size_t>(tree_.branches[b].slots), 0);
  }
  table.source_rows.resize(n);
  FirstError errors;
  parallel_ranges(n, resolve_threads(threads), [&](int, size_t begin, size_t end) {
    parse_records(*records, rows, begin, end, *trie_, tree_, errors,
                  [&](size_t i, size_t r, const RecordScratch& scratch, const std::vector<int64_t>& present_offset) {
                    table.source_rows[i] = static_cast<int64_t>(r);
                    for (size_t b = 0; b < tree_.branches.size(); ++b) {
                      int64_t ps = tree_.branches[b].parent_slots, slots = tree_.branches[b].slots;
                      if (b > 0)
                        std::copy_n(scratch.lengths.data() + trie_->length_offset[b], ps,
                                    table.lengths[b].data() + i * static_cast<size_t>(ps));
                      std::copy_n(scratch.present.data() + present_offset[b], slots,
                                  table.present[b].data() + i * static_cast<size_t>(slots));
                    }
                    for (size_t f = 0; f < fields_.size(); ++f) {
                      int b = tree_.branch_of_leaf[f];
                      int64_t slots = tree_.branches[b].slots;
                      const Scalar* cells = scratch.scalars.data() + trie_->cell_offset[f];
                      const uint8_t* present = scratch.present.data() + present_offset[b];
                      auto& column = table.columns[f];
                      try {
                        fields_[f]->encode_record(cells, present, slots, column, i * static_cast<size_t>(slots));
                      } catch (const EncodeError& e) {
                        errors.offer(i, fmt::format("{}: field '{}' {}", records->where(r),
                                                    fields_[f]->address().str(), e.what()));
                        return false;
                      }
                    }
                    return true;
                  });
  });
  errors.raise_if_any();
  return table;
}

}  // namespace j2v
