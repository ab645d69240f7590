#include "data/schema_inference.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include "base/errors.h"
#include "data/readers/record_reader.h"

namespace j2v {
namespace {

constexpr size_t kDistinctCap = 4096;     // distinct values remembered per field
constexpr int64_t kHashAbove = 1000;      // more distinct values than this (and repeating): hash
constexpr int64_t kIdentifierMin = 20;    // a value per record in at least this many records: an id
constexpr int64_t kMaxBranchLength = 256;

struct Profile {
  int64_t present = 0, nulls = 0, bools = 0, numbers = 0, integers = 0, strings = 0, objects = 0, arrays = 0;
  std::unordered_map<std::string, int64_t> distinct;
  bool distinct_overflow = false;
  int64_t iso = 0, spaced = 0, unix_s = 0, unix_ms = 0;
  double text_length = 0;
  std::vector<int64_t> lengths;
  int64_t element_objects = 0, element_strings = 0, element_numbers = 0, element_other = 0;
  std::vector<int64_t> number_list_lengths;
  std::vector<std::string> order;
  std::map<std::string, std::unique_ptr<Profile>> children;

  Profile& child(const std::string& key) {
    auto& slot = children[key];
    if (!slot) {
      slot = std::make_unique<Profile>();
      order.push_back(key);
    }
    return *slot;
  }
  void count_distinct(const std::string& text) {
    auto it = distinct.find(text);
    if (it != distinct.end()) ++it->second;
    else if (distinct.size() < kDistinctCap) distinct.emplace(text, 1);
    else distinct_overflow = true;
  }
};

bool looks_iso_date(const std::string& s) {
  if (s.size() < 10) return false;
  for (size_t i = 0; i < 10; ++i) {
    bool dash = i == 4 || i == 7;
    if (dash ? s[i] != '-' : !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return s.size() == 10 || s[10] == 'T' || s[10] == ' ';
}

void observe(Profile& p, const nlohmann::json& v);

void observe_object(Profile& p, const nlohmann::json& object) {
  for (const auto& [key, value] : object.items()) observe(p.child(key), value);
}

void observe(Profile& p, const nlohmann::json& v) {
  ++p.present;
  switch (v.type()) {
    case nlohmann::json::value_t::null: ++p.nulls; break;
    case nlohmann::json::value_t::boolean: ++p.bools; p.count_distinct(v.dump()); break;
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float: {
      ++p.numbers;
      double x = v.get<double>();
      if (v.is_number_integer() || x == std::floor(x)) ++p.integers;
      if (x >= 1e9 && x < 4.2e9) ++p.unix_s;
      if (x >= 1e12 && x < 4.2e12) ++p.unix_ms;
      p.count_distinct(v.dump());
      break;
    }
    case nlohmann::json::value_t::string: {
      ++p.strings;
      const auto& s = v.get_ref<const std::string&>();
      p.text_length += static_cast<double>(s.size());
      if (s.find(' ') != std::string::npos) ++p.spaced;
      if (looks_iso_date(s)) ++p.iso;
      p.count_distinct(s);
      break;
    }
    case nlohmann::json::value_t::object: ++p.objects; observe_object(p, v); break;
    case nlohmann::json::value_t::array: {
      ++p.arrays;
      p.lengths.push_back(static_cast<int64_t>(v.size()));
      bool all_numbers = !v.empty();
      for (const auto& e : v) {
        if (e.is_object()) ++p.element_objects, observe_object(p, e);
        else if (e.is_string()) ++p.element_strings;
        else if (e.is_number()) ++p.element_numbers;
        else if (!e.is_null()) ++p.element_other;
        all_numbers = all_numbers && e.is_number();
      }
      if (all_numbers) p.number_list_lengths.push_back(static_cast<int64_t>(v.size()));
      break;
    }
    default: break;
  }
}

bool time_like(const std::string& name) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
  return ends("time") || ends("date") || ends("_at") || ends("timestamp") || ends("_ts") ||
         n.find("epoch") != std::string::npos;
}

// order_id, customerId, uuid, key: names under which unique numbers are labels, not quantities.
bool id_like(const std::string& name) {
  std::string n;
  for (char c : name) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
  return n == "id" || ends("_id") || ends("uuid") || n == "key" || ends("_key") ||
         (name.size() > 2 && name.compare(name.size() - 2, 2, "Id") == 0);
}

std::string share(int64_t part, int64_t whole) {
  return whole == 0 ? "0" : fmt::format("{:.0f}%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
}

struct Inferrer {
  InferredSchema& out;
  int64_t records;

  // Fields of one level: an object's keys, flattened through nested objects.
  // `whole`: how many objects of this level were seen (records at the top, items in a branch).
  void fields_of(const Profile& level, const std::string& address, const std::vector<std::string>& prefix,
                 std::vector<FieldSpec>& fields, int64_t whole) {
    for (const auto& key : level.order) {
      const Profile& p = *level.children.at(key);
      std::vector<std::string> query = prefix;
      query.push_back(key);
      std::string name;
      for (size_t i = 0; i < query.size(); ++i) name += (i ? "_" : "") + query[i];
      std::string here = address + "." + name;
      int64_t valued = p.present - p.nulls;
      if (valued == 0) {
        out.left_out.push_back({here, p.present == 0 ? "never present" : "always null"});
        continue;
      }
      // Objects without any list: their keys, through query paths.
      if (p.objects > 0 && p.arrays == 0 && p.objects == valued) {
        fields_of(p, address, query, fields, whole);
        continue;
      }
      FieldSpec spec;
      spec.name = name;
      if (query.size() > 1) spec.query = query;
      std::string reason;
      if (!decide(p, name, here, spec, reason, whole)) continue;
      out.reasons.push_back({here, reason});
      fields.push_back(std::move(spec));
    }
  }

  // false: left out (recorded).
  bool decide(const Profile& p, const std::string& name, const std::string& here, FieldSpec& spec, std::string& reason,
              int64_t whole) {
    int64_t valued = p.present - p.nulls;
    std::string seen = fmt::format("in {} of {} {}", share(p.present, whole), whole, whole == records ? "records" : "items");
    if (p.arrays > 0 || (p.objects > 0 && p.element_objects > 0)) {
      if (p.element_objects > 0 && p.element_strings + p.element_numbers + p.element_other == 0) {
        std::vector<int64_t> lengths = p.lengths;
        for (int64_t i = 0; i < p.objects; ++i) lengths.push_back(1);
        std::sort(lengths.begin(), lengths.end());
        int64_t q95 = lengths[std::min(lengths.size() - 1, static_cast<size_t>(0.95 * static_cast<double>(lengths.size())))];
        int64_t length = std::clamp<int64_t>(q95, 1, kMaxBranchLength);
        spec.type = "branch";
        spec.options["length"] = length;
        fields_of(p, here, {}, spec.children, p.element_objects + p.objects);
        if (spec.children.empty()) {
          out.left_out.push_back({here, "lists of objects with no usable field"});
          return false;
        }
        reason = fmt::format("lists of objects {}; length {} is the 95th percentile of the lengths (longest {}){}", seen,
                             length, lengths.back(), p.objects ? "; a lone object counts as a list of one" : "");
        return true;
      }
      if (p.objects > 0 || p.element_other > 0) {
        out.left_out.push_back({here, "lists of lists or of mixed items, which no datatype reads"});
        return false;
      }
      if (p.element_numbers > 0 && p.element_strings == 0 && !p.number_list_lengths.empty() &&
          static_cast<int64_t>(p.number_list_lengths.size()) == p.arrays &&
          std::all_of(p.number_list_lengths.begin(), p.number_list_lengths.end(),
                      [&](int64_t n) { return n == p.number_list_lengths.front(); }) &&
          p.number_list_lengths.front() >= 2) {
        spec.type = "vector";
        spec.options["n_dim"] = p.number_list_lengths.front();
        reason = fmt::format("lists of {} numbers, always that many, {}", p.number_list_lengths.front(), seen);
        return true;
      }
      spec.type = "set";
      reason = fmt::format("lists of labels {} (a set: which labels, not their order)", seen);
      return true;
    }
    if (p.bools == valued) {
      spec.type = "boolean";
      reason = fmt::format("true/false {}", seen);
      return true;
    }
    int64_t distinct = static_cast<int64_t>(p.distinct.size());
    std::string distinct_text = p.distinct_overflow ? fmt::format("over {}", kDistinctCap) : std::to_string(distinct);
    if (p.numbers == valued && p.integers == valued && !p.distinct_overflow && distinct == valued &&
        valued >= kIdentifierMin && id_like(name)) {
      out.left_out.push_back({here, fmt::format("whole numbers, a different one in every one of {} values, under an "
                                                "identifier's name: predicts nothing", valued)});
      return false;
    }
    if (p.numbers == valued && p.integers == valued && p.distinct_overflow && id_like(name)) {
      out.left_out.push_back({here, "whole numbers, over " + std::to_string(kDistinctCap) +
                                        " distinct, under an identifier's name: predicts nothing (declare it `hash` "
                                        "if records share values)"});
      return false;
    }
    if (p.numbers == valued) {
      if (time_like(name) && p.integers == valued && (p.unix_s == valued || p.unix_ms == valued)) {
        spec.type = "dateparts";
        spec.options["unit"] = p.unix_s == valued ? "s" : "ms";
        reason = fmt::format("whole numbers in the Unix-time range ({}) under a time-like name {}",
                             p.unix_s == valued ? "seconds" : "milliseconds", seen);
        return true;
      }
      spec.type = "number";
      reason = fmt::format("numbers {}, {} distinct", seen, distinct_text);
      return true;
    }
    if (p.strings == valued && p.iso * 10 >= valued * 9) {
      spec.type = "dateparts";
      reason = fmt::format("ISO-8601 dates and times ({} of the values) {}", share(p.iso, valued), seen);
      return true;
    }
    bool mixed = p.strings != valued;
    if (!mixed && !p.distinct_overflow && distinct == valued && valued >= kIdentifierMin) {
      out.left_out.push_back({here, fmt::format("a different value in every one of {} records: an identifier, which "
                                                "predicts nothing (declare it `hash` if records share values)",
                                                valued)});
      return false;
    }
    if (!mixed && p.text_length / static_cast<double>(valued) > 30 && p.spaced * 2 > valued) {
      spec.type = "text";
      reason = fmt::format("free text (mean length {:.0f}, words) {}", p.text_length / static_cast<double>(valued), seen);
      return true;
    }
    if (p.distinct_overflow || distinct > kHashAbove) {
      spec.type = "hash";
      reason = fmt::format("{} distinct values that repeat, {}: hashed, no vocabulary", distinct_text, seen);
      return true;
    }
    spec.type = "category";
    reason = mixed ? fmt::format("mixed numbers, strings or booleans {}: a category over their text, {} distinct "
                                 "(a number column with a few words in it: clean it and declare number)",
                                 seen, distinct_text)
                   : fmt::format("labels {}, {} distinct", seen, distinct_text);
    return true;
  }
};

FieldSpec* find_field(std::vector<FieldSpec>& fields, const std::string& parent, const std::string& wanted) {
  for (auto& f : fields) {
    std::string address = parent + "." + f.name;
    if (f.name == wanted || address == wanted) return &f;
    if (f.is_branch())
      if (auto* inner = find_field(f.children, address, wanted)) return inner;
  }
  return nullptr;
}

void emit_fields(YAML::Emitter& y, const std::vector<FieldSpec>& fields, const std::string& parent,
                 const std::map<std::string, std::string>& reasons) {
  y << YAML::BeginMap;
  for (const auto& f : fields) {
    std::string address = parent + "." + f.name;
    auto reason = reasons.count(address) ? reasons.at(address) : std::string();
    y << YAML::Key << f.name << YAML::Value;
    nlohmann::json j = f.to_json();
    j.erase("fields");
    j.erase("order");
    if (j.size() == 1 && !f.is_branch()) {
      y << f.type;
      if (!reason.empty()) y << YAML::Comment(reason);
      continue;
    }
    y << YAML::BeginMap;
    y << YAML::Key << "type" << YAML::Value << f.type;
    if (!reason.empty()) y << YAML::Comment(reason);
    for (const auto& [key, value] : j.items()) {
      if (key == "type") continue;
      y << YAML::Key << key << YAML::Value;
      if (value.is_boolean()) y << value.get<bool>();
      else if (value.is_number_integer()) y << value.get<int64_t>();
      else if (value.is_number()) y << value.get<double>();
      else y << (value.is_string() ? value.get<std::string>() : value.dump());
    }
    if (f.is_branch()) {
      y << YAML::Key << "fields" << YAML::Value;
      emit_fields(y, f.children, address, reasons);
    }
    y << YAML::EndMap;
  }
  y << YAML::EndMap;
}

}  // namespace

InferredSchema infer_schema(const RecordBuffer& records, const SchemaInferenceOptions& options) {
  Profile root;
  InferredSchema out;
  int64_t n = std::min<int64_t>(static_cast<int64_t>(records.size()), options.sample);
  for (int64_t i = 0; i < n; ++i) {
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(records.record(static_cast<size_t>(i)));
    } catch (const nlohmann::json::parse_error& e) {
      throw DataError(fmt::format("{}: not a JSON record ({})", records.where(static_cast<size_t>(i)), e.what()));
    }
    if (!record.is_object())
      throw DataError(fmt::format("{}: a record must be a JSON object, got {}", records.where(static_cast<size_t>(i)),
                                  record.type_name()));
    observe_object(root, record);
  }
  if (n == 0) throw DataError("no records to infer a schema from in '" + records.source() + "'");
  out.records = n;
  out.schema.name = options.name;
  Inferrer inferrer{out, n};
  inferrer.fields_of(root, options.name, {}, out.schema.fields, n);
  if (!options.target.empty()) {
    FieldSpec* target = find_field(out.schema.fields, options.name, options.target);
    if (!target) {
      // An identifier-like or free-text column can still be what a user wants predicted.
      auto it = std::find_if(out.left_out.begin(), out.left_out.end(), [&](const auto& l) {
        return l.first == options.name + "." + options.target || l.first == options.target;
      });
      if (it == out.left_out.end() || !root.children.count(options.target)) {
        std::vector<std::string> names;
        for (const auto& f : out.schema.fields) names.push_back(f.name);
        throw std::invalid_argument(fmt::format("target '{}' is not a field of the records (fields found: {})",
                                                options.target, fmt::join(names, ", ")));
      }
      FieldSpec spec;
      spec.name = options.target;
      spec.type = "category";
      out.schema.fields.push_back(spec);
      out.reasons.push_back({it->first, "the target; its values are labels (a distinct value per record: each its own class)"});
      out.left_out.erase(it);
      target = &out.schema.fields.back();
    }
    if (target->is_branch()) throw std::invalid_argument("target '" + options.target + "' is a list of objects; name a field inside it");
    if (target->type == "text" || target->type == "hash") target->type = "category";
    target->target = true;
  } else {
    // Nothing to predict: every field is hidden now and then and reconstructed from the rest.
    std::function<void(std::vector<FieldSpec>&)> mask = [&](std::vector<FieldSpec>& fields) {
      for (auto& f : fields) {
        if (f.is_branch()) mask(f.children);
        else f.p_mask = 0.15;
      }
    };
    mask(out.schema.fields);
  }
  if (out.schema.fields.empty()) throw DataError("no usable field in the records of '" + records.source() + "'");
  return out;
}

InferredSchema infer_schema_from_file(const std::string& path, const SchemaInferenceOptions& options) {
  ReaderOptions reader_options;
  reader_options.chunk_rows = static_cast<size_t>(std::max<int64_t>(1, std::min<int64_t>(options.sample, 16384)));
  auto reader = open_record_reader(path, reader_options);
  RecordBuffer::Builder sample;
  while (static_cast<int64_t>(sample.size()) < options.sample) {
    auto chunk = reader->next();
    if (!chunk) break;
    for (size_t i = 0; i < chunk->size() && static_cast<int64_t>(sample.size()) < options.sample; ++i)
      sample.add(chunk->record(i), chunk->source(i), chunk->line(i));
  }
  if (sample.size() == 0) throw DataError("no records to infer a schema from in '" + path + "'");
  auto records = sample.finish();
  return infer_schema(*records, options);
}

std::string InferredSchema::to_yaml(const std::string& train_path) const {
  std::map<std::string, std::string> why(reasons.begin(), reasons.end());
  YAML::Emitter y;
  y.SetDoublePrecision(15);  // 0.15, not 0.14999999999999999
  y << YAML::Comment(fmt::format("Inferred by `json2vec infer-schema` from {} records{}. Edit freely; each field says "
                                 "why it got its type.",
                                 records, train_path.empty() ? "" : " of " + train_path));
  y << YAML::Newline;
  if (!schema.has_targets())
    y << YAML::Comment("No target: every field has p_mask 0.15 (hidden and reconstructed), which trains embeddings "
                       "without labels.") << YAML::Newline;
  for (const auto& [address, reason] : left_out) y << YAML::Comment("left out: " + address + ": " + reason) << YAML::Newline;
  y << YAML::BeginMap;
  if (!train_path.empty()) {
    y << YAML::Key << "data" << YAML::Value << YAML::BeginMap << YAML::Key << "train" << YAML::Value << train_path
      << YAML::EndMap;
  }
  y << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  if (schema.name != "record") y << YAML::Key << "name" << YAML::Value << schema.name;
  y << YAML::Key << "fields" << YAML::Value;
  emit_fields(y, schema.fields, schema.name, why);
  y << YAML::EndMap << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

}  // namespace j2v
