// The engine drives any Module: these tests use a hand-written linear regression, not
// json2vec's model.
#include <gtest/gtest.h>

#include <fstream>
#include <mutex>

#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/progress_bar.h"
#include "engine/callbacks/weight_averaging.h"
#include "engine/checkpoint_io.h"
#include "engine/trainer.h"
#include "test_util.h"

namespace j2v::engine {
namespace {

struct XYBatch : Batch {
  torch::Tensor x, y;
  int64_t size() const override { return x.size(0); }
  std::vector<std::shared_ptr<Batch>> split(int64_t parts) const override {
    std::vector<std::shared_ptr<Batch>> out;
    for (int64_t p = 0, begin = 0; p < parts; ++p) {
      int64_t end = begin + (size() - begin) / (parts - p);
      auto share = std::make_shared<XYBatch>();
      share->x = x.narrow(0, begin, end - begin);
      share->y = y.narrow(0, begin, end - begin);
      out.push_back(share);
      begin = end;
    }
    return out;
  }
};

// y = 3x - 1 + noise, served in fixed batches.
class XYLoader : public DataLoader {
 public:
  XYLoader(int64_t n, int64_t batch, uint64_t seed) : batch_(batch) {
    auto gen = at::detail::createCPUGenerator(seed);
    x_ = torch::randn({n, 1}, gen);
    y_ = 3 * x_ - 1 + 0.01 * torch::randn({n, 1}, gen);
  }
  int64_t num_batches() const override { return (x_.size(0) + batch_ - 1) / batch_; }
  void start_epoch(int64_t) override { cursor_ = 0; }
  std::shared_ptr<Batch> next() override {
    if (cursor_ >= x_.size(0)) return nullptr;
    int64_t n = std::min(batch_, x_.size(0) - cursor_);
    auto b = std::make_shared<XYBatch>();
    b->x = x_.narrow(0, cursor_, n);
    b->y = y_.narrow(0, cursor_, n);
    cursor_ += n;
    return b;
  }

 private:
  int64_t batch_, cursor_ = 0;
  torch::Tensor x_, y_;
};

class XYData : public DataModule {
 public:
  std::vector<std::string> calls;
  void prepare_data() override { calls.push_back("prepare_data"); }
  void setup(Stage stage) override { calls.push_back(std::string("setup:") + stage_name(stage)); }
  std::shared_ptr<DataLoader> train_dataloader() override { return std::make_shared<XYLoader>(256, 32, 1); }
  std::shared_ptr<DataLoader> val_dataloader() override { return std::make_shared<XYLoader>(64, 32, 2); }
  std::shared_ptr<DataLoader> test_dataloader() override { return std::make_shared<XYLoader>(64, 32, 3); }
  std::shared_ptr<DataLoader> predict_dataloader() override { return std::make_shared<XYLoader>(10, 4, 4); }
};

class LinearModule : public Module {
 public:
  explicit LinearModule(double lr = 0.1) : lr_(lr) {
    linear = register_module("linear", torch::nn::Linear(1, 1));
    save_hyperparameters({{"lr", lr}});
  }
  torch::Tensor training_step(Batch& b, int64_t) override {
    auto& batch = batch_as<XYBatch>(b);
    auto loss = torch::mse_loss(linear(batch.x), batch.y);
    log("train_loss", loss, LogOptions().step(true).epoch(true));
    return loss;
  }
  void validation_step(Batch& b, int64_t) override {
    auto& batch = batch_as<XYBatch>(b);
    log("val_loss", torch::mse_loss(linear(batch.x), batch.y));
    log("val_max", 1.0 * trainer()->batch_index(), LogOptions().reduce("max"));
  }
  void test_step(Batch& b, int64_t) override {
    auto& batch = batch_as<XYBatch>(b);
    log("test_loss", torch::mse_loss(linear(batch.x), batch.y));
  }
  nlohmann::json predict_step(Batch& b, int64_t) override {
    auto& batch = batch_as<XYBatch>(b);
    auto y = linear(batch.x).contiguous();
    nlohmann::json rows = nlohmann::json::array();
    for (int64_t i = 0; i < y.size(0); ++i) rows.push_back({{"y", y[i][0].item<double>()}});
    return rows;
  }
  std::vector<OptimizerConfig> configure_optimizers() override {
    OptimizerConfig c;
    c.optimizer = std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(lr_));
    return {c};
  }
  std::shared_ptr<Module> replicate() override { return std::make_shared<LinearModule>(lr_); }
  void on_fit_start() override { hooks.push_back("on_fit_start"); }
  void on_train_epoch_start() override { hooks.push_back("on_train_epoch_start"); }
  void on_train_epoch_end() override { hooks.push_back("on_train_epoch_end"); }
  void on_validation_epoch_end() override { hooks.push_back("on_validation_epoch_end"); }
  void on_before_backward(const torch::Tensor&) override { ++backward_calls; }
  void on_fit_end() override { hooks.push_back("on_fit_end"); }
  void on_save_checkpoint(nlohmann::json& c) override { c["custom"] = 42; }
  void on_load_checkpoint(const nlohmann::json& c) override { loaded_custom = c.value("custom", 0); }

