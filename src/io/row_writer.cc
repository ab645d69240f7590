#include "io/row_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "base/atomic_file.h"
#include "base/raw_json.h"
#include "duckdb.h"
#include "io/duckdb_open.h"
#include "io/sql_quoting.h"

namespace j2v::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// JSON Lines rows are small; past this the buffer is written out even without flush(), so a
// caller that flushes rarely still cannot grow the process without bound.
constexpr size_t kJsonlBufferBytes = size_t{4} << 20;
// Parquet rows stream through DuckDB: a COPY on the writer's own thread reads them from a
// table function fed chunk by chunk, and writes each row group as soon as it is full, so
// memory holds a row group and a few chunks, never the whole output.
constexpr const char* kDuckdbMemoryLimit = "128MB";
// The Parquet encoder's buffers live outside memory_limit (about 100MB per thread at 122,880
// rows per group), so the thread count is capped rather than left at one per core.
constexpr int kDuckdbThreads = 2;
// Chunks (of duckdb_vector_size() rows) waiting for the COPY: the producer blocks beyond this.
constexpr size_t kQueuedChunks = 4;
constexpr const char* kTableName = "\"rows\"";
constexpr const char* kSourceFunction = "j2v_pending_rows";

// "string \"abc\"" for error messages; long values are cut so one bad row cannot flood a log.
std::string describe_json(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return std::string(value.type_name()) + " " + text;
}

// DuckDB takes VARCHAR bytes from the C API unchecked, and invalid UTF-8 makes it fail much
// later (at COPY) without naming the row. Rejects overlongs, surrogates and > U+10FFFF.
bool is_valid_utf8(const std::string& text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    size_t extra;
    uint32_t code;
    if ((c & 0xE0) == 0xC0) {
      extra = 1, code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2, code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3, code = c & 0x07;
    } else {
      return false;
    }
    if (static_cast<size_t>(end - p) <= extra) return false;
    for (size_t i = 1; i <= extra; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      code = (code << 6) | (p[i] & 0x3F);
    }
    static const uint32_t kSmallest[] = {0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[extra] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    p += extra + 1;
  }
  return true;
}

std::string errno_text() { return std::strerror(errno); }

// Durable atomic publish (fsync, rename, fsync of the directory), with base's error turned
// into the WriteError that RowWriter::close() promises; the message names both paths.
void commit_temp_file(const std::string& temp_path, const std::string& path) {
  try {
    commit_file(temp_path, path);
  } catch (const AtomicFileError& e) {
    throw WriteError(e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Where a value sits inside a row, built on the stack while converting and only turned into
// text when a value is rejected, so the common path allocates nothing for it.
struct Location {
  const Location* parent = nullptr;
  const std::string* field = nullptr;  // struct field name, or null for a list index
  size_t index = 0;

  std::string str() const {
    std::string out = parent ? parent->str() : std::string();
    if (!field) return out + "[" + std::to_string(index) + "]";
    bool plain = !field->empty();
    for (char c : *field) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) plain = false;
    }
    if (parent) out += '.';
    return out + (plain ? *field : quote_identifier(*field));
  }
};

// ---------------------------------------------------------------------------------------------
class JsonlRowWriter final : public RowWriter {
 public:
  JsonlRowWriter(std::string path, std::vector<ColumnType> columns)
      : path_(std::move(path)), temp_path_(temp_path_for(path_)) {
    for (size_t i = 0; i < columns.size(); ++i) {
      column_index_.emplace(columns[i].name, i);
      column_names_.push_back(columns[i].name);
      try {
        quoted_keys_.push_back(json(columns[i].name).dump());
      } catch (const json::exception&) {
        throw WriteError("column name '" + columns[i].name + "' is not valid UTF-8");
      }
    }
    file_ = std::fopen(temp_path_.c_str(), "wb");
    if (!file_) throw WriteError("cannot create '" + temp_path_ + "': " + errno_text());
  }

  ~JsonlRowWriter() override { abort(); }

  void write(const json& row) override {
    require_open("write");
    const int64_t row_number = rows_ + 1;
    if (!row.is_object()) {
      throw WriteError(where(row_number) + ": expected a JSON object keyed by column name, got " +
                       describe_json(row));
    }
    slots_.assign(column_names_.size(), nullptr);
    for (const auto& [key, value] : row.items()) {
      auto it = column_index_.find(key);
      if (it == column_index_.end()) {
        throw WriteError(where(row_number) + ": key '" + key + "' is not a declared column");
      }
      slots_[it->second] = &value;
    }
    line_ = "{";
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (i) line_ += ',';
      line_ += quoted_keys_[i];
      line_ += ':';
      try {
        if (!slots_[i]) line_ += "null";
        else if (is_raw_json(*slots_[i])) line_ += raw_json_text(*slots_[i]);
        else line_ += slots_[i]->dump();
      } catch (const json::exception& e) {
        throw WriteError(where(row_number) + ", column '" + column_names_[i] + "': " + e.what());
      }
    }
    line_ += "}\n";
    buffer_ += line_;
    ++rows_;
    if (buffer_.size() >= kJsonlBufferBytes) flush();
  }

  void flush() override {
    require_open("flush");
    if (!buffer_.empty() && std::fwrite(buffer_.data(), 1, buffer_.size(), file_) != buffer_.size()) {
      fail("cannot write to '" + temp_path_ + "': " + errno_text());
    }
    buffer_.clear();
    if (std::fflush(file_) != 0) fail("cannot write to '" + temp_path_ + "': " + errno_text());
  }

  void close() override {
    if (state_ == State::kClosed) return;
    require_open("close");
    flush();
    std::FILE* file = std::exchange(file_, nullptr);
    if (std::fclose(file) != 0) fail("cannot write to '" + temp_path_ + "': " + errno_text());
    try {
      commit_temp_file(temp_path_, path_);
    } catch (const WriteError& e) {
      fail(e.what());
    }
    state_ = State::kClosed;
  }

  void abort() override {
    if (state_ == State::kClosed || state_ == State::kAborted) return;
    if (file_) std::fclose(std::exchange(file_, nullptr));
    remove_quietly(temp_path_);
    buffer_.clear();
    state_ = State::kAborted;
  }

  int64_t rows_written() const override { return rows_; }

 private:
  enum class State { kOpen, kClosed, kAborted };

  std::string where(int64_t row_number) const {
    return "cannot write row " + std::to_string(row_number) + " to '" + path_ + "'";
  }
  void require_open(const char* operation) const {
    if (state_ != State::kOpen) {
      throw WriteError(std::string("cannot ") + operation + " '" + path_ + "': the writer was " +
                       (state_ == State::kClosed ? "already closed" : "aborted (by abort() or an earlier error)"));
    }
  }
  [[noreturn]] void fail(const std::string& message) {
    abort();
    throw WriteError(message);
  }

  std::string path_;
  std::string temp_path_;
  std::vector<std::string> column_names_;
  std::vector<std::string> quoted_keys_;
  std::unordered_map<std::string, size_t> column_index_;
  std::vector<const json*> slots_;
  std::string line_;
  std::string buffer_;
  std::FILE* file_ = nullptr;
  int64_t rows_ = 0;
  State state_ = State::kOpen;
};

