// The Trainer's Lightning features, each on small hand-written modules: interrupt and exact
// resume, hooks, manual optimization, precision, clipping, overfit_batches, validation
// intervals, determinism, the profiler, schedulers, callbacks and several loggers.
#include <gtest/gtest.h>

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "engine/callbacks/learning_rate_monitor.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/rollback_to_best.h"
#include "engine/callbacks/timer.h"
#include "engine/callbacks/weight_averaging.h"
#include "engine/checkpoint_io.h"
#include "engine/components.h"
#include "engine/profiler.h"
#include "engine/trainer.h"
#include "test_util.h"

namespace j2v::engine {
namespace {

namespace fs = std::filesystem;

struct ClassBatch : Batch {
  torch::Tensor x, y;
  int64_t size() const override { return x.size(0); }
};

// Two noisy Gaussian classes in 4 dimensions, reshuffled every epoch from (seed, epoch).
class ClassLoader : public DataLoader {
 public:
  // global_rng: shuffle with the process's generator, as many hand-written loaders do.
  ClassLoader(int64_t n, int64_t batch, uint64_t seed, bool shuffle, bool global_rng = false)
      : batch_(batch), seed_(seed), shuffle_(shuffle), global_rng_(global_rng) {
    auto gen = at::detail::createCPUGenerator(seed);
    y_ = torch::randint(0, 2, {n}, gen, torch::kLong);
    x_ = torch::randn({n, 4}, gen) + y_.unsqueeze(1).to(torch::kFloat32) * 1.5;
  }
  int64_t num_batches() const override { return (x_.size(0) + batch_ - 1) / batch_; }
  void start_epoch(int64_t epoch) override {
    if (shuffle_ && global_rng_) order_ = torch::randperm(x_.size(0), torch::kLong);
    else
      order_ = shuffle_ ? torch::randperm(x_.size(0), at::detail::createCPUGenerator(seed_ * 31 + epoch), torch::kLong)
                        : torch::arange(x_.size(0));
    cursor_ = 0;
  }
  std::shared_ptr<Batch> next() override {
    if (cursor_ >= x_.size(0)) return nullptr;
    int64_t n = std::min(batch_, x_.size(0) - cursor_);
    auto index = order_.narrow(0, cursor_, n);
    auto b = std::make_shared<ClassBatch>();
    b->x = x_.index_select(0, index);
    b->y = y_.index_select(0, index);
    cursor_ += n;
    return b;
  }

 private:
  int64_t batch_, cursor_ = 0;
  uint64_t seed_;
  bool shuffle_, global_rng_;
  torch::Tensor x_, y_, order_;
};

class ClassData : public DataModule {
 public:
  explicit ClassData(bool global_rng = false) : global_rng_(global_rng) {}
  std::shared_ptr<DataLoader> train_dataloader() override {
    return std::make_shared<ClassLoader>(512, 32, 1, true, global_rng_);
  }
  std::shared_ptr<DataLoader> val_dataloader() override { return std::make_shared<ClassLoader>(128, 64, 2, false); }

 private:
  bool global_rng_;
};

// An MLP with dropout, so an exact resume needs the random generator's state too.
class Classifier : public Module {
 public:
  Classifier() {
    net = register_module("net", torch::nn::Sequential(torch::nn::Linear(4, 16), torch::nn::ReLU(),
                                                        torch::nn::Dropout(0.2), torch::nn::Linear(16, 2)));
  }
  torch::Tensor training_step(Batch& b, int64_t) override {
    auto& batch = batch_as<ClassBatch>(b);
    auto logits = net->forward(batch.x);
    train_dtypes.insert(logits.scalar_type());
    auto loss = torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), batch.y);
    log("loss/train", loss, LogOptions().step(true).epoch(true));
    ++training_steps;
    if (deterministic_seen.empty()) deterministic_seen.push_back(at::globalContext().deterministicAlgorithms());
    seen_first_rows.push_back(batch.x[0][0].item<double>());
    return loss;
  }
  void validation_step(Batch& b, int64_t) override {
    auto& batch = batch_as<ClassBatch>(b);
    auto logits = net->forward(batch.x);
    val_dtypes.insert(logits.scalar_type());
    log("loss/validate", torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), batch.y));
    log("accuracy/validate", logits.argmax(1).eq(batch.y).to(torch::kFloat32).mean());
    val_first_rows.push_back(batch.x[0][0].item<double>());
  }
  std::vector<OptimizerConfig> configure_optimizers() override {
    OptimizerConfig c;
    c.optimizer = std::make_shared<torch::optim::Adam>(parameters(), torch::optim::AdamOptions(learning_rate));
    c.scheduler = std::make_shared<StepScheduler>(*c.optimizer, 10, lr_decay);
    c.name = "Adam";
    return {c};
  }
  void on_before_optimizer_step(torch::optim::Optimizer&) override {
    double max_abs = 0, sq = 0;
    for (auto& p : parameters())
      if (p.grad().defined()) {
        max_abs = std::max(max_abs, p.grad().abs().max().item<double>());
        sq += p.grad().pow(2).sum().item<double>();
      }
    grad_max_abs = std::max(grad_max_abs, max_abs);
    grad_norm = std::max(grad_norm, std::sqrt(sq));
  }
  torch::nn::Sequential net{nullptr};
  double learning_rate = 0.01, lr_decay = 0.7;  // lr_decay: StepLR's gamma every 10 epochs
  int training_steps = 0;
  std::set<c10::ScalarType> train_dtypes, val_dtypes;
  std::vector<bool> deterministic_seen;
  std::vector<double> seen_first_rows, val_first_rows;
  double grad_max_abs = 0, grad_norm = 0;
};