  torch::nn::Linear linear{nullptr};
  std::vector<std::string> hooks;
  int backward_calls = 0;
  int loaded_custom = 0;

 private:
  double lr_;
};

// One batch (32 rows of y = 3x - 1), `times` times an epoch: identical batches for every
// replica and micro-step, so data-parallel steps can be compared with one device's.
class RepeatedBatch : public DataLoader {
 public:
  explicit RepeatedBatch(int times) : times_(times) {}
  int64_t num_batches() const override { return times_; }
  void start_epoch(int64_t) override { served_ = 0; }
  std::shared_ptr<Batch> next() override {
    if (served_++ >= times_) return nullptr;
    inner_.start_epoch(0);
    return inner_.next();
  }

 private:
  XYLoader inner_{32, 32, 9};
  int times_, served_ = 0;
};

class RepeatedData : public DataModule {
 public:
  explicit RepeatedData(int times) : times_(times) {}
  std::shared_ptr<DataLoader> train_dataloader() override { return std::make_shared<RepeatedBatch>(times_); }

 private:
  int times_;
};

TrainerOptions quiet(const std::filesystem::path& root) {
  return TrainerOptions().default_root_dir(root.string()).enable_progress_bar(false).seed(0).num_threads(1);
}

TEST(Trainer, FitsAHandWrittenModuleAndRunsHooksInOrder) {
  auto root = testing::temp_dir("engine_fit");
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(2));
  trainer.fit(module, data);
  EXPECT_EQ(data.calls, (std::vector<std::string>{"prepare_data", "setup:fit"}));
  // Lightning's order: the epoch's validation runs before on_train_epoch_end.
  EXPECT_EQ(module.hooks, (std::vector<std::string>{"on_fit_start", "on_train_epoch_start", "on_validation_epoch_end",
                                                    "on_train_epoch_end", "on_train_epoch_start",
                                                    "on_validation_epoch_end", "on_train_epoch_end", "on_fit_end"}));
  EXPECT_EQ(trainer.global_step(), 16);  // 256 / 32 batches x 2 epochs
  EXPECT_EQ(module.backward_calls, 16);
  auto metrics = trainer.callback_metrics();
  EXPECT_LT(metrics.at("val_loss"), 0.05);  // learned y = 3x - 1
  EXPECT_TRUE(metrics.count("train_loss_step") && metrics.count("train_loss_epoch"));
  EXPECT_DOUBLE_EQ(metrics.at("val_max"), 1.0);  // reduce_fx max over batch indices 0, 1
  auto test = trainer.test(module, data);
  EXPECT_LT(test.at("test_loss"), 0.05);
  auto rows = trainer.predict(module, data);
  ASSERT_EQ(rows.size(), 10u);
  std::filesystem::remove_all(root);
}

TEST(Trainer, CsvLoggerWritesEpochMetricsAndCheckpointsAreKeptByMonitor) {
  auto root = testing::temp_dir("engine_ckpt");
  LinearModule module;
  XYData data;
  auto checkpoint = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions().monitor("val_loss").save_top_k(2));
  Trainer trainer(quiet(root).max_epochs(4).callbacks({checkpoint}));
  trainer.fit(module, data);
  auto dir = std::filesystem::path(trainer.run_dir());
  int ckpts = 0;
  for (auto& e : std::filesystem::directory_iterator(dir / "checkpoints"))
    if (e.path().extension() == ".ckpt" && e.path().filename() != "last.ckpt") ++ckpts;
  EXPECT_EQ(ckpts, 2);
  EXPECT_TRUE(std::filesystem::exists(dir / "checkpoints" / "last.ckpt"));
  EXPECT_EQ(trainer.resolve_checkpoint("best"), std::filesystem::absolute(checkpoint->best_model_path()).string());
  std::ifstream csv(dir / "metrics.csv");
  std::string header;
  std::getline(csv, header);
  EXPECT_EQ(header.rfind("epoch,step,", 0), 0u) << header;
  EXPECT_NE(header.find("val_loss"), std::string::npos);
  std::filesystem::remove_all(root);
}

