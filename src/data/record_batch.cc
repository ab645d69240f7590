#include "data/record_batch.h"

#include <algorithm>
#include <cstring>

namespace j2v {

RecordBatch::RecordBatch(std::shared_ptr<const EncodedTable> table, std::vector<int64_t> rows)
    : table_(std::move(table)), rows_(std::move(rows)) {
  int64_t B = static_cast<int64_t>(rows_.size());
  fields_.reserve(table_->columns.size());
  for (const auto& column : table_->columns) {
    // A record's cells are contiguous (`slots` of them), so each record is one copy.
    FieldTensors t;
    int64_t w = column.width, S = column.slots, N = B * S;
    t.state = torch::empty({N}, torch::kLong);
    auto* state = t.state.data_ptr<int64_t>();
    for (int64_t i = 0; i < B; ++i) {
      const uint8_t* src = column.state.data() + rows_[i] * S;
      for (int64_t s = 0; s < S; ++s) state[i * S + s] = src[s];
    }
    if (!column.values.empty()) {
      t.values = torch::empty({N, w}, torch::kFloat);
      auto* dst = t.values.data_ptr<float>();
      for (int64_t i = 0; i < B; ++i)
        std::memcpy(dst + i * S * w, column.values.data() + rows_[i] * S * w, S * w * sizeof(float));
    }
    if (!column.indices.empty()) {
      t.indices = torch::empty({N, w}, torch::kLong);
      auto* dst = t.indices.data_ptr<int64_t>();
      for (int64_t i = 0; i < B; ++i)
        std::memcpy(dst + i * S * w, column.indices.data() + rows_[i] * S * w, S * w * sizeof(int64_t));
    }
    fields_.push_back(std::move(t));
  }
  for (const auto& present : table_->present) {
    int64_t S = table_->rows ? static_cast<int64_t>(present.size()) / table_->rows : 1;
    auto mask = torch::empty({B * S}, torch::kBool);
    auto* dst = mask.data_ptr<bool>();
    for (int64_t i = 0; i < B; ++i)
      for (int64_t s = 0; s < S; ++s) dst[i * S + s] = present[rows_[i] * S + s] != 0;
    present_.push_back(std::move(mask));
  }
}

std::string_view RecordBatch::record(int64_t i) const {
  return table_->source->record(table_->source_rows[rows_[i]]);
}

}  // namespace j2v

namespace j2v {
int32_t RecordBatch::length(size_t branch, int64_t i, int64_t parent_slot) const {
  const auto& lengths = table_->lengths[branch];
  int64_t per_record = static_cast<int64_t>(lengths.size()) / table_->rows;
  return lengths[rows_[i] * per_record + parent_slot];
}
std::vector<std::shared_ptr<engine::Batch>> RecordBatch::split(int64_t parts) const {
  int64_t B = size();
  parts = std::max<int64_t>(1, std::min(parts, B));
  std::vector<std::shared_ptr<engine::Batch>> out;
  for (int64_t p = 0, begin = 0; p < parts; ++p) {
    int64_t end = begin + (B - begin) / (parts - p);  // the larger shares last
    out.push_back(std::make_shared<RecordBatch>(
        table_, std::vector<int64_t>(rows_.begin() + begin, rows_.begin() + end)));
    begin = end;
  }
  return out;
}

}  // namespace j2v