TrainerOptions quiet(const fs::path& root) {
  return TrainerOptions().default_root_dir(root.string()).enable_progress_bar(false).seed(0).num_threads(1);
}

std::vector<torch::Tensor> weights_of(Module& m) {
  std::vector<torch::Tensor> out;
  for (auto& p : m.parameters()) out.push_back(p.detach().clone());
  return out;
}

// Sends the process SIGTERM in the middle of an epoch, as a scheduler preempting the job would.
class SignalAt : public Callback {
 public:
  SignalAt(int64_t epoch, int64_t batch) : epoch_(epoch), batch_(batch) {}
  std::string state_key() const override { return "SignalAt"; }
  void on_train_batch_end(Trainer& t, Module&, const torch::Tensor&, Batch&, int64_t idx) override {
    if (!sent_ && t.current_epoch() == epoch_ && idx == batch_) {
      sent_ = true;
      std::raise(SIGTERM);
    }
  }

 private:
  int64_t epoch_, batch_;
  bool sent_ = false;
};

void expect_interrupted_run_resumes_to_the_same_run(bool loader_uses_global_rng) {
  auto root = j2v::testing::temp_dir("interrupt");
  auto options = [&](std::vector<std::shared_ptr<Callback>> extra) {
    extra.insert(extra.begin(), std::make_shared<WeightAveraging>(WeightAveragingOptions().decay(0.9)));
    return quiet(root).max_epochs(3).callbacks(extra);
  };
  // The uninterrupted run.
  torch::manual_seed(0);
  Classifier straight;
  ClassData data(loader_uses_global_rng);
  Trainer reference(options({}));
  reference.fit(straight, data);
  auto expected = reference.callback_metrics();
  auto expected_weights = weights_of(straight);

  // The same run, stopped by SIGTERM after batch 5 of epoch 1, then resumed in a new Trainer.
  torch::manual_seed(0);
  Classifier first;
  Trainer interrupted(options({std::make_shared<SignalAt>(1, 5)}));
  interrupted.fit(first, data);
  EXPECT_EQ(interrupted.interrupted_by(), SIGTERM);
  ASSERT_FALSE(interrupted.interrupt_checkpoint().empty());
  EXPECT_EQ(interrupted.current_epoch(), 1);
  EXPECT_EQ(interrupted.global_step(), 16 + 6);
  CheckpointReader reader(interrupted.interrupt_checkpoint());
  EXPECT_EQ(reader.meta()["batch_in_epoch"], 6);

  torch::manual_seed(123);  // a different start: everything must come from the checkpoint
  Classifier resumed;
  Trainer second(options({}));
  second.fit(resumed, data, interrupted.interrupt_checkpoint());
  EXPECT_EQ(second.interrupted_by(), 0);
  EXPECT_EQ(second.global_step(), reference.global_step());
  auto got_weights = weights_of(resumed);
  ASSERT_EQ(got_weights.size(), expected_weights.size());
  for (size_t i = 0; i < got_weights.size(); ++i)
    EXPECT_TRUE(torch::allclose(got_weights[i], expected_weights[i], 1e-5, 1e-6)) << "parameter " << i;
  for (const char* key : {"loss/validate", "accuracy/validate", "loss/train_epoch"})
    EXPECT_NEAR(second.callback_metrics().at(key), expected.at(key), 1e-5) << key;
  fs::remove_all(root);
}

TEST(Trainer, SigtermMidEpochWritesACheckpointThatResumesToTheSameRun) {
  expect_interrupted_run_resumes_to_the_same_run(false);
}

// The loader shuffles with the process's generator: the resumed epoch must replay the same order.
TEST(Trainer, ResumingReplaysAnEpochShuffledByTheGlobalGenerator) { expect_interrupted_run_resumes_to_the_same_run(true); }

