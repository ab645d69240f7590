#pragma once
// An exponential moving average of the weights (Polyak averaging): validation, checkpoints
// and the final model use the average, which is far less noisy than the last step's
// weights when training stops early at a still-high learning rate. Training itself goes on
// from the raw weights.
#include "base/options.h"
#include "base/parameters.h"
#include "engine/callback.h"

namespace j2v::engine {

struct WeightAveragingOptions {
  static const Parameters<WeightAveragingOptions>& parameters();  // names, help, bounds; defaults below
  J2V_ARG(double, decay) = 0.998;  // per optimizer step
};

class WeightAveraging : public Callback {
 public:
  explicit WeightAveraging(WeightAveragingOptions options = {});
  std::string state_key() const override { return "WeightAveraging"; }
  void on_fit_start(Trainer&, Module&) override;
  void on_train_batch_end(Trainer&, Module&, const torch::Tensor&, Batch&, int64_t) override;
  void on_validation_start(Trainer&, Module&) override { swap_in(); }
  // Checkpoints written at the end of an epoch hold the average (list this callback first).
  void on_train_epoch_end(Trainer&, Module&) override { swap_in(); }
  void on_train_epoch_start(Trainer&, Module&) override { swap_out(); }
  // A validation inside an epoch hands the raw weights back to training.
  void on_validation_end(Trainer&, Module&) override;
  nlohmann::json state_dict() const override {
    return {{"updates", updates_}, {"swapped", swapped_}, {"last_update_step", last_update_step_}};
  }
  int64_t updates() const { return updates_; }
  const WeightAveragingOptions& options() const { return options_; }
  void load_state_dict(const nlohmann::json& s) override;
  // The weights not in the module (the average, or the raw weights while the average is
  // swapped in), so a resumed fit goes on from exactly where it stopped.
  void save_tensors(torch::serialize::OutputArchive&) const override;
  void load_tensors(torch::serialize::InputArchive&) override;
  void on_fit_end(Trainer&, Module&) override { swap_in(); }
  void on_exception(Trainer&, Module&, const std::exception&) override { swap_out(); }

 private:
  void swap_in();   // the module holds the average; the raw weights are kept aside
  void swap_out();  // the module holds the raw weights again
  WeightAveragingOptions options_;
  std::vector<torch::Tensor> params_, average_, raw_;
  int64_t updates_ = 0;
  int64_t last_update_step_ = 0;  // the global step of the last update
  bool swapped_ = false;
  std::vector<torch::Tensor> restored_;  // from a checkpoint, taken up at on_fit_start
  bool restored_swapped_ = false;
  int64_t restored_updates_ = 0;
  int64_t restored_last_update_step_ = 0;
};

}  // namespace j2v::engine
