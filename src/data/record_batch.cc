#include "data/record_batch.h"

#include <cstring>

namespace j2v {

RecordBatch::RecordBatch(std::shared_ptr<const EncodedTable> table, std::vector<int64_t> rows)
    : table_(std::move(table)), rows_(std::move(rows)) {
  int64_t B = static_cast<int64_t>(rows_.size());
  fields_.reserve(table_->columns.size());
  for (const auto& column : table_->columns) {
    FieldTensors t;
    int64_t w = column.width;
    t.state = torch::empty({B}, torch::kLong);
    auto* state = t.state.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) state[i] = column.state[rows_[i]];
    if (!column.values.empty()) {
      t.values = torch::empty({B, w}, torch::kFloat);
      auto* dst = t.values.data_ptr<float>();
      for (int64_t i = 0; i < B; ++i) std::memcpy(dst + i * w, column.values.data() + rows_[i] * w, w * sizeof(float));
    }
    if (!column.indices.empty()) {
      t.indices = torch::empty({B, w}, torch::kLong);
      auto* dst = t.indices.data_ptr<int64_t>();
      for (int64_t i = 0; i < B; ++i)
        std::memcpy(dst + i * w, column.indices.data() + rows_[i] * w, w * sizeof(int64_t));
    }
    fields_.push_back(std::move(t));
  }
}

std::string_view RecordBatch::record(int64_t i) const {
  return table_->source->record(table_->source_rows[rows_[i]]);
}

}  // namespace j2v