TEST(Trainer, MisconfigurationsAreRefusedWithTheReason) {
  auto root = j2v::testing::temp_dir("misconfig");
  ClassData data;
  Classifier module;
  auto a = std::make_shared<ModelCheckpoint>(), b = std::make_shared<ModelCheckpoint>();
  Trainer twice(quiet(root).max_epochs(1).callbacks({a, b}));
  try {
    twice.fit(module, data);
    FAIL() << "two callbacks with one state key must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ModelCheckpoint{loss/validate}"), std::string::npos) << e.what();
  }
  class Manual : public Classifier {
   public:
    Manual() { automatic_optimization = false; }
    std::shared_ptr<Module> replicate() override { return std::make_shared<Manual>(); }
  } manual;
  Trainer replicas(quiet(root).max_epochs(1).devices(2).enable_checkpointing(false));
  EXPECT_THROW(replicas.fit(manual, data), std::invalid_argument);
  // A strategy that cannot take the devices asked for, or one that does not exist, names the choices.
  try {
    Trainer one_device(quiet(root).strategy("single_device").devices(2));
    FAIL() << "single_device with two devices must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("trainer.devices is 2"), std::string::npos) << e.what();
  }
  try {
    Trainer unknown(quiet(root).strategy("ddp_spawn"));
    FAIL() << "an unknown strategy must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: auto, single_device, thread_replicas"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

class HookRecorder : public Classifier {
 public:
  std::vector<std::string> calls;
  void record(const std::string& name) {
    if (calls.empty() || calls.back() != name) calls.push_back(name);
  }
  void setup(Stage s) override { record(std::string("setup:") + stage_name(s)); }
  void teardown(Stage s) override { record(std::string("teardown:") + stage_name(s)); }
  void on_fit_start() override { record("on_fit_start"); }
  void on_train_start() override { record("on_train_start"); }
  void on_train_epoch_start() override { record("on_train_epoch_start"); }
  void on_train_batch_start(Batch&, int64_t) override { record("on_train_batch_start"); }
  void on_before_backward(const torch::Tensor&) override { record("on_before_backward"); }
  void on_after_backward() override { record("on_after_backward"); }
  void on_before_optimizer_step(torch::optim::Optimizer&) override { record("on_before_optimizer_step"); }
  void on_before_zero_grad(torch::optim::Optimizer&) override { record("on_before_zero_grad"); }
  void on_train_batch_end(const torch::Tensor&, Batch&, int64_t) override { record("on_train_batch_end"); }
  void on_train_epoch_end() override { record("on_train_epoch_end"); }
  void on_validation_start() override { record("on_validation_start"); }
  void on_validation_epoch_start() override { record("on_validation_epoch_start"); }
  void on_validation_epoch_end() override { record("on_validation_epoch_end"); }
  void on_validation_end() override { record("on_validation_end"); }
  void on_train_end() override { record("on_train_end"); }
  void on_fit_end() override { record("on_fit_end"); }
};

TEST(Trainer, HooksRunInLightningsOrder) {
  auto root = j2v::testing::temp_dir("hooks");
  HookRecorder module;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(1).limit_train_batches(BatchLimit::count(1)).enable_checkpointing(false));
  trainer.fit(module, data);
  std::vector<std::string> expected = {
      "setup:fit",           "on_fit_start",         "on_train_start",           "on_train_epoch_start",
      "on_train_batch_start", "on_before_zero_grad", "on_before_backward",       "on_after_backward",
      "on_before_optimizer_step", "on_train_batch_end", "on_validation_start",   "on_validation_epoch_start",
      "on_validation_epoch_end", "on_validation_end", "on_train_epoch_end",      "on_train_end",
      "on_fit_end",          "teardown:fit"};
  EXPECT_EQ(module.calls, expected);
  fs::remove_all(root);
}

// Two networks, each with its own optimizer, stepped by the module (a GAN's shape).
class TwoOptimizers : public Module {
 public:
  TwoOptimizers() {
    automatic_optimization = false;
    a = register_module("a", torch::nn::Linear(4, 1));
    b = register_module("b", torch::nn::Linear(4, 1));
  }
  torch::Tensor training_step(Batch& raw, int64_t) override {
    auto& batch = batch_as<ClassBatch>(raw);
    auto target = batch.y.to(torch::kFloat32).unsqueeze(1);
    auto opts = optimizers();
    opts[0]->zero_grad();
    auto loss_a = torch::mse_loss(a(batch.x), target);
    manual_backward(loss_a);
    optimizer_step(0);
    opts[1]->zero_grad();
    auto loss_b = torch::mse_loss(b(batch.x), 1 - target);
    manual_backward(loss_b);
    optimizer_step(1);
    ++backwards;
    return loss_a.detach() + loss_b.detach();
  }
  void on_before_backward(const torch::Tensor&) override { ++before_backward; }
  std::vector<OptimizerConfig> configure_optimizers() override {
    OptimizerConfig first, second;
    first.optimizer = std::make_shared<torch::optim::SGD>(a->parameters(), torch::optim::SGDOptions(0.05));
    second.optimizer = std::make_shared<torch::optim::Adam>(b->parameters(), torch::optim::AdamOptions(0.01));
    return {first, second};
  }
  torch::nn::Linear a{nullptr}, b{nullptr};
  int backwards = 0, before_backward = 0;
};

