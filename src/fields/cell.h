#pragma once
// What the encoder knows about one cell of one field, before and after encoding.
#include <cstdint>
#include <string_view>
#include <vector>

namespace j2v {

// Every cell has a state; the model embeds it, so missing, padded and masked cells are
// inputs in their own right rather than zeros.
enum class CellState : uint8_t { kValued = 0, kNull = 1, kPadded = 2, kMasked = 3, kOther = 4 };
constexpr int kNumCellStates = 5;
const char* cell_state_name(int state);

// A JSON value as seen at a field's query path, with no allocation: strings point into the
// parser's buffer and are valid only while the record is being encoded.
struct Scalar {
  enum class Kind : uint8_t { kMissing, kNull, kBool, kNumber, kString, kObject, kArray };
  Kind kind = Kind::kMissing;
  bool boolean = false;
  double number = 0.0;
  std::string_view text;  // kString: the unescaped string; kNumber: the raw token ("12.50")
  // kArray at a field: its elements (an element that is itself an array or object carries
  // only its kind). Valid, like `text`, only while the record is being encoded.
  const Scalar* elements = nullptr;
  uint32_t size = 0;

  static Scalar missing() { return {}; }
  static Scalar null() { Scalar s; s.kind = Kind::kNull; return s; }
  static Scalar of(double v, std::string_view token = {}) {
    Scalar s; s.kind = Kind::kNumber; s.number = v; s.text = token; return s;
  }
  static Scalar of(std::string_view v) { Scalar s; s.kind = Kind::kString; s.text = v; return s; }
  static Scalar of_bool(bool v) { Scalar s; s.kind = Kind::kBool; s.boolean = v; return s; }
  const char* kind_name() const;
};

// One field's encoded cells for many rows, laid out as the model consumes them: `slots`
// cells per record (1 at the root; a branch's slots inside one), record after record.
struct Column {
  std::vector<uint8_t> state;    // CellState per row
  std::vector<float> values;     // width floats per row (numbers, vectors)
  std::vector<int64_t> indices;  // width indices per row (categories)
  int64_t width = 1;
  int64_t slots = 1;

  void resize(size_t rows, bool with_values, bool with_indices) {
    state.assign(rows, static_cast<uint8_t>(CellState::kNull));
    if (with_values) values.assign(rows * width, 0.0f);
    if (with_indices) indices.assign(rows * width, 0);
  }
  size_t rows() const { return state.size(); }
};

}  // namespace j2v
