#pragma once
// Streams predict_step's rows to DIR/rank-0.parquet (or .jsonl) as batches finish, after
// json2vec's PredictionWriter. The file appears only when prediction completes; a failure leaves no
// file that looks complete.
#include <functional>

#include "base/options.h"
#include "base/parameters.h"
#include "engine/callback.h"

#include "io/row_writer.h"

namespace j2v::engine {

struct PredictContext {
  Batch& batch;
  int64_t batch_idx;
  int64_t dataloader_idx = 0;
};
// Rewrites a batch's rows before they are written; must return one row per input row.
using Postprocessor = std::function<nlohmann::json(const PredictContext&, nlohmann::json rows)>;

struct PredictionWriterOptions {
  static const Parameters<PredictionWriterOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(std::string, path) = "predictions";
  J2V_ARG(std::string, format) = "parquet";  // parquet | jsonl
  J2V_ARG(int64_t, flush_every_n_batches) = 100;
  J2V_ARG(Postprocessor, postprocessor) = nullptr;
  J2V_ARG(int64_t, local_rank) = 0;
};

class PredictionWriter : public Callback {
 public:
  explicit PredictionWriter(PredictionWriterOptions options = {});
  ~PredictionWriter() override;
  std::string state_key() const override { return "PredictionWriter"; }
  // The file is rank-N.<format>: N is the process's rank in a data-parallel run, else local_rank.
  void on_predict_start(Trainer& trainer, Module&) override;
  void on_predict_batch_end(Trainer&, Module&, const nlohmann::json& outputs, Batch&, int64_t batch_idx) override;
  void on_predict_end(Trainer&, Module&) override;
  void on_exception(Trainer&, Module&, const std::exception&) override;
  std::string output_path() const;
  int64_t rows_written() const { return rows_written_; }
  const PredictionWriterOptions& options() const { return options_; }

 private:
  int64_t rank_ = -1;  // set when prediction starts
  PredictionWriterOptions options_;
  std::unique_ptr<io::RowWriter> writer_;
  std::vector<io::ColumnType> columns_;
  int64_t batches_since_flush_ = 0;
  int64_t rows_written_ = 0;
};

}  // namespace j2v::engine