TEST(Trainer, ResumesFromTheLastCheckpointWithModuleState) {
  auto root = testing::temp_dir("engine_resume");
  {
    LinearModule module;
    XYData data;
    Trainer trainer(quiet(root).max_epochs(2));
    trainer.fit(module, data);
  }
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(3));
  trainer.fit(module, data, std::string("last"));
  EXPECT_EQ(module.loaded_custom, 42);
  EXPECT_EQ(trainer.current_epoch(), 3);
  EXPECT_EQ(trainer.global_step(), 24);  // 16 restored + 8 more
  EXPECT_EQ(std::count(module.hooks.begin(), module.hooks.end(), "on_train_epoch_start"), 1);
  std::filesystem::remove_all(root);
}

TEST(Trainer, EarlyStoppingStopsWhenTheMetricStallsAndLimitsApply) {
  auto root = testing::temp_dir("engine_es");
  LinearModule module(0.0);  // lr 0: the loss never improves
  XYData data;
  auto stop = std::make_shared<EarlyStopping>(EarlyStoppingOptions().monitor("val_loss").patience(2));
  Trainer trainer(quiet(root).max_epochs(50).callbacks({stop}).limit_train_batches(BatchLimit::count(3)));
  trainer.fit(module, data);
  EXPECT_EQ(trainer.current_epoch(), 3);  // best at epoch 0, then 2 epochs without improvement
  EXPECT_EQ(trainer.global_step(), 9);
  std::filesystem::remove_all(root);
}

// Lightning's min_epochs / min_steps: an early stop waits for them; max_epochs still ends the run.
TEST(Trainer, AnEarlyStopWaitsForMinEpochsAndMinSteps) {
  auto root = testing::temp_dir("engine_min");
  auto run = [&](TrainerOptions options) {
    LinearModule module(0.0);  // lr 0: the loss never improves
    XYData data;
    auto stop = std::make_shared<EarlyStopping>(EarlyStoppingOptions().monitor("val_loss").patience(2));
    Trainer trainer(options.callbacks({stop}).limit_train_batches(BatchLimit::count(3)).enable_checkpointing(false));
    trainer.fit(module, data);
    return std::pair{trainer.current_epoch(), trainer.global_step()};
  };
  EXPECT_EQ(run(quiet(root).max_epochs(50).min_epochs(7)), (std::pair<int64_t, int64_t>{7, 21}));
  EXPECT_EQ(run(quiet(root).max_epochs(50).min_steps(20)), (std::pair<int64_t, int64_t>{7, 21}));  // 3 steps an epoch
  EXPECT_EQ(run(quiet(root).max_epochs(5).min_steps(100)), (std::pair<int64_t, int64_t>{5, 15}));
  EXPECT_EQ(run(quiet(root).max_epochs(50).min_epochs(2)), (std::pair<int64_t, int64_t>{3, 9}));  // already met
  std::filesystem::remove_all(root);
}

TEST(Trainer, AccumulatesGradientsAndStopsAtMaxSteps) {
  auto root = testing::temp_dir("engine_acc");
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(10).accumulate_grad_batches(3).max_steps(5).enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_EQ(trainer.global_step(), 5);
  EXPECT_EQ(module.backward_calls, 14);  // 8 in epoch 0 (the last 2 as a partial step), 6 in epoch 1
  std::filesystem::remove_all(root);
}

// From the same initial weights, one device taking a batch once and `devices` replicas taking
// copies of it over `accumulate` micro-steps: the averaged, accumulated gradient is the same,
// and so is the one optimizer step.
void expect_data_parallel_step_equals_one_device(const std::filesystem::path& root, int devices, int accumulate) {
  torch::manual_seed(0);
  LinearModule one, many;
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < one.parameters().size(); ++i) many.parameters()[i].copy_(one.parameters()[i]);
  }
  RepeatedData once(1), copies(devices * accumulate);
  Trainer single(quiet(root).max_epochs(1).enable_checkpointing(false).logger(false));
  single.fit(one, once);
  Trainer parallel(quiet(root).max_epochs(1).devices(devices).accumulate_grad_batches(accumulate)
                       .enable_checkpointing(false).logger(false));
  parallel.fit(many, copies);
  EXPECT_EQ(parallel.global_step(), 1);
  for (size_t i = 0; i < one.parameters().size(); ++i)
    EXPECT_TRUE(torch::allclose(one.parameters()[i], many.parameters()[i], 1e-6, 1e-7)) << devices << "x" << accumulate;
}