// ---------------------------------------------------------------------------------------------
class OwnedType {
 public:
  explicit OwnedType(duckdb_logical_type t = nullptr) : t_(t) {}
  OwnedType(OwnedType&& o) noexcept : t_(std::exchange(o.t_, nullptr)) {}
  OwnedType& operator=(OwnedType&& o) noexcept {
    std::swap(t_, o.t_);
    return *this;
  }
  ~OwnedType() {
    if (t_) duckdb_destroy_logical_type(&t_);
  }
  duckdb_logical_type get() const { return t_; }

 private:
  duckdb_logical_type t_;
};

enum class Kind {
  kBoolean, kInt8, kInt16, kInt32, kInt64, kUInt8, kUInt16, kUInt32, kUInt64,
  kFloat, kDouble, kVarchar, kJson, kList, kStruct,
};

// A column type as DuckDB resolved it, in the shape the converter walks.
struct TypeNode {
  Kind kind = Kind::kVarchar;
  idx_t fixed_size = 0;                  // LIST declared as ARRAY(T, n): exactly n elements
  std::vector<std::string> field_names;  // STRUCT
  std::unordered_map<std::string, size_t> field_index;
  std::vector<TypeNode> children;  // STRUCT fields, or the one LIST element type
};

const char* unsupported_type_name(duckdb_type id) {
  switch (id) {
    case DUCKDB_TYPE_TIMESTAMP: case DUCKDB_TYPE_TIMESTAMP_S: case DUCKDB_TYPE_TIMESTAMP_MS:
    case DUCKDB_TYPE_TIMESTAMP_NS: case DUCKDB_TYPE_TIMESTAMP_TZ: return "TIMESTAMP";
    case DUCKDB_TYPE_DATE: return "DATE";
    case DUCKDB_TYPE_TIME: case DUCKDB_TYPE_TIME_TZ: case DUCKDB_TYPE_TIME_NS: return "TIME";
    case DUCKDB_TYPE_INTERVAL: return "INTERVAL";
    case DUCKDB_TYPE_HUGEINT: return "HUGEINT";
    case DUCKDB_TYPE_UHUGEINT: return "UHUGEINT";
    case DUCKDB_TYPE_BLOB: return "BLOB";
    case DUCKDB_TYPE_DECIMAL: return "DECIMAL";
    case DUCKDB_TYPE_ENUM: return "ENUM";
    case DUCKDB_TYPE_MAP: return "MAP";
    case DUCKDB_TYPE_UUID: return "UUID";
    case DUCKDB_TYPE_UNION: return "UNION";
    case DUCKDB_TYPE_BIT: return "BIT";
    case DUCKDB_TYPE_BIGNUM: return "BIGNUM";
    default: return "an unknown type";
  }
}

