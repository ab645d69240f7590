#pragma once
// A leaf of the schema at run time: its spec, its learned state (vocabulary, statistics)
// and the rules that turn a JSON value into a cell. No LibTorch here; the datatype's
// network pieces are made by make_module() and live in field_module.h.
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "fields/cell.h"
#include "schema/address.h"
#include "schema/field_spec.h"

namespace j2v {

class FieldModuleImpl;
struct FieldModuleOptions {
  int64_t d_model = 64;
  double dropout = 0.0;
};

// A value the field cannot take (an object where a number is declared, a null in a
// non-nullable field). The encoder adds file, line and address.
class EncodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a field accumulates over training data before it freezes.
class FieldStats {
 public:
  virtual ~FieldStats() = default;
  virtual void observe(const Scalar& value) = 0;
  virtual void merge(const FieldStats& other) = 0;
};

class Field {
 public:
  Field(FieldSpec spec, Address address) : spec_(std::move(spec)), address_(std::move(address)) {}
  virtual ~Field() = default;

  const FieldSpec& spec() const { return spec_; }
  const Address& address() const { return address_; }
  const std::string& type() const { return spec_.type; }
  bool fitted() const { return fitted_; }

  virtual bool uses_values() const = 0;
  virtual bool uses_indices() const = 0;
  virtual int64_t width() const { return 1; }

  virtual std::unique_ptr<FieldStats> new_stats() const = 0;
  // Learns the field's state from training statistics and freezes it.
  virtual void fit(const FieldStats& stats) = 0;

  // Missing/null/"<MASK>" are handled here for every datatype; the rest by encode_value.
  void encode(const Scalar& value, Column& column, size_t row) const;
  // One record's cells of this field: `slots` values from `first` on, `present[s]` false
  // for padding. A datatype whose cells depend on each other within a record (entity
  // re-indexing) overrides this; the rest encode cell by cell.
  virtual void encode_record(const Scalar* values, const uint8_t* present, int64_t slots, Column& column,
                             size_t first) const;

  virtual nlohmann::json state_json() const = 0;
  virtual void load_state_json(const nlohmann::json& state) = 0;

  virtual std::shared_ptr<FieldModuleImpl> make_module(const FieldModuleOptions& options) const = 0;

 protected:
  // Writes the state (and content when valued) of a present, non-null value.
  virtual void encode_value(const Scalar& value, Column& column, size_t row) const = 0;
  void mark_fitted() { fitted_ = true; }
  FieldSpec spec_;
  Address address_;

 private:
  bool fitted_ = false;
};

inline constexpr std::string_view kMaskLiteral = "<MASK>";

}  // namespace j2v