TEST(Trainer, ThreadReplicasAverageGradientsLikeDdp) {
  auto root = testing::temp_dir("engine_replicas");
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(6).devices(2).enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_EQ(trainer.global_step(), 24);  // 8 batches an epoch, two per step
  EXPECT_LT(trainer.callback_metrics().at("val_loss"), 0.05);
  EXPECT_TRUE(trainer.callback_metrics().count("train_loss_epoch"));

  // With identical batches on both replicas, the averaged step equals a single-replica step.
  expect_data_parallel_step_equals_one_device(root, 2, 1);
  std::filesystem::remove_all(root);
}

// A replica that checks, at every step, that it computes with the module's current weights.
class WeightWitness : public LinearModule {
 public:
  explicit WeightWitness(LinearModule* main = nullptr) : main(main) {}
  torch::Tensor training_step(Batch& b, int64_t idx) override {
    if (main) {
      std::lock_guard<std::mutex> lock(mutex);
      ++steps;
      for (size_t i = 0; i < parameters().size(); ++i) {
        same_memory = same_memory && parameters()[i].data_ptr() == main->parameters()[i].data_ptr();
        same_values = same_values && torch::equal(parameters()[i], main->parameters()[i]);
      }
    }
    return LinearModule::training_step(b, idx);
  }
  std::shared_ptr<Module> replicate() override {
    auto replica = std::make_shared<WeightWitness>(this);
    replicas.push_back(replica);
    return replica;
  }
  LinearModule* main;
  std::mutex mutex;
  int steps = 0;
  bool same_memory = true, same_values = true;
  std::vector<std::shared_ptr<WeightWitness>> replicas;
};

TEST(Trainer, ThreadReplicasComputeWithTheModulesOwnWeightMemory) {
  // No copy after each optimizer step: a replica's parameters are the module's memory (with
  // gradients of their own), so every step sees the weights the last one left.
  auto root = testing::temp_dir("engine_shared_weights");
  WeightWitness module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(2).devices(2).enable_checkpointing(false).logger(false));
  trainer.fit(module, data);
  ASSERT_EQ(module.replicas.size(), 2u);
  for (auto& replica : module.replicas) {
    EXPECT_EQ(replica->steps, 8);
    EXPECT_TRUE(replica->same_memory);
    EXPECT_TRUE(replica->same_values);
  }
  std::filesystem::remove_all(root);
}

// Records the rows of every batch a training step gets, on the module or any of its replicas.
class ShareRecorder : public LinearModule {
 public:
  struct Log {
    std::mutex mutex;
    std::vector<int64_t> rows;
  };
  explicit ShareRecorder(std::shared_ptr<Log> log = std::make_shared<Log>()) : log(std::move(log)) {}
  torch::Tensor training_step(Batch& b, int64_t idx) override {
    {
      std::lock_guard<std::mutex> lock(log->mutex);
      log->rows.push_back(b.size());
    }
    return LinearModule::training_step(b, idx);
  }
  std::shared_ptr<Module> replicate() override { return std::make_shared<ShareRecorder>(log); }
  std::shared_ptr<Log> log;
};