TypeNode resolve_type(duckdb_logical_type type, const ColumnType& column) {
  TypeNode node;
  duckdb_type id = duckdb_get_type_id(type);
  switch (id) {
    case DUCKDB_TYPE_BOOLEAN: node.kind = Kind::kBoolean; break;
    case DUCKDB_TYPE_TINYINT: node.kind = Kind::kInt8; break;
    case DUCKDB_TYPE_SMALLINT: node.kind = Kind::kInt16; break;
    case DUCKDB_TYPE_INTEGER: node.kind = Kind::kInt32; break;
    case DUCKDB_TYPE_BIGINT: node.kind = Kind::kInt64; break;
    case DUCKDB_TYPE_UTINYINT: node.kind = Kind::kUInt8; break;
    case DUCKDB_TYPE_USMALLINT: node.kind = Kind::kUInt16; break;
    case DUCKDB_TYPE_UINTEGER: node.kind = Kind::kUInt32; break;
    case DUCKDB_TYPE_UBIGINT: node.kind = Kind::kUInt64; break;
    case DUCKDB_TYPE_FLOAT: node.kind = Kind::kFloat; break;
    case DUCKDB_TYPE_DOUBLE: node.kind = Kind::kDouble; break;
    case DUCKDB_TYPE_VARCHAR: {
      // JSON is VARCHAR with an alias; it takes any JSON value and stores its text.
      char* alias = duckdb_logical_type_get_alias(type);
      node.kind = alias && std::strcmp(alias, "JSON") == 0 ? Kind::kJson : Kind::kVarchar;
      if (alias) duckdb_free(alias);
      break;
    }
    case DUCKDB_TYPE_LIST: {
      node.kind = Kind::kList;
      OwnedType element(duckdb_list_type_child_type(type));
      node.children.push_back(resolve_type(element.get(), column));
      break;
    }
    case DUCKDB_TYPE_ARRAY: {
      // Stored as a LIST of checked length: Parquet has no fixed-size list (DuckDB reads it
      // back as T[] anyway), and DuckDB 1.4 writes a NULL ARRAY with one level entry per slot,
      // which shifts every later row for other readers (duckdb/duckdb#24731).
      node.kind = Kind::kList;
      node.fixed_size = duckdb_array_type_array_size(type);
      OwnedType element(duckdb_array_type_child_type(type));
      node.children.push_back(resolve_type(element.get(), column));
      break;
    }
    case DUCKDB_TYPE_STRUCT: {
      node.kind = Kind::kStruct;
      idx_t count = duckdb_struct_type_child_count(type);
      for (idx_t i = 0; i < count; ++i) {
        char* name = duckdb_struct_type_child_name(type, i);
        node.field_names.emplace_back(name);
        duckdb_free(name);
        node.field_index.emplace(node.field_names.back(), i);
        OwnedType field(duckdb_struct_type_child_type(type, i));
        node.children.push_back(resolve_type(field.get(), column));
      }
      break;
    }
    default:
      throw WriteError("column '" + column.name + "': type '" + column.duckdb_type + "' contains " +
                       unsupported_type_name(id) +
                       ", which the row writer cannot fill from JSON (supported: BOOLEAN, TINYINT.."
                       "BIGINT, UTINYINT..UBIGINT, FLOAT, DOUBLE, VARCHAR, JSON, LIST, ARRAY, STRUCT)");
  }
  return node;
}

const char* expected_text(const TypeNode& node) {
  switch (node.kind) {
    case Kind::kBoolean: return "BOOLEAN (a JSON true/false)";
    case Kind::kInt8: return "TINYINT";
    case Kind::kInt16: return "SMALLINT";
    case Kind::kInt32: return "INTEGER";
    case Kind::kInt64: return "BIGINT";
    case Kind::kUInt8: return "UTINYINT";
    case Kind::kUInt16: return "USMALLINT";
    case Kind::kUInt32: return "UINTEGER";
    case Kind::kUInt64: return "UBIGINT";
    case Kind::kFloat: return "FLOAT";
    case Kind::kDouble: return "DOUBLE";
    case Kind::kVarchar: return "VARCHAR (a JSON string)";
    case Kind::kJson: return "JSON";
    case Kind::kList: return node.fixed_size ? "ARRAY (a JSON array)" : "LIST (a JSON array)";
    case Kind::kStruct: return "STRUCT (a JSON object)";
  }
  return "?";
}

