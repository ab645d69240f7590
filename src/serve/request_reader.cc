#include "serve/request_reader.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <functional>

#include "base/errors.h"
#include "data/record_buffer.h"
#include "schema/query_path.h"
#include "serve/http_error.h"

namespace j2v::serve {

namespace dom = simdjson::dom;
namespace od = simdjson::ondemand;

// The keys fields ask for, as a tree: a key no field's query path goes through is unknown.
struct KeyTrie {
  std::string key;
  bool leaf = false;  // a field's value: whatever is inside it is the field's business
  bool list = false;  // a branch's list: the children are the keys of each item
  std::vector<KeyTrie> children;

  const KeyTrie* child(std::string_view k) const {
    for (const auto& c : children)
      if (c.key == k) return &c;
    return nullptr;
  }
};

namespace {

// Bodies up to this size reuse a per-thread parser; larger ones get a parser of their own,
// freed afterwards, so a connection thread never keeps megabytes after one large request.
constexpr size_t kReusedParserBytes = 16 << 10;

const char* type_name(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY: return "list";
    case dom::element_type::OBJECT: return "object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE: return "number";
    case dom::element_type::STRING: return "string";
    case dom::element_type::BOOL: return "boolean";
    case dom::element_type::NULL_VALUE: return "null";
  }
  return "value";
}

std::string prefix(size_t record, bool list) { return list ? fmt::format("record {}: ", record + 1) : ""; }

void check_keys(dom::object object, const KeyTrie& node, std::vector<std::string>& path, size_t record,
                bool list, const std::string& field_list) {
  for (auto [key, value] : object) {
    const auto* child = node.child(key);
    path.emplace_back(key);
    if (!child)
      throw HttpError(422, fmt::format("{}unknown field '{}' (this model's fields: {}; the service is run with "
                                       "unknown_fields=reject)",
                                       prefix(record, list), format_query_path(path), field_list));
    if (child->list && value.type() == dom::element_type::ARRAY) {
      // Named, not iterated as a temporary: the range-for would outlive get_array()'s result
      // (ASan: stack-use-after-scope, found by fuzz/fuzz_request_reader).
      dom::array items = value.get_array().value_unsafe();
      for (dom::element item : items)
        if (item.type() == dom::element_type::OBJECT)
          check_keys(item.get_object().value_unsafe(), *child, path, record, list, field_list);
    } else if (!child->leaf && !child->list && value.type() == dom::element_type::OBJECT) {
      check_keys(value.get_object().value_unsafe(), *child, path, record, list, field_list);
    }
    path.pop_back();
  }
}

}  // namespace

RequestReader::RequestReader(const std::vector<FieldSpec>& fields, const RecordEncoder& encoder, int64_t max_records,
                             bool reject_unknown_fields)
    : encoder_(encoder), max_records_(max_records), reject_unknown_(reject_unknown_fields),
      keys_(std::make_unique<KeyTrie>()) {
  std::vector<std::string> names;
  std::function<void(const std::vector<FieldSpec>&, KeyTrie*, const std::string&)> add =
      [&](const std::vector<FieldSpec>& specs, KeyTrie* from, const std::string& prefix) {
        for (const auto& spec : specs) {
          if (!spec.active) continue;
          std::vector<std::string> keys = spec.query_keys();
          std::string name = prefix + format_query_path(keys);
          KeyTrie* node = from;
          for (const auto& key : keys) {
            auto it = std::find_if(node->children.begin(), node->children.end(),
                                   [&](const KeyTrie& c) { return c.key == key; });
            if (it == node->children.end()) {
              node->children.push_back(KeyTrie{key, false, false, {}});
              node = &node->children.back();
            } else {
              node = &*it;
            }
          }
          if (spec.is_branch()) {
            node->list = true;
            add(spec.children, node, name + "[].");
          } else {
            node->leaf = true;
            names.push_back(name);
          }
        }
      };
  add(fields, keys_.get(), "");
  field_list_ = fmt::format("{}", fmt::join(names, ", "));
}

RequestReader::~RequestReader() = default;

ReadRequest RequestReader::read(std::string body) const {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos)
    throw HttpError(400, "the request body is empty: send a JSON record (an object) or a list of records");
  simdjson::padded_string padded(body);
  thread_local dom::parser reused;
  std::unique_ptr<dom::parser> own;
  dom::parser* parser = &reused;
  if (body.size() > kReusedParserBytes) {
    own = std::make_unique<dom::parser>();
    parser = own.get();
  }
  dom::element root;
  if (auto error = parser->parse(padded).get(root))
    throw HttpError(400, fmt::format("malformed JSON: {}", simdjson::error_message(error)));

  ReadRequest out;
  std::vector<std::string> path;
  if (root.type() == dom::element_type::OBJECT) {
    if (reject_unknown_) check_keys(root.get_object().value_unsafe(), *keys_, path, 0, false, field_list_);
    out.records.push_back(std::move(body));
  } else if (root.type() == dom::element_type::ARRAY) {
    out.list = true;
    dom::array list = root.get_array().value_unsafe();
    size_t n = list.size();
    if (static_cast<int64_t>(n) > max_records_)
      throw HttpError(413, fmt::format("the request holds {} records; this service takes at most {} per request "
                                       "(max_records_per_request): split it",
                                       n, max_records_));
    size_t i = 0;
    for (dom::element item : list) {
      if (item.type() != dom::element_type::OBJECT)
        throw HttpError(422, fmt::format("record {} is a {}, not a JSON object", i + 1, type_name(item.type())));
      if (reject_unknown_) check_keys(item.get_object().value_unsafe(), *keys_, path, i, true, field_list_);
      ++i;
    }
    // Each record exactly as the client wrote it: the encoder reads a number in a category
    // field by its text ("7.0" is not "7"), so re-serialising could change a prediction.
    thread_local od::parser reused_splitter;
    std::unique_ptr<od::parser> own_splitter;
    od::parser* splitter = &reused_splitter;
    if (body.size() > kReusedParserBytes) {
      own_splitter = std::make_unique<od::parser>();
      splitter = own_splitter.get();
    }
    od::document doc = splitter->iterate(padded);
    out.records.reserve(n);
    for (auto item : doc.get_array()) {
      od::object object = item.get_object();
      std::string_view raw = object.raw_json();
      out.records.emplace_back(raw);
    }
  } else {
    throw HttpError(422, fmt::format("the body is a JSON {}; /predict takes a record (a JSON object) or a list of "
                                     "records",
                                     type_name(root.type())));
  }
  if (out.records.empty()) return out;

  // Encoding alone finds every record the model cannot take (an object where a number
  // goes, ...), with the message the batch commands give, naming the field.
  try {
    encoder_.encode(RecordBuffer::from_strings(out.records, "<request>"), nullptr, 1);
  } catch (const DataError& e) {
    std::string message = e.what();
    const std::string source = "<request>:";
    if (message.rfind(source, 0) == 0) {
      size_t colon = message.find(':', source.size());
      std::string line = message.substr(source.size(), colon - source.size());
      std::string rest = colon == std::string::npos ? "" : message.substr(colon + 1);
      if (!rest.empty() && rest[0] == ' ') rest.erase(0, 1);
      message = out.list ? fmt::format("record {}: {}", line, rest) : rest;
    }
    throw HttpError(422, message);
  }
  return out;
}

}  // namespace j2v::serve
