#pragma once
// A data module of numeric CSV rows for the MLP example: every column but the target is a
// feature (standardised with the training rows' mean and spread), the target column holds
// class indices 0..K-1. It exposes num_features, num_classes and class_weights for
// link_arguments.
#include "tensor_batch.h"

namespace examples {

struct CsvDataOptions {
  std::string path;
  std::string target = "label";
  int64_t batch_size = 64;
  double validate_fraction = 0.2;
  double test_fraction = 0.1;
  uint64_t seed = 0;
};

class CsvDataModule : public j2v::engine::DataModule {
 public:
  explicit CsvDataModule(CsvDataOptions options);
  void prepare_data() override;  // reads and splits the file once
  void setup(j2v::engine::Stage stage) override;
  std::shared_ptr<j2v::engine::DataLoader> train_dataloader() override;
  std::shared_ptr<j2v::engine::DataLoader> val_dataloader() override;
  std::shared_ptr<j2v::engine::DataLoader> test_dataloader() override;
  std::shared_ptr<j2v::engine::DataLoader> predict_dataloader() override;
  nlohmann::json property(const std::string& name) override;

  int64_t num_features();
  int64_t num_classes();
  std::vector<double> class_weights();  // inverse class frequency in training, mean 1

 private:
  std::shared_ptr<j2v::engine::DataLoader> loader(const std::vector<int64_t>& rows, bool shuffle);
  CsvDataOptions options_;
  bool read_ = false;
  torch::Tensor features_, labels_;  // all rows, features standardised
  std::vector<int64_t> train_, validate_, test_;
  int64_t num_classes_ = 0;
};

// Registers examples.CsvDataModule with the engine's data module registry.
void register_csv_data_module();

}  // namespace examples