TEST(Trainer, AutoOnTwoCoresSplitsEachBatchAcrossTwoReplicasAndStepsAsOneDevice) {
  auto root = testing::temp_dir("engine_auto_split");
  ShareRecorder one, split;
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < one.parameters().size(); ++i) split.parameters()[i].copy_(one.parameters()[i]);
  }
  XYData data_one, data_split;
  Trainer single(quiet(root).max_epochs(2).enable_checkpointing(false).logger(false));
  single.fit(one, data_one);
  Trainer two_cores(quiet(root).num_threads(2).max_epochs(2).enable_checkpointing(false).logger(false));
  two_cores.fit(split, data_split);
  // The batches of 32 ran as two shares of 16, one per replica; the steps are one device's
  // (8 an epoch), and the averaged gradient of two equal shares of a mean loss is the whole
  // batch's: the weights end where one thread's do, to rounding.
  EXPECT_EQ(one.log->rows, std::vector<int64_t>(16, 32));
  EXPECT_EQ(split.log->rows, std::vector<int64_t>(32, 16));
  EXPECT_EQ(two_cores.global_step(), 16);
  for (size_t i = 0; i < one.parameters().size(); ++i)
    EXPECT_TRUE(torch::allclose(one.parameters()[i], split.parameters()[i], 1e-5, 1e-6)) << i;
  EXPECT_NEAR(two_cores.callback_metrics().at("train_loss_epoch"), single.callback_metrics().at("train_loss_epoch"),
              1e-5);
  EXPECT_EQ(torch::get_num_threads(), 2) << "intra-op threads are given back after the fit";
  // single_device keeps every batch whole on the module.
  ShareRecorder whole;
  XYData data_whole;
  Trainer explicit_single(
      quiet(root).num_threads(2).strategy("single_device").max_epochs(1).enable_checkpointing(false).logger(false));
  explicit_single.fit(whole, data_whole);
  EXPECT_EQ(whole.log->rows, std::vector<int64_t>(8, 32));
  // A fit that fails mid-epoch gives the threads back too.
  class FailsAtStepThree : public ShareRecorder {
   public:
    torch::Tensor training_step(Batch& b, int64_t idx) override {
      if (idx == 3) throw std::runtime_error("bad batch");
      return ShareRecorder::training_step(b, idx);
    }
    std::shared_ptr<Module> replicate() override { return std::make_shared<FailsAtStepThree>(); }
  };
  FailsAtStepThree failing;
  XYData data_failing;
  Trainer failing_fit(quiet(root).num_threads(2).max_epochs(1).enable_checkpointing(false).logger(false));
  EXPECT_THROW(failing_fit.fit(failing, data_failing), std::runtime_error);
  EXPECT_EQ(torch::get_num_threads(), 2);
  std::filesystem::remove_all(root);
}

// Predicts 1,000 rows in batches of 7; batch `failing_batch` throws (none when negative).
class ManyBatchData : public DataModule {
 public:
  std::shared_ptr<DataLoader> predict_dataloader() override { return std::make_shared<XYLoader>(1000, 7, 5); }
};

class FailingPredictor : public LinearModule {
 public:
  explicit FailingPredictor(int64_t failing_batch) : failing_batch_(failing_batch) {}
  nlohmann::json predict_step(Batch& b, int64_t idx) override {
    if (idx == failing_batch_) throw std::runtime_error("batch " + std::to_string(idx) + " is bad");
    return LinearModule::predict_step(b, idx);
  }
  std::shared_ptr<Module> replicate() override { return std::make_shared<FailingPredictor>(failing_batch_); }

 private:
  int64_t failing_batch_;
};

// Prediction runs on a replica per thread (auto, several cores; or thread_replicas): the
// rows are those of the module itself, in input order, and the writer gets them in order.
TEST(Trainer, PredictionOnReplicasKeepsRowsAndTheirOrder) {
  auto root = testing::temp_dir("engine_predict_replicas");
  FailingPredictor module(-1);
  ManyBatchData data;
  auto alone = Trainer(quiet(root).strategy("single_device")).predict(module, data);
  ASSERT_EQ(alone.size(), 1000u);
  for (auto options : {quiet(root).num_threads(3), quiet(root).devices(2)}) {
    auto writer = std::make_shared<PredictionWriter>(
        PredictionWriterOptions().path((root / "out").string()).format("jsonl").flush_every_n_batches(3));
    Trainer trainer(options.callbacks({writer}));
    EXPECT_EQ(trainer.predict(module, data), alone);
    std::ifstream written(writer->output_path());
    std::string line;
    size_t i = 0;
    for (; std::getline(written, line); ++i) ASSERT_EQ(nlohmann::json::parse(line), alone[i]) << "row " << i;
    EXPECT_EQ(i, 1000u);
  }
  std::filesystem::remove_all(root);
}

