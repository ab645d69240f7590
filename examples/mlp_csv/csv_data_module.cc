#include "csv_data_module.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>
#include <sstream>

namespace examples {

namespace {

// Cells lose surrounding blanks, and a Windows line's '\r' is not part of its last cell.
std::vector<std::string> split_csv_line(std::string line) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  auto trim = [](std::string cell) {
    size_t first = cell.find_first_not_of(" \t"), last = cell.find_last_not_of(" \t");
    return first == std::string::npos ? std::string() : cell.substr(first, last - first + 1);
  };
  std::vector<std::string> cells;
  std::stringstream in(line);
  std::string cell;
  while (std::getline(in, cell, ',')) cells.push_back(trim(cell));
  if (!line.empty() && line.back() == ',') cells.emplace_back();
  return cells;
}

class TensorLoader : public j2v::engine::DataLoader {
 public:
  TensorLoader(torch::Tensor x, torch::Tensor y, std::vector<int64_t> rows, int64_t batch_size, bool shuffle,
               uint64_t seed)
      : x_(std::move(x)), y_(std::move(y)), rows_(std::move(rows)), order_(rows_), batch_size_(batch_size),
        shuffle_(shuffle), seed_(seed) {}
  int64_t num_batches() const override {
    return (static_cast<int64_t>(rows_.size()) + batch_size_ - 1) / batch_size_;
  }
  void start_epoch(int64_t epoch) override {
    order_ = rows_;
    if (shuffle_) std::shuffle(order_.begin(), order_.end(), std::mt19937_64(seed_ * 7919 + epoch));
    cursor_ = 0;
  }
  std::shared_ptr<j2v::engine::Batch> next() override {
    if (cursor_ >= order_.size()) return nullptr;
    size_t end = std::min(order_.size(), cursor_ + static_cast<size_t>(batch_size_));
    auto index = torch::tensor(std::vector<int64_t>(order_.begin() + cursor_, order_.begin() + end), torch::kLong);
    cursor_ = end;
    auto batch = std::make_shared<TensorBatch>();
    batch->x = x_.index_select(0, index);
    batch->y = y_.index_select(0, index);
    return batch;
  }

 private:
  torch::Tensor x_, y_;
  std::vector<int64_t> rows_, order_;
  int64_t batch_size_;
  bool shuffle_;
  uint64_t seed_;
  size_t cursor_ = 0;
};

}  // namespace

CsvDataModule::CsvDataModule(CsvDataOptions options) : options_(std::move(options)) {
  if (options_.path.empty()) throw std::invalid_argument("examples.CsvDataModule needs init_args.path");
  if (options_.batch_size < 1) throw std::invalid_argument("examples.CsvDataModule: batch_size must be >= 1");
  if (options_.validate_fraction < 0 || options_.test_fraction < 0 ||
      options_.validate_fraction + options_.test_fraction >= 1)
    throw std::invalid_argument("examples.CsvDataModule: validate_fraction + test_fraction must be in [0, 1)");
}

