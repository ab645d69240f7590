#pragma once
// The data side of the engine, independent of json2vec: a batch is whatever a Module and its
// DataModule agree on; a loader yields batches; a DataModule owns the splits.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace j2v::engine {

enum class Stage { kFit, kValidate, kTest, kPredict };
const char* stage_name(Stage stage);

class Batch {
 public:
  virtual ~Batch() = default;
  virtual int64_t size() const = 0;  // rows, used to weight epoch means
  // The rows in min(parts, size()) consecutive batches of nearly equal size, for a strategy
  // that runs one batch on several replicas at once; empty when this batch type cannot split
  // (the strategy then runs it whole).
  virtual std::vector<std::shared_ptr<Batch>> split(int64_t parts) const { return {}; }
};

template <typename T>
T& batch_as(Batch& batch) {
  auto* typed = dynamic_cast<T*>(&batch);
  if (!typed) throw std::logic_error("batch is not of the type this module expects");
  return *typed;
}

class DataLoader {
 public:
  virtual ~DataLoader() = default;
  virtual int64_t num_batches() const = 0;  // -1 when unknown (streams)
  // A stream's best guess at num_batches (for learning-rate schedules and progress), -1 if none.
  virtual int64_t estimated_batches() const { return num_batches(); }
  // A stream that never ends by itself (sampling with replacement): an epoch is a batch count.
  virtual bool endless() const { return false; }
  virtual void start_epoch(int64_t epoch) {}
  // True when a loader restored from its data module's state skips what an interrupted epoch
  // already trained on by itself; otherwise the Trainer replays and drops those batches.
  virtual bool restores_position() const { return false; }
  virtual std::shared_ptr<Batch> next() = 0;  // nullptr after the last batch
};

class DataModule {
 public:
  virtual ~DataModule() = default;
  virtual void prepare_data() {}
  // Called before setup in a data-parallel run: a data module that gives each rank its own
  // share itself (a stream reading every world_size-th record) takes it here and returns
  // true; otherwise the Trainer deals the batches of its loaders out to the ranks.
  virtual bool shard(int64_t rank, int64_t world_size) { return false; }
  virtual void setup(Stage stage) {}
  virtual std::shared_ptr<DataLoader> train_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> val_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> test_dataloader() { return nullptr; }
  virtual std::shared_ptr<DataLoader> predict_dataloader() { return nullptr; }
  virtual nlohmann::json state_dict() const { return nlohmann::json::object(); }
  virtual void load_state_dict(const nlohmann::json& state) {}
  // Values a model can be built from (LightningCLI's link_arguments: data.NAME ->
  // model.init_args.NAME), e.g. a class count found in the data; computed when asked.
  virtual nlohmann::json property(const std::string& name) {
    throw std::invalid_argument("the data module has no property '" + name + "' to link");
  }
};

}  // namespace j2v::engine