// The DuckDB type that stores `node`: the declared type with ARRAY replaced by LIST.
std::string storage_type(const TypeNode& node) {
  switch (node.kind) {
    case Kind::kBoolean: return "BOOLEAN";
    case Kind::kInt8: return "TINYINT";
    case Kind::kInt16: return "SMALLINT";
    case Kind::kInt32: return "INTEGER";
    case Kind::kInt64: return "BIGINT";
    case Kind::kUInt8: return "UTINYINT";
    case Kind::kUInt16: return "USMALLINT";
    case Kind::kUInt32: return "UINTEGER";
    case Kind::kUInt64: return "UBIGINT";
    case Kind::kFloat: return "FLOAT";
    case Kind::kDouble: return "DOUBLE";
    case Kind::kVarchar: return "VARCHAR";
    case Kind::kJson: return "JSON";
    case Kind::kList: return storage_type(node.children[0]) + "[]";
    case Kind::kStruct: {
      std::string out = "STRUCT(";
      for (size_t i = 0; i < node.children.size(); ++i) {
        if (i) out += ", ";
        out += quote_identifier(node.field_names[i]) + " " + storage_type(node.children[i]);
      }
      return out + ")";
    }
  }
  return "?";
}

// Thrown from deep inside a value; write() adds the row and column it belongs to.
struct Mismatch {
  std::string location;
  std::string message;
};

[[noreturn]] void mismatch(const TypeNode& node, const json& value, const Location& at,
                           const std::string& detail = "") {
  throw Mismatch{at.str(), std::string("expected ") + expected_text(node) + ", got " +
                               describe_json(value) + detail};
}

// Integers only take whole numbers in range: anything else would be silently changed by a cast.
template <typename T>
bool integer_from_json(const json& value, T* out) {
  using limits = std::numeric_limits<T>;
  if (value.is_number_unsigned()) {
    uint64_t v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(limits::max())) return false;
    *out = static_cast<T>(v);
    return true;
  }
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    if (v < 0 ? (!limits::is_signed || v < static_cast<int64_t>(limits::min()))
              : static_cast<uint64_t>(v) > static_cast<uint64_t>(limits::max())) {
      return false;
    }
    *out = static_cast<T>(v);
    return true;
  }
  double v = value.get<double>();
  // 2^digits (2^63, 2^64, ...) is an exact double, unlike limits::max(), which rounds up to it.
  if (!(std::trunc(v) == v && v >= static_cast<double>(limits::min()) &&
        v < std::ldexp(1.0, limits::digits))) {
    return false;
  }
  *out = static_cast<T>(v);
  return true;
}

template <typename T>
void validate_integer(const TypeNode& node, const json& value, const Location& at) {
  T ignored;
  if (!value.is_number()) mismatch(node, value, at);
  if (integer_from_json(value, &ignored)) return;
  bool whole = !value.is_number_float() || std::trunc(value.get<double>()) == value.get<double>();
  mismatch(node, value, at, whole ? " (out of range)" : " (not a whole number)");
}

// Checks a value against its type without touching DuckDB, so that a rejected row is found
// before any of it lands in the data chunk.
void validate(const TypeNode& node, const json& value, const Location& at) {
  if (value.is_null()) return;
  switch (node.kind) {
    case Kind::kBoolean:
      if (!value.is_boolean()) mismatch(node, value, at);
      return;
    case Kind::kInt8: return validate_integer<int8_t>(node, value, at);
    case Kind::kInt16: return validate_integer<int16_t>(node, value, at);
    case Kind::kInt32: return validate_integer<int32_t>(node, value, at);
    case Kind::kInt64: return validate_integer<int64_t>(node, value, at);
    case Kind::kUInt8: return validate_integer<uint8_t>(node, value, at);
    case Kind::kUInt16: return validate_integer<uint16_t>(node, value, at);
    case Kind::kUInt32: return validate_integer<uint32_t>(node, value, at);
    case Kind::kUInt64: return validate_integer<uint64_t>(node, value, at);
    case Kind::kFloat: {
      if (!value.is_number()) mismatch(node, value, at);
      double v = value.get<double>();
      if (std::isfinite(v) && std::fabs(v) > FLT_MAX) mismatch(node, value, at, " (out of range)");
      return;
    }
    case Kind::kDouble:
      if (!value.is_number()) mismatch(node, value, at);
      return;
    case Kind::kVarchar:
      if (!value.is_string()) mismatch(node, value, at);
      if (!is_valid_utf8(value.get_ref<const std::string&>())) {
        throw Mismatch{at.str(), "the string is not valid UTF-8"};
      }
      return;
    case Kind::kJson:
      if (is_raw_json(value)) return;
      try {
        (void)value.dump();
      } catch (const json::exception& e) {
        throw Mismatch{at.str(), e.what()};
      }
      return;
    case Kind::kList:
      if (!value.is_array()) mismatch(node, value, at);
      if (node.fixed_size && value.size() != node.fixed_size) {
        mismatch(node, value, at, " (needs exactly " + std::to_string(node.fixed_size) + " elements)");
      }
      for (size_t i = 0; i < value.size(); ++i) validate(node.children[0], value[i], Location{&at, nullptr, i});
      return;
    case Kind::kStruct:
      if (!value.is_object()) mismatch(node, value, at);
      for (const auto& [key, field_value] : value.items()) {
        auto it = node.field_index.find(key);
        if (it == node.field_index.end()) {
          throw Mismatch{at.str(), "key '" + key + "' is not a field of this STRUCT (fields: " +
                                       json(node.field_names).dump(-1, ' ', false, json::error_handler_t::replace) + ")"};
        }
        validate(node.children[it->second], field_value, Location{&at, &node.field_names[it->second]});
      }
      return;
  }
}

