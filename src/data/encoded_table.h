#pragma once
// Records after encoding: one Column per leaf field, in the model's field order, plus the
// raw records they came from (for the `inputs` of predictions).
#include <memory>
#include <vector>

#include "data/record_buffer.h"
#include "fields/cell.h"

namespace j2v {

struct EncodedTable {
  int64_t rows = 0;
  std::vector<Column> columns;
  std::shared_ptr<const RecordBuffer> source;
  std::vector<int64_t> source_rows;  // table row i is source record source_rows[i]
  // Per branch (index 0, the root, is empty): the items kept from each list, per record
  // and parent slot, rows x parent_slots.
  std::vector<std::vector<int32_t>> lengths;
  // Per branch, rows x the branch's slots: 1 where the slot holds an item (0: padding).
  std::vector<std::vector<uint8_t>> present;
};

}  // namespace j2v
