// predict (Lightning's _PredictionLoop): rows from predict_step, handed to callbacks (the
// prediction writer) batch by batch in batch order, and returned when asked for. The batches
// run through a PredictionPipeline: reading, predict_step and the callbacks overlap.
#include "engine/distributed/sharded_loader.h"
#include "base/raw_json.h"
#include "engine/loops/prediction_pipeline.h"
#include "engine/trainer.h"
#include "engine/trainer_internals.h"

namespace j2v::engine {

using namespace detail;

nlohmann::json Trainer::predict(Module& module, DataModule& data, const std::optional<std::string>& ckpt_path,
                                bool return_predictions) {
  Module::RunningScope running(module);
  std::string path = ckpt_path ? resolve_checkpoint(*ckpt_path) : "";
  if (!path.empty()) preload_module_state(path, module);
  setup_run(module, false);
  stage_ = Stage::kPredict;
  data.prepare_data();
  bool data_shards_itself = world_size() > 1 && data.shard(global_rank(), world_size());
  data.setup(Stage::kPredict);
  module.setup(Stage::kPredict);
  if (!path.empty()) restore(path, module, false);
  auto loader = data.predict_dataloader();
  if (!loader) throw std::invalid_argument("predict needs data: the data module has no predict split");
  // Each rank predicts its own batches (every one exactly once across the ranks) and its
  // writer writes them to its own file, in input order.
  if (world_size() > 1 && !data_shards_itself)
    loader = std::make_shared<ShardedLoader>(loader, global_rank(), world_size(), /*equal_shares=*/false);
  module.eval();
  nlohmann::json all = nlohmann::json::array();
  try {
    for (auto& cb : callbacks_) cb->on_predict_start(*this, module);
    module.on_predict_epoch_start();
    loader->start_epoch(0);
    int64_t limit = batches_to_run(options_.limit_predict_batches(), *loader, "limit_predict_batches");
    num_loop_batches_ = limit;
    {
      auto devices = strategy_->prediction_devices(module, *this, cores());
      PredictionPipeline pipeline(*loader, devices.modules, devices.intra_op_threads, limit, mixed_precision_);
      while (auto result = pipeline.next()) {
        batch_index_ = result->batch_idx;
        for (auto& cb : callbacks_)
          cb->on_predict_batch_end(*this, module, result->rows, *result->batch, result->batch_idx);
        if (return_predictions)
          for (auto& row : result->rows) {
            materialize_raw_json(row);  // a caller reads rows as trees; only writers take raw text
            all.push_back(std::move(row));
          }
      }
    }
    strategy_->teardown();
    module.on_predict_epoch_end();
    for (auto& cb : callbacks_) cb->on_predict_end(*this, module);
  } catch (const std::exception& e) {
    strategy_->teardown();
    for (auto& cb : callbacks_) cb->on_exception(*this, module, e);
    throw;
  }
  stage_ = Stage::kFit;
  module.teardown(Stage::kPredict);
  return all;
}

}  // namespace j2v::engine
