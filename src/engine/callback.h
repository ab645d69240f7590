#pragma once
// Callbacks hook into the Trainer's loops (after Lightning's Callback). Each keeps its own
// state in checkpoints under its state_key().
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "engine/data.h"

namespace j2v::engine {

class Trainer;
class Module;

class Callback {
 public:
  virtual ~Callback() = default;
  virtual std::string state_key() const = 0;

  virtual void on_fit_start(Trainer&, Module&) {}
  virtual void on_fit_end(Trainer&, Module&) {}
  virtual void on_train_epoch_start(Trainer&, Module&) {}
  virtual void on_train_batch_start(Trainer&, Module&, Batch&, int64_t batch_idx) {}
  virtual void on_train_batch_end(Trainer&, Module&, const torch::Tensor& loss, Batch&, int64_t batch_idx) {}
  virtual void on_train_epoch_end(Trainer&, Module&) {}
  virtual void on_validation_start(Trainer&, Module&) {}
  virtual void on_validation_batch_end(Trainer&, Module&, Batch&, int64_t batch_idx) {}
  virtual void on_validation_end(Trainer&, Module&) {}
  virtual void on_test_end(Trainer&, Module&) {}
  virtual void on_predict_start(Trainer&, Module&) {}
  virtual void on_predict_batch_end(Trainer&, Module&, const nlohmann::json& outputs, Batch&, int64_t batch_idx) {}
  virtual void on_predict_end(Trainer&, Module&) {}
  // Called when a loop throws, before the exception leaves the Trainer.
  virtual void on_exception(Trainer&, Module&, const std::exception&) {}

  virtual nlohmann::json state_dict() const { return nlohmann::json::object(); }
  virtual void load_state_dict(const nlohmann::json&) {}
  // Tensors too large or too many for the JSON state (weight averages), in the checkpoint's archive.
  virtual void save_tensors(torch::serialize::OutputArchive&) const {}
  virtual void load_tensors(torch::serialize::InputArchive&) {}
};

}  // namespace j2v::engine
