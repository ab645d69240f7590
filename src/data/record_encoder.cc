#include "data/record_encoder.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "data/data_error.h"

namespace j2v {

namespace od = simdjson::ondemand;

// Query paths as a tree of keys; a node is a field's value (field >= 0), an object to walk
// into, or both when two fields query the same object and a key inside it.
struct RecordEncoder::Trie {
  std::string key;
  int field = -1;
  std::vector<Trie> children;

  Trie* child(std::string_view k) {
    for (auto& c : children)
      if (c.key == k) return &c;
    return nullptr;
  }
};

int resolve_threads(int requested) {
  if (requested > 0) return requested;
  return std::max(1u, std::thread::hardware_concurrency());
}

RecordEncoder::RecordEncoder(std::vector<std::shared_ptr<Field>> fields)
    : fields_(std::move(fields)), trie_(std::make_unique<Trie>()) {
  for (size_t f = 0; f < fields_.size(); ++f) {
    Trie* node = trie_.get();
    for (const auto& key : fields_[f]->spec().query_keys()) {
      Trie* next = node->child(key);
      if (!next) {
        node->children.push_back(Trie{key, -1, {}});
        next = &node->children.back();
      }
      node = next;
    }
    node->field = static_cast<int>(f);
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

// Matches the object's keys against the trie; values whose keys no field asks for are
// skipped without being materialised.
template <typename Trie>
void walk_object(od::object object, const Trie& node, std::vector<Scalar>& scalars) {
  for (auto member : object) {
    std::string_view key = member.unescaped_key();
    const Trie* child = nullptr;
    for (const auto& c : node.children)
      if (c.key == key) {
        child = &c;
        break;
      }
    if (!child) continue;
    od::value value = member.value();
    if (!child->children.empty()) {
      if (value.type() == od::json_type::object) {
        if (child->field >= 0) {
          Scalar s;
          s.kind = Scalar::Kind::kObject;
          scalars[child->field] = s;
        }
        walk_object(value.get_object(), *child, scalars);
      } else if (child->field >= 0) {
        scalars[child->field] = to_scalar(value);
      }
      // A non-object where the path goes deeper: the deeper fields stay missing.
    } else if (child->field >= 0) {
      scalars[child->field] = to_scalar(value);
    }
  }
}

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
                   const Trie& trie, size_t n_fields, FirstError& errors, OnRecord on_record) {
  od::parser parser;
  std::vector<Scalar> scalars(n_fields);
  for (size_t i = begin; i < end; ++i) {
    size_t r = rows ? static_cast<size_t>((*rows)[i]) : i;
    std::fill(scalars.begin(), scalars.end(), Scalar::missing());
    std::string_view text = records.record(r);
    try {
      od::document doc = parser.iterate(simdjson::padded_string_view(text.data(), text.size(), records.capacity(r)));
      od::object object;
      auto error = doc.get_object().get(object);
      if (error) {
        if (error == simdjson::INCORRECT_TYPE)
          errors.offer(i, fmt::format("{}:{}: the record is not a JSON object", records.source(), records.line(r)));
        else
          errors.offer(i, fmt::format("{}:{}: malformed JSON ({})", records.source(), records.line(r),
                                      simdjson::error_message(error)));
        return;
      }
      walk_object(object, trie, scalars);
    } catch (const simdjson::simdjson_error& e) {
      errors.offer(i, fmt::format("{}:{}: malformed JSON ({})", records.source(), records.line(r), e.what()));
      return;
    }
    if (!on_record(i, r, scalars)) return;
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
    parse_records(records, rows, begin, end, *trie_, fields_.size(), errors,
                  [&](size_t i, size_t r, const std::vector<Scalar>& scalars) {
                    for (size_t f = 0; f < fields_.size(); ++f) {
                      try {
                        stats[f]->observe(scalars[f]);
                      } catch (const EncodeError& e) {
                        errors.offer(i, fmt::format("{}:{}: field '{}' {}", records.source(), records.line(r),
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
    table.columns[f].width = fields_[f]->width();
    table.columns[f].resize(n, fields_[f]->uses_values(), fields_[f]->uses_indices());
  }
  table.source_rows.resize(n);
  FirstError errors;
  parallel_ranges(n, resolve_threads(threads), [&](int, size_t begin, size_t end) {
    parse_records(*records, rows, begin, end, *trie_, fields_.size(), errors,
                  [&](size_t i, size_t r, const std::vector<Scalar>& scalars) {
                    table.source_rows[i] = static_cast<int64_t>(r);
                    for (size_t f = 0; f < fields_.size(); ++f) {
                      try {
                        fields_[f]->encode(scalars[f], table.columns[f], i);
                      } catch (const EncodeError& e) {
                        errors.offer(i, fmt::format("{}:{}: field '{}' {}", records->source(), records->line(r),
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