// A NULL struct must also null its fields: DuckDB reads them regardless.
void fill_null(const TypeNode& node, duckdb_vector vector, idx_t row) {
  duckdb_vector_ensure_validity_writable(vector);
  duckdb_validity_set_row_invalid(duckdb_vector_get_validity(vector), row);
  switch (node.kind) {
    case Kind::kList: {
      auto* entries = static_cast<duckdb_list_entry*>(duckdb_vector_get_data(vector));
      entries[row] = {duckdb_list_vector_get_size(vector), 0};
      break;
    }
    case Kind::kStruct:
      for (size_t i = 0; i < node.children.size(); ++i) {
        fill_null(node.children[i], duckdb_struct_vector_get_child(vector, i), row);
      }
      break;
    default:
      break;
  }
}

template <typename T>
void put(duckdb_vector vector, idx_t row, T value) {
  static_cast<T*>(duckdb_vector_get_data(vector))[row] = value;
}

template <typename T>
void put_integer(duckdb_vector vector, idx_t row, const json& value) {
  T v{};
  integer_from_json(value, &v);
  put<T>(vector, row, v);
}

// Writes an already validated value into row `row` of `vector`.
void fill(const TypeNode& node, duckdb_vector vector, idx_t row, const json& value) {
  if (value.is_null()) return fill_null(node, vector, row);
  switch (node.kind) {
    case Kind::kBoolean: return put<bool>(vector, row, value.get<bool>());
    case Kind::kInt8: return put_integer<int8_t>(vector, row, value);
    case Kind::kInt16: return put_integer<int16_t>(vector, row, value);
    case Kind::kInt32: return put_integer<int32_t>(vector, row, value);
    case Kind::kInt64: return put_integer<int64_t>(vector, row, value);
    case Kind::kUInt8: return put_integer<uint8_t>(vector, row, value);
    case Kind::kUInt16: return put_integer<uint16_t>(vector, row, value);
    case Kind::kUInt32: return put_integer<uint32_t>(vector, row, value);
    case Kind::kUInt64: return put_integer<uint64_t>(vector, row, value);
    case Kind::kFloat: return put<float>(vector, row, static_cast<float>(value.get<double>()));
    case Kind::kDouble: return put<double>(vector, row, value.get<double>());
    case Kind::kVarchar: {
      const auto& s = value.get_ref<const std::string&>();
      return duckdb_vector_assign_string_element_len(vector, row, s.data(), s.size());
    }
    case Kind::kJson: {
      if (is_raw_json(value)) {
        auto text = raw_json_text(value);
        return duckdb_vector_assign_string_element_len(vector, row, text.data(), text.size());
      }
      std::string text = value.dump();
      return duckdb_vector_assign_string_element_len(vector, row, text.data(), text.size());
    }
    case Kind::kList: {
      idx_t offset = duckdb_list_vector_get_size(vector);
      idx_t count = value.size();
      duckdb_list_vector_reserve(vector, offset + count);
      duckdb_vector child = duckdb_list_vector_get_child(vector);
      for (idx_t i = 0; i < count; ++i) fill(node.children[0], child, offset + i, value[i]);
      duckdb_list_vector_set_size(vector, offset + count);
      static_cast<duckdb_list_entry*>(duckdb_vector_get_data(vector))[row] = {offset, count};
      return;
    }
    case Kind::kStruct: {
      for (size_t i = 0; i < node.children.size(); ++i) {
        duckdb_vector child = duckdb_struct_vector_get_child(vector, i);
        auto it = value.find(node.field_names[i]);
        if (it == value.end()) {
          fill_null(node.children[i], child, row);
        } else {
          fill(node.children[i], child, row, *it);
        }
      }
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
class ParquetRowWriter final : public RowWriter {
 public:
  ParquetRowWriter(std::string path, std::vector<ColumnType> columns, int64_t row_group_rows)
      : path_(std::move(path)),
        temp_path_(temp_path_for(path_)),
        spill_dir_(temp_path_ + ".spill"),
        columns_(std::move(columns)),
        row_group_rows_(row_group_rows) {
    try {
      open();
    } catch (...) {
      stop_copy();
      release_duckdb();
      remove_quietly(temp_path_);
      remove_quietly(spill_dir_);
      throw;
    }
  }

  ~ParquetRowWriter() override { abort(); }

  void write(const json& row) override {
    require_open("write");
    const int64_t row_number = rows_ + 1;
    if (!row.is_object()) {
      throw WriteError(where(row_number) + ": expected a JSON object keyed by column name, got " +
                       describe_json(row));
    }
    slots_.assign(columns_.size(), nullptr);
    for (const auto& [key, value] : row.items()) {
      auto it = column_index_.find(key);
      if (it == column_index_.end()) {
        throw WriteError(where(row_number) + ": key '" + key + "' is not a declared column");
      }
      slots_[it->second] = &value;
    }
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (!slots_[i]) continue;
      Location at{nullptr, &columns_[i].name};
      try {
        validate(column_types_[i], *slots_[i], at);
      } catch (const Mismatch& m) {
        // Nested mismatches say where inside the column; a top-level one is the column itself.
        std::string inside = m.location == at.str() ? "" : " at " + m.location;
        throw WriteError(where(row_number) + ", column '" + columns_[i].name + "'" + inside + ": " +
                         m.message);
      }
    }
    if (!chunk_) chunk_ = duckdb_create_data_chunk(chunk_types_.data(), chunk_types_.size());
    for (size_t i = 0; i < columns_.size(); ++i) {
      duckdb_vector vector = duckdb_data_chunk_get_vector(chunk_, i);
      if (slots_[i]) {
        fill(column_types_[i], vector, rows_in_chunk_, *slots_[i]);
      } else {
        fill_null(column_types_[i], vector, rows_in_chunk_);
      }
    }
    ++rows_;
    if (++rows_in_chunk_ == duckdb_vector_size()) hand_over_chunk();
  }

  void flush() override {
    require_open("flush");
    hand_over_chunk();
  }

  void close() override {
    if (state_ == State::kClosed) return;
    require_open("close");
    try {
      hand_over_chunk();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        input_done_ = true;
      }
      changed_.notify_all();
      if (copy_thread_.joinable()) copy_thread_.join();
      if (!copy_error_.empty()) throw WriteError("cannot write '" + temp_path_ + "': " + copy_error_);
      release_duckdb();
      remove_quietly(spill_dir_);
      commit_temp_file(temp_path_, path_);
    } catch (const WriteError&) {
      abort();
      throw;
    }
    state_ = State::kClosed;
  }

  void abort() override {
    if (state_ == State::kClosed || state_ == State::kAborted) return;
    stop_copy();
    release_duckdb();
    remove_quietly(temp_path_);
    remove_quietly(spill_dir_);
    state_ = State::kAborted;
  }

  int64_t rows_written() const override { return rows_; }

 private:
  enum class State { kOpen, kClosed, kAborted };

  void open() {
    // Fail now, not after hours of predictions, if the output location is not writable.
    int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) throw WriteError("cannot create '" + temp_path_ + "': " + errno_text());
    ::close(fd);

    DuckDbSettings settings;
    settings.threads = kDuckdbThreads;
    settings.memory_limit = kDuckdbMemoryLimit;
    settings.temp_directory = spill_dir_;
    std::string open_error;
    if (open_duckdb(settings, &database_, &open_error) == DuckDBError)
      throw WriteError("cannot start DuckDB to write '" + path_ + "': " + open_error);
    if (duckdb_connect(database_, &connection_) == DuckDBError) {
      connection_ = nullptr;
      throw WriteError("cannot connect to DuckDB to write '" + path_ + "'");
    }

    std::unordered_map<std::string, std::string> lowercase_names;
    for (const auto& column : columns_) {
      std::string lower = column.name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto [it, fresh] = lowercase_names.emplace(lower, column.name);
      if (!fresh) {
        throw WriteError("columns '" + it->second + "' and '" + column.name + "' of '" + path_ +
                         "' differ only in case, which DuckDB treats as the same name; rename one");
      }
    }
    // DuckDB parses the declared types; the rows then take the storage types derived from
    // them (see storage_type), read back from an empty table of those types.
    std::string declared;
    for (size_t i = 0; i < columns_.size(); ++i) {
      column_index_.emplace(columns_[i].name, i);
      if (i) declared += ", ";
      declared += quote_identifier(columns_[i].name) + " " + columns_[i].duckdb_type;
    }
    std::string create_error = prepare_and_run("CREATE TABLE declared (" + declared + ")");
    if (!create_error.empty()) throw WriteError(explain_create_error(create_error));
    read_column_types("declared", [&](size_t i, OwnedType type) {
      column_types_.push_back(resolve_type(type.get(), columns_[i]));
    });
    std::string stored;
    for (size_t i = 0; i < columns_.size(); ++i) {
      if (i) stored += ", ";
      stored += quote_identifier(columns_[i].name) + " " + storage_type(column_types_[i]);
    }
    run_sql("DROP TABLE declared", "cannot prepare DuckDB for '" + path_ + "'");
    run_sql(std::string("CREATE TABLE ") + kTableName + " (" + stored + ")",
            "cannot create the Parquet columns for '" + path_ + "'");
    read_column_types(kTableName, [&](size_t, OwnedType type) { owned_types_.push_back(std::move(type)); });
    for (const auto& type : owned_types_) chunk_types_.push_back(type.get());
    run_sql(std::string("DROP TABLE ") + kTableName, "cannot prepare DuckDB for '" + path_ + "'");
    register_source();
    start_copy();
  }

  // The types of a table's columns, in order, each handed to `take`.
  template <typename Take>
  void read_column_types(const std::string& table, Take take) {
    duckdb_result result;
    if (duckdb_query(connection_, ("SELECT * FROM " + table + " LIMIT 0").c_str(), &result) == DuckDBError) {
      std::string reason = duckdb_result_error(&result);
      duckdb_destroy_result(&result);
      throw WriteError("cannot read back the column types for '" + path_ + "': " + reason);
    }
    try {
      for (size_t i = 0; i < columns_.size(); ++i) {
        take(i, OwnedType(duckdb_column_logical_type(&result, i)));
      }
    } catch (...) {
      duckdb_destroy_result(&result);
      throw;
    }
    duckdb_destroy_result(&result);
  }

  // The table function the COPY reads: it hands over the chunks write() filled, in order, and
  // ends when close() says there are no more.
  void register_source() {
    ::duckdb_table_function function = duckdb_create_table_function();
    duckdb_table_function_set_name(function, kSourceFunction);
    duckdb_table_function_set_extra_info(function, this, nullptr);
    duckdb_table_function_set_bind(function, &ParquetRowWriter::bind_source);
    duckdb_table_function_set_init(function, &ParquetRowWriter::init_source);
    duckdb_table_function_set_function(function, &ParquetRowWriter::produce);
    duckdb_state registered = duckdb_register_table_function(connection_, function);
    duckdb_destroy_table_function(&function);
    if (registered == DuckDBError) throw WriteError("cannot prepare DuckDB to stream rows to '" + path_ + "'");
  }

  static void bind_source(duckdb_bind_info info) {
    auto* self = static_cast<ParquetRowWriter*>(duckdb_bind_get_extra_info(info));
    for (size_t i = 0; i < self->columns_.size(); ++i)
      duckdb_bind_add_result_column(info, self->columns_[i].name.c_str(), self->chunk_types_[i]);
  }

  // One thread reads the source, so row order is input order.
  static void init_source(duckdb_init_info info) { duckdb_init_set_max_threads(info, 1); }

  static void produce(duckdb_function_info info, duckdb_data_chunk output) {
    auto* self = static_cast<ParquetRowWriter*>(duckdb_function_get_extra_info(info));
    duckdb_data_chunk chunk = nullptr;
    {
      std::unique_lock<std::mutex> lock(self->mutex_);
      self->changed_.wait(lock, [&] { return self->stopping_ || self->input_done_ || !self->queue_.empty(); });
      if (self->stopping_) {
        duckdb_function_set_error(info, "the writer was aborted");
        return;
      }
      if (self->queue_.empty()) {  // input done: an empty chunk ends the table
        duckdb_data_chunk_set_size(output, 0);
        return;
      }
      chunk = self->queue_.front();
      self->queue_.pop_front();
    }
    self->changed_.notify_all();
    // The output shares the chunk's buffers (reference counted), so the chunk can go now.
    idx_t size = duckdb_data_chunk_get_size(chunk);
    for (size_t i = 0; i < self->columns_.size(); ++i)
      duckdb_vector_reference_vector(duckdb_data_chunk_get_vector(output, i), duckdb_data_chunk_get_vector(chunk, i));
    duckdb_data_chunk_set_size(output, size);
    duckdb_destroy_data_chunk(&chunk);
  }

  void start_copy() {
    // Snappy rather than DuckDB's default of the day: every Parquet reader decodes it.
    std::string sql = std::string("COPY (SELECT * FROM ") + kSourceFunction + "()) TO " +
                      quote_string_literal(temp_path_) + " (FORMAT parquet, COMPRESSION snappy, USE_TMP_FILE false";
    if (row_group_rows_ > 0) sql += ", ROW_GROUP_SIZE " + std::to_string(row_group_rows_);
    sql += ")";
    copy_thread_ = std::thread([this, sql] {
      std::string error = prepare_and_run(sql);
      std::lock_guard<std::mutex> lock(mutex_);
      copy_error_ = error;
      copy_finished_ = true;
      changed_.notify_all();
    });
  }

  // Ends the COPY without a file: it fails on its next chunk, and the thread is joined.
  void stop_copy() noexcept {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    if (copy_thread_.joinable()) copy_thread_.join();
    for (auto& chunk : queue_) duckdb_destroy_data_chunk(&chunk);
    queue_.clear();
  }

  // Queues the rows filled so far for the COPY, waiting while it is behind.
  void hand_over_chunk() {
    if (!chunk_) return;
    if (rows_in_chunk_ == 0) return;
    duckdb_data_chunk_set_size(chunk_, rows_in_chunk_);
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.size() < kQueuedChunks || copy_finished_; });
    if (copy_finished_) {
      // The COPY ended before its input did: only an error does that.
      std::string reason = copy_error_.empty() ? "the Parquet writer stopped early" : copy_error_;
      lock.unlock();
      abort();
      throw WriteError("cannot write '" + temp_path_ + "': " + reason);
    }
    // A fresh chunk per hand-over: list children and validity masks start clean.
    queue_.push_back(chunk_);
    chunk_ = nullptr;
    rows_in_chunk_ = 0;
    lock.unlock();
    changed_.notify_all();
  }

  // Runs one statement. A prepared statement cannot hold two, so a type string cannot smuggle
  // in a second statement. Returns DuckDB's error, empty on success.
  std::string prepare_and_run(const std::string& sql) {
    duckdb_prepared_statement statement = nullptr;
    std::string error;
    if (duckdb_prepare(connection_, sql.c_str(), &statement) == DuckDBError) {
      const char* message = duckdb_prepare_error(statement);
      error = message ? message : "unknown error";
    } else {
      duckdb_result result;
      if (duckdb_execute_prepared(statement, &result) == DuckDBError) {
        const char* message = duckdb_result_error(&result);
        error = message ? message : "unknown error";
      }
      duckdb_destroy_result(&result);
    }
    duckdb_destroy_prepare(&statement);
    return error;
  }

  void run_sql(const std::string& sql, const std::string& what) {
    std::string error = prepare_and_run(sql);
    if (!error.empty()) throw WriteError(what + ": " + error);
  }

  // DuckDB's message for a bad CREATE TABLE rarely names the column; find it by trying each.
  std::string explain_create_error(const std::string& error) {
    for (const auto& column : columns_) {
      std::string column_error = prepare_and_run("CREATE TEMP TABLE probe (x " + column.duckdb_type + ")");
      prepare_and_run("DROP TABLE IF EXISTS probe");
      if (!column_error.empty()) {
        return "column '" + column.name + "': invalid DuckDB type '" + column.duckdb_type + "': " + column_error;
      }
    }
    return "cannot create the Parquet columns for '" + path_ + "': " + error;
  }

  void release_duckdb() noexcept {
    if (chunk_) duckdb_destroy_data_chunk(&chunk_);
    rows_in_chunk_ = 0;
    if (connection_) duckdb_disconnect(&connection_);
    if (database_) duckdb_close(&database_);
  }

  std::string where(int64_t row_number) const {
    return "cannot write row " + std::to_string(row_number) + " to '" + path_ + "'";
  }

  void require_open(const char* operation) const {
    if (state_ != State::kOpen) {
      throw WriteError(std::string("cannot ") + operation + " '" + path_ + "': the writer was " +
                       (state_ == State::kClosed ? "already closed" : "aborted (by abort() or an earlier error)"));
    }
  }

  std::string path_;
  std::string temp_path_;
  std::string spill_dir_;
  std::vector<ColumnType> columns_;
  int64_t row_group_rows_;
  std::unordered_map<std::string, size_t> column_index_;
  std::vector<TypeNode> column_types_;
  std::vector<OwnedType> owned_types_;
  std::vector<duckdb_logical_type> chunk_types_;  // views of owned_types_
  std::vector<const json*> slots_;
  duckdb_database database_ = nullptr;
  duckdb_connection connection_ = nullptr;
  duckdb_data_chunk chunk_ = nullptr;
  idx_t rows_in_chunk_ = 0;
  int64_t rows_ = 0;
  State state_ = State::kOpen;
  // Between write() and the COPY's thread.
  std::thread copy_thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<duckdb_data_chunk> queue_;
  bool input_done_ = false, stopping_ = false, copy_finished_ = false;
  std::string copy_error_;
};

}  // namespace