TEST(Trainer, ManualOptimizationStepsSeveralOptimizers) {
  auto root = j2v::testing::temp_dir("manual");
  TwoOptimizers module;
  auto a0 = module.a->weight.detach().clone(), b0 = module.b->weight.detach().clone();
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(2).enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_EQ(module.backwards, 32);
  EXPECT_EQ(module.before_backward, 64);           // manual_backward runs the backward hooks
  EXPECT_EQ(trainer.global_step(), 64);            // every optimizer step counts, as in Lightning
  EXPECT_FALSE(torch::equal(module.a->weight, a0));
  EXPECT_FALSE(torch::equal(module.b->weight, b0));
  fs::remove_all(root);
}

TEST(Trainer, Bf16MixedRunsStepsUnderAutocastAndStillLearns) {
  auto root = j2v::testing::temp_dir("bf16");
  Classifier mixed;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(4).precision("bf16-mixed").enable_checkpointing(false));
  trainer.fit(mixed, data);
  EXPECT_EQ(mixed.train_dtypes, std::set<c10::ScalarType>{torch::kBFloat16});
  EXPECT_EQ(mixed.val_dtypes, std::set<c10::ScalarType>{torch::kBFloat16});
  EXPECT_EQ(mixed.net->parameters()[0].scalar_type(), torch::kFloat32);  // weights stay float32
  // Unseeded, so each run differs: 0.875-0.94 over 20 runs, 0.844 once beside another test;
  // a model that did not learn would score about 0.5.
  EXPECT_GT(trainer.callback_metrics().at("accuracy/validate"), 0.8);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  EXPECT_FALSE(at::autocast::is_autocast_enabled(at::kCPU));  // nothing leaks out of the steps
#else
  EXPECT_FALSE(at::autocast::is_cpu_enabled());
#endif

  Classifier full;
  Trainer plain(quiet(root).max_epochs(1).enable_checkpointing(false));
  plain.fit(full, data);
  EXPECT_EQ(full.train_dtypes, std::set<c10::ScalarType>{torch::kFloat32});
  EXPECT_THROW(Trainer(TrainerOptions().precision("fp8")), std::invalid_argument);
  fs::remove_all(root);
}

TEST(Trainer, Float32MatmulPrecisionMediumStillLearnsAndIsRefusedWhenUnknown) {
  auto root = j2v::testing::temp_dir("matmul_precision");
  Classifier net;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(4).float32_matmul_precision("medium").enable_checkpointing(false));
  trainer.fit(net, data);
  EXPECT_EQ(net.train_dtypes, std::set<c10::ScalarType>{torch::kFloat32});  // activations stay float32
  // A model that did not learn would score about 0.5 (float32: 0.875-0.94 unseeded).
  EXPECT_GT(trainer.callback_metrics().at("accuracy/validate"), 0.8);
  auto a = torch::randn({512, 64}), b = torch::randn({64, 128});
  auto exact = torch::mm(a.to(torch::kFloat64), b.to(torch::kFloat64)).to(torch::kFloat32);
#ifdef J2V_ONEDNN_SGEMM
  // The setting is the process's, as torch's: after the run, products still round to bfloat16.
  if (__builtin_cpu_supports("avx512bf16")) EXPECT_FALSE(torch::allclose(torch::mm(a, b), exact, 1e-5, 1e-5));