// A failing predict_step on any replica stops the run with its error and leaves no output.
TEST(Trainer, AFailingPredictionStepStopsThePredictionAndWritesNothing) {
  auto root = testing::temp_dir("engine_predict_failure");
  ManyBatchData data;
  for (int64_t bad : {0, 57, 142}) {
    FailingPredictor module(bad);
    auto writer = std::make_shared<PredictionWriter>(
        PredictionWriterOptions().path((root / "out").string()).format("parquet").flush_every_n_batches(1));
    Trainer trainer(quiet(root).num_threads(2).callbacks({writer}));
    try {
      trainer.predict(module, data);
      ADD_FAILURE() << "batch " << bad << " should have failed";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "batch " + std::to_string(bad) + " is bad");
    }
    EXPECT_FALSE(std::filesystem::exists(writer->output_path()));
    if (std::filesystem::exists(root / "out"))
      for (const auto& entry : std::filesystem::directory_iterator(root / "out"))
        ADD_FAILURE() << "left behind: " << entry.path();
  }
  std::filesystem::remove_all(root);
}

// Records the weights after every optimizer step, to check the average against.
class StepRecorder : public Callback {
 public:
  std::string state_key() const override { return "StepRecorder"; }
  void on_train_batch_end(Trainer&, Module& m, const torch::Tensor&, Batch&, int64_t) override {
    std::vector<torch::Tensor> w;
    for (auto& p : m.parameters()) w.push_back(p.detach().clone());
    steps.push_back(w);
  }
  std::vector<std::vector<torch::Tensor>> steps;
};

TEST(Trainer, WeightAveragingLeavesTheMovingAverageInTheModel) {
  auto root = testing::temp_dir("engine_ema");
  LinearModule module;
  XYData data;
  std::vector<torch::Tensor> initial;
  for (auto& p : module.parameters()) initial.push_back(p.detach().clone());
  auto recorder = std::make_shared<StepRecorder>();
  auto ema = std::make_shared<WeightAveraging>(WeightAveragingOptions().decay(0.9));
  // The recorder runs first, so it sees the raw weights of every step.
  Trainer trainer(quiet(root).max_epochs(2).callbacks({recorder, ema}).enable_checkpointing(false));
  trainer.fit(module, data);
  ASSERT_EQ(recorder->steps.size(), 16u);
  std::vector<torch::Tensor> expected = initial;
  for (size_t n = 0; n < recorder->steps.size(); ++n) {
    double decay = std::min(0.9, (2.0 + n) / (11.0 + n));
    for (size_t i = 0; i < expected.size(); ++i) expected[i] = expected[i] * decay + recorder->steps[n][i] * (1 - decay);
  }
  auto params = module.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(params[i], expected[i], 1e-5, 1e-6));
    EXPECT_FALSE(torch::allclose(params[i], recorder->steps.back()[i]));  // not the last step's weights
  }
  std::filesystem::remove_all(root);
}

TEST(Trainer, WeightAveragingUpdatesOncePerOptimizerStepWithReplicasAndAccumulation) {
  // on_train_batch_end runs per batch (as in Lightning) on every strategy; the average moves
  // once per optimizer step: here 2 replicas x 4 accumulated micro-steps = 8 batches a step.
  class Counting : public LinearModule {
   public:
    void on_train_batch_end(const torch::Tensor&, Batch&, int64_t) override { ++batch_ends; }
    std::shared_ptr<Module> replicate() override { return std::make_shared<Counting>(); }
    int batch_ends = 0;
  };
  auto root = testing::temp_dir("engine_ema_steps");
  Counting module;
  XYData data;  // 8 batches an epoch
  auto ema = std::make_shared<WeightAveraging>(WeightAveragingOptions().decay(0.9));
  Trainer trainer(quiet(root).max_epochs(3).devices(2).accumulate_grad_batches(4).callbacks({ema})
                      .enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_EQ(trainer.global_step(), 3);
  EXPECT_EQ(ema->updates(), 3);
  EXPECT_EQ(module.batch_ends, 24);  // the module's hook runs on the replica strategy too
  EXPECT_EQ(module.backward_calls, 0);  // backward runs on the replicas, not on the main module
  std::filesystem::remove_all(root);
}

TEST(Trainer, ReplicasWithAccumulationStepLikeOneDeviceWithTheWholeBatch) {
  auto root = testing::temp_dir("engine_replica_acc");
  expect_data_parallel_step_equals_one_device(root, 2, 2);
  std::filesystem::remove_all(root);
}

TEST(Trainer, FastDevRunRunsOneBatchAndWritesNothing) {
  auto root = testing::temp_dir("engine_fdr");
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root / "runs").fast_dev_run(true));
  trainer.fit(module, data);
  EXPECT_EQ(trainer.global_step(), 1);
  EXPECT_FALSE(std::filesystem::exists(root / "runs"));
  std::filesystem::remove_all(root);
}