std::unique_ptr<RowWriter> make_row_writer(const std::string& path, const std::string& format,
                                           std::vector<ColumnType> columns, int64_t row_group_rows) {
  if (format != "parquet" && format != "jsonl") {
    throw WriteError("writer.format: unknown format '" + format + "' (allowed: parquet, jsonl)");
  }
  if (path.empty()) throw WriteError("writer: the output path is empty");
  if (columns.empty()) throw WriteError("writer: no columns given for '" + path + "'");
  std::unordered_map<std::string, size_t> seen;
  for (const auto& column : columns) {
    if (column.name.empty()) throw WriteError("writer: a column for '" + path + "' has an empty name");
    if (!seen.emplace(column.name, 0).second) {
      throw WriteError("writer: column '" + column.name + "' is declared twice for '" + path + "'");
    }
  }
  std::error_code error;
  if (fs::is_directory(path, error)) {
    throw WriteError("cannot write '" + path + "': it is a directory; give a file path");
  }
  fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, error)) {
    fs::create_directories(parent, error);
    if (error) {
      throw WriteError("cannot create directory '" + parent.string() + "' for '" + path + "': " + error.message());
    }
  }
  remove_stale_temp_files(path);  // a killed run's "<path>.tmp-PID" and its spill directory
  if (format == "jsonl") return std::make_unique<JsonlRowWriter>(path, std::move(columns));
  return std::make_unique<ParquetRowWriter>(path, std::move(columns), row_group_rows);
}

}  // namespace j2v::io