#endif
  // The next run at the default multiplies in float32 again: exactly LibTorch's float product.
  Classifier plain_net;
  Trainer plain(quiet(root).max_epochs(1).enable_checkpointing(false));
  plain.fit(plain_net, data);
  EXPECT_TRUE(torch::allclose(torch::mm(a, b), exact, 1e-5, 1e-5));
  try {
    Trainer(TrainerOptions().float32_matmul_precision("low"));
    FAIL() << "an unknown float32_matmul_precision was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("float32_matmul_precision"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("medium"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

// Plain SGD with lr 1 and no dropout: each step moves the weights by exactly the (clipped)
// gradient, so the clipping shows in the update; on_before_optimizer_step sees the raw one.
class ClipProbe : public Classifier {
 public:
  ClipProbe() { net->ptr(2)->as<torch::nn::Dropout>()->options.p(0.0); }
  std::vector<OptimizerConfig> configure_optimizers() override {
    OptimizerConfig c;
    c.optimizer = std::make_shared<torch::optim::SGD>(parameters(), torch::optim::SGDOptions(1.0));
    return {c};
  }
  void on_train_batch_start(Batch&, int64_t) override { before = weights(); }
  void on_train_batch_end(const torch::Tensor&, Batch&, int64_t) override {
    auto after = weights();
    auto delta = after - before;
    update_max_abs = std::max(update_max_abs, delta.abs().max().item<double>());
    update_norm = std::max(update_norm, delta.norm().item<double>());
  }
  torch::Tensor weights() {
    std::vector<torch::Tensor> flat;
    for (auto& p : parameters()) flat.push_back(p.detach().flatten().clone());
    return torch::cat(flat);
  }
  torch::Tensor before;
  double update_max_abs = 0, update_norm = 0;
};

TEST(Trainer, GradientsAreClippedByValueOrByNorm) {
  auto root = j2v::testing::temp_dir("clip");
  ClassData data;
  ClipProbe by_value;
  Trainer t1(quiet(root).max_epochs(1).gradient_clip_val(0.001).gradient_clip_algorithm("value").enable_checkpointing(false));
  t1.fit(by_value, data);
  EXPECT_LE(by_value.update_max_abs, 0.001 + 1e-6);
  EXPECT_GT(by_value.grad_max_abs, 0.01);  // the hook saw the gradients before clipping, as in Lightning
  ClipProbe by_norm;
  Trainer t2(quiet(root).max_epochs(1).gradient_clip_val(0.01).gradient_clip_algorithm("norm").enable_checkpointing(false));
  t2.fit(by_norm, data);
  EXPECT_LE(by_norm.update_norm, 0.01 * 1.001);
  EXPECT_GT(by_norm.update_max_abs, 0.001);  // clipping by norm keeps the direction, not each value
  EXPECT_THROW(Trainer(TrainerOptions().gradient_clip_algorithm("max")), std::invalid_argument);
  fs::remove_all(root);
}

TEST(Trainer, OverfitBatchesTrainsAndValidatesOnTheSameFewBatches) {
  auto root = j2v::testing::temp_dir("overfit");
  Classifier module;
  // A steady learning rate, so memorising 64 rows doesn't hinge on the last few steps.
  module.learning_rate = 0.03;
  module.lr_decay = 1.0;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(150).overfit_batches(BatchLimit::count(2)).enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_EQ(module.training_steps, 300);
  // Every epoch trains on the same two batches, and validation sees those batches.
  std::set<double> train_rows(module.seen_first_rows.begin(), module.seen_first_rows.end());
  std::set<double> val_rows(module.val_first_rows.begin(), module.val_first_rows.end());
  EXPECT_EQ(train_rows.size(), 2u);
  EXPECT_EQ(train_rows, val_rows);
  // Memorised: the classes overlap (the best rule for fresh rows errs on about 7% of them, at
  // a cross-entropy near 0.17), so only rows seen in training can be this well fitted.
  EXPECT_GT(trainer.callback_metrics().at("accuracy/validate"), 0.98);
  EXPECT_LT(trainer.callback_metrics().at("loss/validate"), 0.05);
  // Validating inside the epoch reads the same batches without using up the training loop's.
  Classifier checked;
  Trainer twice(quiet(root).max_epochs(3).overfit_batches(BatchLimit::count(2)).val_check_interval(BatchLimit::count(1))
                    .enable_checkpointing(false));
  twice.fit(checked, data);
  EXPECT_EQ(checked.training_steps, 6);
  fs::remove_all(root);
}

TEST(Trainer, ValidationRunsInsideEpochsAndEveryNEpochs) {
  auto root = j2v::testing::temp_dir("valcheck");
  ClassData data;
  HookRecorder quarter;
  Trainer t1(quiet(root).max_epochs(2).val_check_interval(BatchLimit::fraction(0.25)).enable_checkpointing(false));
  t1.fit(quarter, data);
  auto count = [](const std::vector<std::string>& calls, const std::string& name) {
    return std::count(calls.begin(), calls.end(), name);
  };
  EXPECT_EQ(count(quarter.calls, "on_validation_end"), 8);  // 16 batches: after 4, 8, 12 and 16, twice
  // A validation inside the epoch must not reset the epoch's training mean.
  EXPECT_TRUE(t1.callback_metrics().count("loss/train_epoch"));

  HookRecorder every_other;
  Trainer t2(quiet(root).max_epochs(4).check_val_every_n_epoch(2).enable_checkpointing(false));
  t2.fit(every_other, data);
  EXPECT_EQ(count(every_other.calls, "on_validation_end"), 2);

  HookRecorder by_count;
  Trainer t3(quiet(root).max_epochs(1).val_check_interval(BatchLimit::count(5)).enable_checkpointing(false));
  t3.fit(by_count, data);
  EXPECT_EQ(count(by_count.calls, "on_validation_end"), 4);  // after 5, 10, 15 and at the end
  fs::remove_all(root);
}

TEST(Trainer, DeterministicModeHoldsDuringSteps) {
  auto root = j2v::testing::temp_dir("deterministic");
  at::globalContext().setDeterministicAlgorithms(false, false);
  Classifier module;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(1).deterministic(true).enable_checkpointing(false));
  trainer.fit(module, data);
  ASSERT_FALSE(module.deterministic_seen.empty());
  EXPECT_TRUE(module.deterministic_seen[0]);
  at::globalContext().setDeterministicAlgorithms(false, false);
  fs::remove_all(root);
}