void CsvDataModule::prepare_data() {
  if (read_) return;
  std::ifstream in(options_.path);
  if (!in) throw std::runtime_error("cannot read '" + options_.path + "'");
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error("'" + options_.path + "' is empty (a header line is needed)");
  auto header = split_csv_line(line);
  auto target = std::find(header.begin(), header.end(), options_.target);
  if (target == header.end())
    throw std::runtime_error(fmt::format("'{}': no column '{}' (columns: {})", options_.path, options_.target,
                                         fmt::join(header, ", ")));
  size_t target_column = static_cast<size_t>(target - header.begin());
  std::vector<float> features;
  std::vector<int64_t> labels;
  for (int64_t line_number = 2; std::getline(in, line); ++line_number) {
    if (line.empty() || line == "\r") continue;
    auto cells = split_csv_line(line);
    if (cells.size() != header.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, the header has {}", options_.path, line_number,
                                           cells.size(), header.size()));
    for (size_t c = 0; c < cells.size(); ++c) {
      double value;
      try {
        size_t used = 0;
        value = std::stod(cells[c], &used);
        if (used != cells[c].size()) throw std::invalid_argument("trailing text");
      } catch (const std::exception&) {
        throw std::runtime_error(
            fmt::format("{}:{}: column '{}': '{}' is not a number", options_.path, line_number, header[c], cells[c]));
      }
      if (c == target_column) {
        if (value < 0 || value != std::floor(value))
          throw std::runtime_error(fmt::format("{}:{}: column '{}': a class index (0, 1, ...) is needed, got {}",
                                               options_.path, line_number, header[c], cells[c]));
        labels.push_back(static_cast<int64_t>(value));
      } else {
        features.push_back(static_cast<float>(value));
      }
    }
  }
  int64_t n = static_cast<int64_t>(labels.size());
  if (n < 3) throw std::runtime_error("'" + options_.path + "' needs at least 3 rows");
  int64_t width = static_cast<int64_t>(header.size()) - 1;
  features_ = torch::tensor(features).reshape({n, width});
  labels_ = torch::tensor(labels, torch::kLong);
  num_classes_ = *std::max_element(labels.begin(), labels.end()) + 1;
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(options_.seed));
  auto n_validate = static_cast<int64_t>(n * options_.validate_fraction);
  auto n_test = static_cast<int64_t>(n * options_.test_fraction);
  validate_.assign(order.begin(), order.begin() + n_validate);
  test_.assign(order.begin() + n_validate, order.begin() + n_validate + n_test);
  train_.assign(order.begin() + n_validate + n_test, order.end());
  // Statistics of the training rows only, so validation and test stay unseen.
  auto train_rows = features_.index_select(0, torch::tensor(train_, torch::kLong));
  features_ = (features_ - train_rows.mean(0)) / train_rows.std(0).clamp_min(1e-6);
  read_ = true;
}

void CsvDataModule::setup(j2v::engine::Stage) { prepare_data(); }

std::shared_ptr<j2v::engine::DataLoader> CsvDataModule::loader(const std::vector<int64_t>& rows, bool shuffle) {
  return std::make_shared<TensorLoader>(features_, labels_, rows, options_.batch_size, shuffle, options_.seed);
}
std::shared_ptr<j2v::engine::DataLoader> CsvDataModule::train_dataloader() { return loader(train_, true); }
std::shared_ptr<j2v::engine::DataLoader> CsvDataModule::val_dataloader() {
  return validate_.empty() ? nullptr : loader(validate_, false);
}
std::shared_ptr<j2v::engine::DataLoader> CsvDataModule::test_dataloader() {
  return test_.empty() ? nullptr : loader(test_, false);
}
std::shared_ptr<j2v::engine::DataLoader> CsvDataModule::predict_dataloader() { return loader(test_, false); }

int64_t CsvDataModule::num_features() {
  prepare_data();
  return features_.size(1);
}
int64_t CsvDataModule::num_classes() {
  prepare_data();
  return num_classes_;
}
std::vector<double> CsvDataModule::class_weights() {
  prepare_data();
  std::vector<double> counts(num_classes_, 0.0);
  for (int64_t row : train_) counts[labels_[row].item<int64_t>()] += 1;
  std::vector<double> weights;
  for (double c : counts) weights.push_back(static_cast<double>(train_.size()) / (num_classes_ * std::max(c, 1.0)));
  return weights;
}

nlohmann::json CsvDataModule::property(const std::string& name) {
  if (name == "num_features") return num_features();
  if (name == "num_classes") return num_classes();
  if (name == "class_weights") return class_weights();
  return DataModule::property(name + "' (it has num_features, num_classes, class_weights; asked for '" + name);
}

void register_csv_data_module() {
  j2v::engine::data_modules().add(
      {"examples.CsvDataModule", "numeric CSV rows: features and a class-index target column (examples/mlp_csv)",
       {{"path", nullptr}, {"target", "label"}, {"batch_size", 64}, {"validate_fraction", 0.2},
        {"test_fraction", 0.1}, {"seed", 0}},
       [](const nlohmann::json& a) -> std::shared_ptr<j2v::engine::DataModule> {
         CsvDataOptions o;
         if (a["path"].is_null()) throw std::invalid_argument("examples.CsvDataModule needs init_args.path");
         o.path = a["path"].get<std::string>();
         o.target = a["target"].get<std::string>();
         o.batch_size = a["batch_size"].get<int64_t>();
         o.validate_fraction = a["validate_fraction"].get<double>();
         o.test_fraction = a["test_fraction"].get<double>();
         o.seed = a["seed"].get<uint64_t>();
         return std::make_shared<CsvDataModule>(o);
       },
       {"CsvDataModule"}});
}

}  // namespace examples
