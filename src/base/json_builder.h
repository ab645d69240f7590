#pragma once
// Builds one JSON value from a stream of tokens, either as an nlohmann tree or straight as
// text. Code that produces a value once (a prediction's payload) can then serve both a
// consumer that reads trees (Parquet, a postprocessor) and one that only prints (JSON Lines)
// without building, printing and freeing a tree per row for the printer.
// Tokens must form one valid value: keys only inside objects, every begin matched by an end.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace j2v {

class JsonBuilder {
 public:
  virtual ~JsonBuilder() = default;
  virtual void begin_object() = 0;
  virtual void end_object() = 0;
  virtual void begin_array() = 0;
  virtual void end_array() = 0;
  // The next value's key in the enclosing object.
  virtual void key(std::string_view name) = 0;
  // A float, as the double it widens to: the number a tree holds and Parquet stores, so
  // every output format carries the same value.
  virtual void number(float value) = 0;
  // An array of floats.
  virtual void numbers(const float* values, int64_t count) = 0;
  // A value that already exists as a tree; raw_json() values in it (base/raw_json.h) are
  // copied as text by the text builder and kept as they are by the tree builder.
  virtual void value(const nlohmann::json& value) = 0;
};

// Appends the text to a string. Non-finite floats are written as null, as nlohmann prints them.
class JsonTextBuilder final : public JsonBuilder {
 public:
  explicit JsonTextBuilder(std::string& out) : out_(out) {}
  void begin_object() override;
  void end_object() override;
  void begin_array() override;
  void end_array() override;
  void key(std::string_view name) override;
  void number(float value) override;
  void numbers(const float* values, int64_t count) override;
  void value(const nlohmann::json& value) override;

 private:
  void separate();
  void open(char bracket);
  void close(char bracket);
  std::string& out_;
  bool after_value_ = false;  // a comma goes before the next value or key
};

// Builds a tree (a non-finite float stays as it is; printed, it is null).
class JsonTreeBuilder final : public JsonBuilder {
 public:
  void begin_object() override;
  void end_object() override;
  void begin_array() override;
  void end_array() override;
  void key(std::string_view name) override;
  void number(float value) override;
  void numbers(const float* values, int64_t count) override;
  void value(const nlohmann::json& value) override;
  // The finished value (null before any token); the builder is empty afterwards.
  nlohmann::json take();

 private:
  nlohmann::json* put(nlohmann::json value);
  nlohmann::json root_;
  std::vector<nlohmann::json*> open_;  // the objects and arrays not yet ended, innermost last
  std::string key_;
};

// Appends `text` as a quoted JSON string, escaped as nlohmann escapes it.
void append_json_string(std::string& out, std::string_view text);

// Appends `value` as JSON text: the shortest digits that read back as the same double, with a
// ".0" on whole numbers (as nlohmann prints doubles); null when not finite.
void append_json_number(std::string& out, double value);

}  // namespace j2v