TEST(Trainer, SimpleProfilerTimesEveryStepAndWritesAReport) {
  auto root = j2v::testing::temp_dir("profiler");
  Classifier module;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(2).profiler("simple"));
  trainer.fit(module, data);
  const auto& stats = trainer.profiler().stats();
  EXPECT_EQ(stats.at("training_step").calls, 32);
  EXPECT_EQ(stats.at("backward").calls, 32);
  EXPECT_EQ(stats.at("optimizer_step").calls, 32);
  EXPECT_EQ(stats.at("validation_step").calls, 4);
  // One write per epoch: last.ckpt is a link to the epoch's ranked checkpoint, not a second write.
  EXPECT_EQ(stats.at("save_checkpoint").calls, 2);
  auto dir = fs::path(trainer.run_dir()) / "checkpoints";
  EXPECT_TRUE(fs::equivalent(dir / "last.ckpt", dir / "epoch=1-step=32.ckpt"));
  // The linked file holds the ranking as of its own epoch: the best named in it exists.
  CheckpointReader last((dir / "last.ckpt").string());
  for (const auto& [key, state] : last.meta()["callbacks"].items())
    if (key.rfind("ModelCheckpoint", 0) == 0) {
      EXPECT_EQ(state["best_model_path"], (dir / "epoch=1-step=32.ckpt").string());
      EXPECT_TRUE(fs::exists(state["best_model_path"].get<std::string>()));
    }
  std::ifstream report(fs::path(trainer.run_dir()) / "fit-profiler.txt");
  std::string text((std::istreambuf_iterator<char>(report)), {});
  EXPECT_NE(text.find("training_step"), std::string::npos);
  EXPECT_THROW(Trainer(TrainerOptions().profiler("advanced")), std::invalid_argument);
  fs::remove_all(root);
}

