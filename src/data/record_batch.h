#pragma once
// A batch of encoded records as tensors, one FieldTensors per leaf field (B x slots cells,
// record-major), plus the rows of the table it came from (for the predictions' `inputs`).
#include <torch/torch.h>

#include "data/encoded_table.h"
#include "engine/data.h"
#include "fields/field_module.h"

namespace j2v {

class RecordBatch : public engine::Batch {
 public:
  RecordBatch(std::shared_ptr<const EncodedTable> table, std::vector<int64_t> rows);
  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  std::vector<std::shared_ptr<engine::Batch>> split(int64_t parts) const override;
  const std::vector<FieldTensors>& fields() const { return fields_; }
  std::string_view record(int64_t i) const;  // the raw JSON of row i
  // Items kept from branch `branch`'s list in row i's parent slot (see EncodedTable::lengths).
  int32_t length(size_t branch, int64_t i, int64_t parent_slot) const;
  // [B x slots] bool per branch: the slot holds an item (the root's one slot always does).
  const std::vector<torch::Tensor>& present() const { return present_; }
  const std::vector<int64_t>& rows() const { return rows_; }

 private:
  std::shared_ptr<const EncodedTable> table_;
  std::vector<int64_t> rows_;
  std::vector<FieldTensors> fields_;
  std::vector<torch::Tensor> present_;
};

}  // namespace j2v
