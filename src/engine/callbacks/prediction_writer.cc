#include "engine/callbacks/prediction_writer.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "base/raw_json.h"
#include "engine/module.h"
#include "engine/trainer.h"
#include "io/duckdb_types.h"
#include "io/row_writer.h"

namespace j2v::engine {

const Parameters<PredictionWriterOptions>& PredictionWriterOptions::parameters() {
  static const auto declared =
      Parameters<PredictionWriterOptions>()
          .add("path", &PredictionWriterOptions::path_, "where predict writes its output (rank-<N>.<format> inside)")
          .add("format", &PredictionWriterOptions::format_, "output format of predictions")
          .one_of({"parquet", "jsonl"})
          .add("flush_every_n_batches", &PredictionWriterOptions::flush_every_n_batches_,
               "write buffered predictions out every this many batches")
          .at_least(1);
  return declared;
}

PredictionWriter::PredictionWriter(PredictionWriterOptions options) : options_(std::move(options)) {
  PredictionWriterOptions::parameters().check(options_, "prediction_writer");
}

PredictionWriter::~PredictionWriter() = default;

std::string PredictionWriter::output_path() const {
  return (std::filesystem::path(options_.path()) / fmt::format("rank-{}.{}", rank_ >= 0 ? rank_ : options_.local_rank(), options_.format()))
      .string();
}

namespace {
// Column types for rows whose shape only the postprocessor knows: taken from the first row.
ValueType infer_type(const nlohmann::json& v) {
  if (v.is_boolean()) return ValueType::boolean();
  if (v.is_number_integer()) return ValueType::int64();
  if (v.is_number()) return ValueType::float64();
  if (v.is_string()) return ValueType::string();
  return ValueType::json();
}
}  // namespace

void PredictionWriter::on_predict_start(Trainer& trainer, Module& module) {
  rank_ = trainer.world_size() > 1 ? trainer.global_rank() : options_.local_rank();
  writer_.reset();
  columns_.clear();
  // A postprocessor reshapes rows, so the module's column types no longer describe them.
  if (!options_.postprocessor())
    for (const auto& column : module.predict_output_types()) columns_.push_back(io::column_of(column));
  batches_since_flush_ = 0;
  rows_written_ = 0;
  module.set_text_predictions(options_.format() == "jsonl" && !options_.postprocessor());
}

void PredictionWriter::on_predict_batch_end(Trainer&, Module&, const nlohmann::json& outputs, Batch& batch, int64_t batch_idx) {
  const nlohmann::json* rows = &outputs;  // written as they are unless a postprocessor rewrites them
  nlohmann::json processed;
  if (options_.postprocessor()) {
    processed = outputs;
    materialize_raw_json(processed);  // the postprocessor reads and edits trees
    processed = options_.postprocessor()(PredictContext{batch, batch_idx}, std::move(processed));
    if (!processed.is_array() || static_cast<int64_t>(processed.size()) != batch.size())
      throw std::runtime_error(fmt::format(
          "writer postprocessor returned {} rows for a batch of {} (batch {}): keep rows aligned with the batch",
          processed.is_array() ? processed.size() : 0, batch.size(), batch_idx));
    rows = &processed;
  }
  if (!writer_) {
    if (columns_.empty()) {
      if (rows->empty() || !(*rows)[0].is_object())
        throw std::runtime_error("writer: predict rows must be JSON objects keyed by column name");
      for (const auto& [name, value] : (*rows)[0].items()) columns_.push_back(io::column_of({name, infer_type(value)}));
    }
    // A Parquet row group per flush_every_n_batches batches: the encoder holds at most that
    // many rows before writing them out. Groups smaller than DuckDB's 2,048-row vectors would
    // only make the file slower to read.
    int64_t rows_per_flush = static_cast<int64_t>(rows->size()) * options_.flush_every_n_batches();
    writer_ = io::make_row_writer(output_path(), options_.format(), columns_, std::max<int64_t>(rows_per_flush, 2048));
  }
  for (const auto& row : *rows) writer_->write(row);
  rows_written_ += static_cast<int64_t>(rows->size());
  if (++batches_since_flush_ >= std::max<int64_t>(options_.flush_every_n_batches(), 1)) {
    writer_->flush();
    batches_since_flush_ = 0;
  }
}

void PredictionWriter::on_predict_end(Trainer&, Module& module) {
  module.set_text_predictions(false);
  // No batches: the file still says what its columns are.
  if (!writer_ && !columns_.empty()) writer_ = io::make_row_writer(output_path(), options_.format(), columns_);
  if (writer_) writer_->close();
  writer_.reset();
}

void PredictionWriter::on_exception(Trainer&, Module& module, const std::exception&) {
  module.set_text_predictions(false);
  if (writer_) writer_->abort();
  writer_.reset();
}

}  // namespace j2v::engine