TEST(Trainer, OpsProfilerReportsOperatorsAndGemmWorkOfTrainingSteps) {
  auto root = j2v::testing::temp_dir("ops-profiler");
  Classifier module;
  ClassData data;
  Trainer trainer(quiet(root).max_epochs(2).profiler("ops"));
  trainer.fit(module, data);
  std::ifstream report(fs::path(trainer.run_dir()) / "fit-ops.txt");
  std::string text((std::istreambuf_iterator<char>(report)), {});
  // The linear layers' products, with their shapes; the steps of both epochs, not validation's.
  EXPECT_NE(text.find("aten::addmm ["), std::string::npos) << text;
  EXPECT_NE(text.find("over 32 training steps"), std::string::npos) << text;
  auto at = text.find("matrix multiplications: ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_GT(std::stod(text.substr(at + 24)), 0.0);
  fs::remove_all(root);
}

TEST(Trainer, DeviceSettingsItCannotHonourAreRefusedSayingWhy) {
  auto message = [](const TrainerOptions& options) {
    try {
      Trainer trainer(options);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  if (!torch::cuda::is_available())
    EXPECT_NE(message(TrainerOptions().accelerator("gpu")).find("no CUDA device"), std::string::npos);
  EXPECT_NE(message(TrainerOptions().num_nodes(2)).find("several machines need trainer.strategy ddp"), std::string::npos);
  EXPECT_NE(message(TrainerOptions().strategy("ddp").ddp_timeout_s(0)).find("ddp_timeout_s"), std::string::npos);
}

TEST(Scheduler, StepOneCycleAndPlateauMatchPyTorch) {
  auto p = torch::zeros({1}, torch::requires_grad());
  auto lr_of = [](torch::optim::Optimizer& o) { return o.param_groups()[0].options().get_lr(); };
  // Reference values from PyTorch 1.13 (StepLR, OneCycleLR with cycle_momentum=False, ReduceLROnPlateau).
  torch::optim::SGD o1({p}, torch::optim::SGDOptions(0.1));
  StepScheduler step(o1, 2, 0.5);
  for (double expected : {0.1, 0.1, 0.05, 0.05, 0.025, 0.025}) {
    EXPECT_NEAR(lr_of(o1), expected, 1e-12);
    step.step();
  }
  torch::optim::SGD o2({p}, torch::optim::SGDOptions(0.1));
  OneCycleScheduler cycle(o2, 0.1, 10, 0.3, 25, 1e4);
  for (double expected : {0.004, 0.052, 0.1, 0.0950484632, 0.0811745654, 0.0611262022, 0.0388741978, 0.0188258346,
                          0.0049519368, 4e-07}) {
    EXPECT_NEAR(lr_of(o2), expected, 1e-9);
    cycle.step();
  }
  torch::optim::SGD o3({p}, torch::optim::SGDOptions(0.1));
  ReduceOnPlateauScheduler plateau(o3, "min", 0.5, 1, 1e-4, 0, 0.0);
  std::vector<double> metric = {1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85};
  std::vector<double> expected = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025};
  for (size_t i = 0; i < metric.size(); ++i) {
    plateau.step(metric[i]);
    EXPECT_NEAR(lr_of(o3), expected[i], 1e-12) << i;
  }
  // Its state survives a checkpoint.
  torch::optim::SGD o4({p}, torch::optim::SGDOptions(0.1));
  ReduceOnPlateauScheduler restored(o4, "min", 0.5, 1, 1e-4, 0, 0.0);
  restored.load_state_dict(plateau.state_dict());
  EXPECT_NEAR(lr_of(o4), 0.025, 1e-12);
}

// ReduceLROnPlateau on a metric the module logs, through the registry as a config names it.
class PlateauClassifier : public Classifier {
 public:
  std::vector<OptimizerConfig> configure_optimizers() override {
    return {make_optimizer_config("torch.optim.SGD", {{"lr", 0.5}}, "ReduceLROnPlateau",
                                  {{"monitor", "accuracy/validate"}, {"mode", "max"}, {"patience", 0},
                                   {"factor", 0.5}, {"threshold", 10.0}},
                                  *this, *trainer())};
  }
};

TEST(Trainer, PlateauSchedulerFollowsTheMonitoredMetricAndLrMonitorLogsIt) {
  auto root = j2v::testing::temp_dir("plateau");
  PlateauClassifier module;
  ClassData data;
  auto monitor = std::make_shared<LearningRateMonitor>(LearningRateMonitorOptions().logging_interval("epoch"));
  Trainer trainer(quiet(root).max_epochs(4).callbacks({monitor}).enable_checkpointing(false));
  trainer.fit(module, data);
  // The threshold makes every epoch a non-improvement after the first: halved at epochs 2, 3, 4.
  EXPECT_NEAR(trainer.optimizers()[0].optimizer->param_groups()[0].options().get_lr(), 0.5 / 8, 1e-12);
  // The monitor's column: the rate at the start of each epoch.
  std::ifstream csv(fs::path(trainer.run_dir()) / "metrics.csv");
  std::string line;
  std::getline(csv, line);
  std::vector<std::string> header;
  for (std::stringstream in(line); std::getline(in, line, ',');) header.push_back(line);
  auto column = std::find(header.begin(), header.end(), "lr-SGD") - header.begin();
  ASSERT_LT(column, static_cast<long>(header.size()));
  std::vector<double> rates;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream in(line);
    for (std::string cell; std::getline(in, cell, ',');) cells.push_back(cell);
    if (column < static_cast<long>(cells.size()) && !cells[column].empty()) rates.push_back(std::stod(cells[column]));
  }
  EXPECT_EQ(rates, (std::vector<double>{0.5, 0.5, 0.25, 0.125}));

  // Validating every other epoch, the scheduler steps only on epochs that validated: once as
  // the first value, once halving (stepping on the stale value too would halve three times).
  PlateauClassifier sparse;
  Trainer every_other(quiet(root).max_epochs(4).check_val_every_n_epoch(2).enable_checkpointing(false));
  every_other.fit(sparse, data);
  EXPECT_NEAR(every_other.optimizers()[0].optimizer->param_groups()[0].options().get_lr(), 0.25, 1e-12);

  class Unlogged : public Classifier {
   public:
    std::vector<OptimizerConfig> configure_optimizers() override {
      return {make_optimizer_config("SGD", {{"lr", 0.1}}, "ReduceLROnPlateau", {{"monitor", "no/such"}}, *this,
                                    *trainer())};
    }
  } unlogged;
  Trainer failing(quiet(root).max_epochs(1).enable_checkpointing(false));
  try {
    failing.fit(unlogged, data);
    FAIL() << "a monitor that is never logged must be an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'no/such'"), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

class SlowClassifier : public Classifier {
 public:
  torch::Tensor training_step(Batch& b, int64_t i) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return Classifier::training_step(b, i);
  }
};

TEST(Trainer, TimerStopsWhenTheBudgetIsSpent) {
  auto root = j2v::testing::temp_dir("timer");
  SlowClassifier module;
  ClassData data;
  auto timer = std::make_shared<Timer>(TimerOptions().duration_seconds(0.2));
  Trainer trainer(quiet(root).max_epochs(100).callbacks({timer}).enable_checkpointing(false));
  trainer.fit(module, data);
  EXPECT_LT(module.training_steps, 16);  // stopped inside the first epoch (20 ms a step)
  EXPECT_GT(module.training_steps, 0);
  EXPECT_GE(timer->elapsed_seconds(), 0.2);
  EXPECT_DOUBLE_EQ(parse_duration("00:01:02:03"), 3723);
  EXPECT_DOUBLE_EQ(parse_duration("90"), 90);
  EXPECT_THROW(parse_duration("1:xx"), std::invalid_argument);
  fs::remove_all(root);
}

TEST(Trainer, RollbackToBestPutsTheBestCheckpointsWeightsBack) {
  auto root = j2v::testing::temp_dir("rollback");
  Classifier module;
  ClassData data;
  // Ranked by the epoch number, lowest first: the best checkpoint is the first epoch's.
  auto checkpoint = std::make_shared<ModelCheckpoint>(ModelCheckpointOptions().monitor("epoch_index").mode("min"));
  class EpochIndex : public Callback {
   public:
    std::string state_key() const override { return "EpochIndex"; }
    void on_validation_end(Trainer& t, Module& m) override {
      m.log("epoch_index", static_cast<double>(t.current_epoch()), LogOptions().epoch(false).step(true));
    }
  };
  auto rollback = std::make_shared<RollbackToBest>();
  Trainer trainer(quiet(root).max_epochs(3).callbacks({std::make_shared<EpochIndex>(), checkpoint, rollback}));
  trainer.fit(module, data);
  ASSERT_NE(checkpoint->best_model_path().find("epoch=0"), std::string::npos) << checkpoint->best_model_path();
  EXPECT_EQ(rollback->restored_path(), checkpoint->best_model_path());
  Classifier best;
  Trainer loader(quiet(root));
  loader.load_weights(checkpoint->best_model_path(), best);
  auto want = weights_of(best), got = weights_of(module);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(torch::equal(want[i], got[i]));
  fs::remove_all(root);
}

TEST(Trainer, SeveralLoggersAtOnceAndTheConfigInEveryCheckpoint) {
  auto root = j2v::testing::temp_dir("loggers");
  Classifier module;
  ClassData data;
  auto csv = loggers().make("CSVLogger", nlohmann::json::object());
  auto tensorboard = loggers().make("lightning.pytorch.loggers.TensorBoardLogger", nlohmann::json::object());
  nlohmann::json config = {{"model", {{"class_path", "Classifier"}}}};
  Trainer trainer(quiet(root).max_epochs(2).loggers({csv, tensorboard}).config(config));
  trainer.fit(module, data);
  bool has_csv = fs::exists(fs::path(trainer.run_dir()) / "metrics.csv"), has_events = false;
  for (const auto& entry : fs::directory_iterator(trainer.run_dir()))
    if (entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0 && fs::file_size(entry.path()) > 100)
      has_events = true;
  EXPECT_TRUE(has_csv);
  EXPECT_TRUE(has_events);
  CheckpointReader reader(fs::path(trainer.run_dir()) / "checkpoints" / "last.ckpt");
  EXPECT_EQ(reader.meta()["config"], config);
  fs::remove_all(root);
}

TEST(Components, RegistriesCheckAndCompleteInitArgs) {
  auto args = optimizers().complete("torch.optim.AdamW", {{"lr", 0.5}}, "optimizer.init_args");
  EXPECT_EQ(args["lr"], 0.5);
  EXPECT_EQ(args["weight_decay"], 0.01);  // default filled in
  EXPECT_EQ(optimizers().complete("adamw", {{"lr", 1}}, "x")["lr"], 1.0);  // an int where a float goes
  try {
    callbacks().complete("EarlyStopping", {{"patients", 3}}, "trainer.callbacks[0].init_args");
    FAIL();
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("trainer.callbacks[0].init_args.patients"), std::string::npos) << what;
    EXPECT_NE(what.find("patience"), std::string::npos) << what;
  }
  try {
    schedulers().complete("StepLR", {{"gamma", "fast"}}, "lr_scheduler.init_args");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("expected a number"), std::string::npos) << e.what();
  }
  try {
    callbacks().find("EarlyStoping");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("EarlyStopping"), std::string::npos) << e.what();
  }
  // A program's own component, registered by name.
  modules().add({"test.Classifier", "", nlohmann::json::object(),
                 [](const nlohmann::json&) -> std::shared_ptr<Module> { return std::make_shared<Classifier>(); }});
  EXPECT_NE(dynamic_cast<Classifier*>(modules().make("test.Classifier", nullptr).get()), nullptr);
}

}  // namespace
}  // namespace j2v::engine