TEST(Checkpoint, AnUnreadableFileIsAClearError) {
  auto root = testing::temp_dir("engine_bad");
  auto path = root / "bad.ckpt";
  testing::write_lines(path, {"this is not a checkpoint"});
  try {
    CheckpointReader reader(path.string());
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("not a readable json2vec checkpoint"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CheckpointReader((root / "missing.ckpt").string()), CheckpointError);
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root));
  EXPECT_THROW(trainer.fit(module, data, path.string()), CheckpointError);
  std::filesystem::remove_all(root);
}

// A checkpoint whose bytes changed on disk (a flipped bit, a truncated copy) is refused on
// load, wherever the change is: tensors, the meta document, the zip records, the checksum.
TEST(Checkpoint, DamagedBytesAreRefusedWherever) {
  auto root = testing::temp_dir("engine_damaged");
  LinearModule module;
  XYData data;
  Trainer trainer(quiet(root).max_epochs(1));
  trainer.fit(module, data);
  auto path = (root / "version_0" / "checkpoints" / "last.ckpt").string();
  std::string good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_NO_THROW(CheckpointReader reader(path));
  auto damaged = (root / "damaged.ckpt").string();
  auto write = [&](const std::string& bytes) { std::ofstream(damaged, std::ios::binary) << bytes; };
  int refused = 0, variants = 0;
  for (size_t at = 0; at < good.size(); at += std::max<size_t>(good.size() / 97, 1)) {
    std::string bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    write(bytes);
    ++variants;
    try {
      CheckpointReader reader(damaged);
      ADD_FAILURE() << "a flipped byte at " << at << " of " << good.size() << " loaded";
    } catch (const CheckpointError&) {
      ++refused;
    }
  }
  write(good.substr(0, good.size() - 40));  // truncated
  EXPECT_THROW(CheckpointReader reader(damaged), CheckpointError);
  EXPECT_EQ(refused, variants);
  // The message says what happened.
  std::string bytes = good;
  bytes[good.size() / 2] = static_cast<char>(bytes[good.size() / 2] ^ 0x01);
  write(bytes);
  try {
    CheckpointReader reader(damaged);
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("is damaged"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(root);
}

TEST(Checkpoint, AFailedWriteLeavesThePreviousFileIntact) {
  auto root = testing::temp_dir("engine_atomic");
  auto path = root / "model.ckpt";
  CheckpointWriter good;
  good.meta = {{"n", 1}};
  good.write_module = [](torch::serialize::OutputArchive& a) { a.write("w", torch::ones({2})); };
  write_checkpoint_atomically(path.string(), good);
  CheckpointWriter failing = good;
  failing.meta = {{"n", 2}};
  failing.write_module = [](torch::serialize::OutputArchive&) { throw std::runtime_error("disk full"); };
  EXPECT_THROW(write_checkpoint_atomically(path.string(), failing), CheckpointError);
  CheckpointReader reader(path.string());
  EXPECT_EQ(reader.meta()["n"], 1);
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(root)) (void)e, ++files;
  EXPECT_EQ(files, 1);  // no temporary file left behind
  std::filesystem::remove_all(root);
}

TEST(Scheduler, WarmsUpLinearlyThenDecaysByCosine) {
  auto p = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD opt({p}, torch::optim::SGDOptions(1.0));
  WarmupCosineScheduler s(opt, 4, 104, 0.0);
  EXPECT_NEAR(s.current_lrs()[0], 0.2, 1e-9);
  for (int i = 0; i < 4; ++i) s.step();
  EXPECT_NEAR(s.current_lrs()[0], 1.0, 1e-9);
  for (int i = 0; i < 50; ++i) s.step();
  EXPECT_NEAR(s.current_lrs()[0], 0.5, 1e-9);
  for (int i = 0; i < 60; ++i) s.step();
  EXPECT_NEAR(s.current_lrs()[0], 0.0, 1e-9);
}

TEST(ProgressBar, RendersEpochBatchesAndMetrics) {
  auto line = ProgressBar::render(1, 10, 5, 10, 2.5, {{"loss/train", 0.25}}, 10);
  EXPECT_EQ(line, "epoch 2/10 [#####.....] 5/10 2.5s loss/train=0.25");
}

}  // namespace
}  // namespace j2v::engine
