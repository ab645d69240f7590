// Defaults declared once: what --help and --print_config show for a component is what the
// component built from an empty config holds.
#include <gtest/gtest.h>

#include "cli/config.h"
#include "engine/callbacks/early_stopping.h"
#include "engine/callbacks/learning_rate_monitor.h"
#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/prediction_writer.h"
#include "engine/callbacks/weight_averaging.h"
#include "data/streaming_data_module.h"
#include "data/table_data_module.h"
#include "engine/components.h"
#include "engine/scheduler.h"
#include "engine/trainer.h"
#include "model/model_options.h"

namespace j2v::engine {
namespace {

using json = nlohmann::json;

// The options a registered callback holds, as its declaration prints them; null for callbacks
// without declared options.
json held_options(Callback& callback) {
  if (auto* c = dynamic_cast<ModelCheckpoint*>(&callback)) return ModelCheckpointOptions::parameters().to_json(c->options());
  if (auto* c = dynamic_cast<EarlyStopping*>(&callback)) return EarlyStoppingOptions::parameters().to_json(c->options());
  if (auto* c = dynamic_cast<LearningRateMonitor*>(&callback))
    return LearningRateMonitorOptions::parameters().to_json(c->options());
  if (auto* c = dynamic_cast<WeightAveraging*>(&callback)) return WeightAveragingOptions::parameters().to_json(c->options());
  if (auto* c = dynamic_cast<PredictionWriter*>(&callback))
    return PredictionWriterOptions::parameters().to_json(c->options());
  return nullptr;
}

TEST(ComponentDefaults, EveryCallbackHoldsTheDefaultsItsRegistryPrints) {
  int checked = 0;
  for (const auto& name : callbacks().names()) {
    const json& printed = callbacks().find(name).defaults;
    bool required = false;
    for (const auto& [key, value] : printed.items()) required = required || value.is_null();
    if (required) continue;  // e.g. Timer's duration: there is no default to hold
    auto callback = callbacks().make(name, json::object());
    json held = held_options(*callback);
    if (held.is_null()) {
      EXPECT_TRUE(printed.empty()) << name << " prints arguments but declares no options";
      continue;
    }
    EXPECT_EQ(held, printed) << name;
    ++checked;
  }
  EXPECT_GE(checked, 5);
}

TEST(ComponentDefaults, EveryOptimizerIsBuiltWithThePrintedDefaults) {
  class Tiny : public Module {
   public:
    Tiny() { register_module("linear", torch::nn::Linear(2, 1)); }
    torch::Tensor training_step(Batch&, int64_t) override { return {}; }
    std::vector<OptimizerConfig> configure_optimizers() override { return {}; }
  } module;
  for (const auto& name : optimizers().names()) {
    const json& printed = optimizers().find(name).defaults;
    auto optimizer = make_optimizer(name, json::object(), module);
    auto& options = optimizer->param_groups().at(0).options();
    EXPECT_DOUBLE_EQ(options.get_lr(), printed["lr"].get<double>()) << name;
    double weight_decay = -1;
    if (auto* o = dynamic_cast<torch::optim::AdamOptions*>(&options)) weight_decay = o->weight_decay();
    if (auto* o = dynamic_cast<torch::optim::AdamWOptions*>(&options)) weight_decay = o->weight_decay();
    if (auto* o = dynamic_cast<torch::optim::SGDOptions*>(&options)) {
      weight_decay = o->weight_decay();
      EXPECT_DOUBLE_EQ(o->momentum(), printed["momentum"].get<double>()) << name;
    }
    EXPECT_DOUBLE_EQ(weight_decay, printed["weight_decay"].get<double>()) << name;
  }
}

TEST(ComponentDefaults, ConfigSectionsPrintTheOptionsStructsDefaults) {
  std::map<std::string, json> printed;
  for (const auto& spec : cli::config_keys()) printed[spec.key] = spec.default_value;
  auto expect_section = [&](const std::string& section, const json& defaults, std::set<std::string> except = {}) {
    for (const auto& [key, value] : defaults.items()) {
      if (except.count(key)) continue;
      ASSERT_TRUE(printed.count(section + "." + key)) << section << "." << key;
      EXPECT_EQ(printed[section + "." + key], value) << section << "." << key;
    }
  };
  expect_section("early_stopping", EarlyStoppingOptions::parameters().to_json());
  expect_section("checkpoint", ModelCheckpointOptions::parameters().to_json(), {"dirpath"});
  expect_section("prediction_writer", PredictionWriterOptions::parameters().to_json());
  expect_section("data", TableDataOptions::parameters().to_json());
  // The CLI's trainer differs from the library's in these keys only, on purpose (see
  // cli_trainer_defaults): a repeatable seed, a clipped gradient norm, and epochs before an
  // early stop.
  expect_section("trainer", TrainerOptions::parameters().to_json(),
                 {"seed", "gradient_clip_val", "min_epochs", "handle_signals"});
  EXPECT_TRUE(TrainerOptions::parameters().to_json()["seed"].is_null());
  EXPECT_EQ(printed["trainer.seed"], 0);
  EXPECT_EQ(TrainerOptions::parameters().to_json()["gradient_clip_val"], 0.0);
  EXPECT_EQ(printed["trainer.gradient_clip_val"], 1.0);
  EXPECT_EQ(TrainerOptions::parameters().to_json()["min_epochs"], 0);
  EXPECT_EQ(printed["trainer.min_epochs"], 25);
  expect_section("model", ModelOptions::parameters().to_json());
  expect_section("optimizer", OptimizerOptions::parameters().to_json());
  expect_section("scheduler", SchedulerOptions::parameters().to_json());
  EXPECT_EQ(printed["trainer.weight_averaging"], WeightAveragingOptions().decay());
  // The registry's EarlyStopping and the config's early_stopping section are one declaration.
  EXPECT_EQ(callbacks().find("EarlyStopping").defaults["patience"], printed["early_stopping.patience"]);
}

// A scheduler's defaults live in its registry entry; built from an empty config, it behaves as
// those printed numbers say. Every registered scheduler is checked, so a new one must be added.
TEST(ComponentDefaults, EverySchedulerIsBuiltWithThePrintedDefaults) {
  auto weight = torch::zeros({1}, torch::requires_grad());
  torch::optim::SGD optimizer({weight}, torch::optim::SGDOptions(1.0));
  Trainer trainer(TrainerOptions().max_steps(1000));
  auto lr = [&] { return optimizer.param_groups().at(0).options().get_lr(); };
  auto printed = [](const std::string& name) { return schedulers().find(name).defaults; };
  std::set<std::string> checked;
  auto build = [&](const std::string& name, json args = json::object()) {
    optimizer.param_groups().at(0).options().set_lr(1.0);
    checked.insert(name);
    return schedulers().make(name, args, optimizer, trainer);
  };

  auto step = build("StepLR", {{"step_size", 3}});
  for (int i = 0; i < 3; ++i) step->step();
  EXPECT_DOUBLE_EQ(lr(), printed("StepLR")["gamma"].get<double>());

  auto plateau = build("ReduceLROnPlateau");
  int64_t patience = printed("ReduceLROnPlateau")["patience"].get<int64_t>();
  plateau->step(1.0);
  for (int64_t i = 0; i < patience; ++i) plateau->step(1.0);
  EXPECT_DOUBLE_EQ(lr(), 1.0) << "patience steps without improvement keep the lr";
  plateau->step(1.0);
  EXPECT_DOUBLE_EQ(lr(), printed("ReduceLROnPlateau")["factor"].get<double>());

  build("OneCycleLR");  // starts at max_lr (the optimizer's lr) / div_factor
  EXPECT_NEAR(lr(), 1.0 / printed("OneCycleLR")["div_factor"].get<double>(), 1e-12);

  auto cosine = build("WarmupCosine");  // ends at min_lr_ratio x lr after the fit's 1000 steps
  for (int i = 0; i < 1000; ++i) cosine->step();
  EXPECT_NEAR(lr(), printed("WarmupCosine")["min_lr_ratio"].get<double>(), 1e-9);

  auto constant = build("ConstantLR");
  for (int i = 0; i < 10; ++i) constant->step();
  EXPECT_DOUBLE_EQ(lr(), 1.0);

  for (const auto& name : schedulers().names()) EXPECT_TRUE(checked.count(name)) << name << " is not checked here";
}

TEST(ComponentDefaults, DeclaredBoundsAndChoicesAreEnforced) {
  try {
    callbacks().make("EarlyStopping", {{"patience", -1}});
    FAIL() << "a negative patience must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("patience must be >= 0"), std::string::npos) << e.what();
  }
  try {
    callbacks().make("ModelCheckpoint", {{"mode", "lowest"}});
    FAIL() << "an unknown mode must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("allowed: min, max"), std::string::npos) << e.what();
  }
  try {
    Trainer trainer(TrainerOptions().max_epochs(-2));
    FAIL() << "max_epochs below -1 must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("trainer.max_epochs must be >= -1, got -2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Trainer(TrainerOptions().precision("16-mixed")), std::invalid_argument);
  EXPECT_THROW(ModelOptions().n_layers(0).validate(), std::invalid_argument);
  EXPECT_THROW(ModelOptions().d_model(30).n_heads(4).validate(), std::invalid_argument);
}

}  // namespace
}  // namespace j2v::engine
