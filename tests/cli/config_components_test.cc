// Components in the config by class path (LightningCLI) or _target_ (Lighter), checked
// against a catalog of registered defaults, overridden from the command line, linked.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/config.h"

namespace j2v::cli {
namespace {

using nlohmann::json;

// A stand-in for the engine's registries: two models, one data module, callbacks, loggers.
const ComponentCatalog& catalog() {
  static const ComponentCatalog c{[](const std::string& kind, const std::string& name, const json& args,
                                     const std::string& where) -> json {
    std::map<std::string, json> defaults = {
        {"model/my.Net", {{"hidden", 32}, {"in_features", nullptr}, {"dropout", 0.1}}},
        {"data/my.Csv", {{"path", nullptr}, {"batch_size", 64}}},
        {"optimizer/SGD", {{"lr", 0.01}, {"momentum", 0.0}}},
        {"lr_scheduler/StepLR", {{"step_size", nullptr}, {"gamma", 0.1}, {"interval", "epoch"}}},
        {"callback/LearningRateMonitor", {{"logging_interval", "step"}}},
        {"callback/Timer", {{"duration", nullptr}}},
        {"logger/CSVLogger", {{"save_dir", nullptr}}},
        {"logger/TensorBoardLogger", {{"save_dir", nullptr}}}};
    auto it = defaults.find(kind + "/" + name);
    if (it == defaults.end()) throw std::invalid_argument("unknown " + kind + " class_path '" + name + "'");
    json out = it->second;
    for (const auto& [k, v] : args.items()) {
      if (!out.contains(k)) throw std::invalid_argument("unknown key '" + where + "." + k + "'");
      out[k] = v;
    }
    return out;
  }};
  return c;
}

std::string write_file(const std::string& text) {
  std::string path = (std::filesystem::temp_directory_path() / ("j2v_components_" + std::to_string(getpid()) + ".yaml")).string();
  std::ofstream(path) << text;
  return path;
}

const char* kRun = R"(
model:
  class_path: my.Net
  init_args: {hidden: 8}
data:
  _target_: my.Csv
  path: rows.csv
optimizer:
  class_path: SGD
  init_args: {lr: 0.5}
lr_scheduler:
  class_path: StepLR
  init_args: {step_size: 3}
link_arguments:
  - {source: data.num_features, target: model.init_args.in_features}
trainer:
  max_epochs: 3
  callbacks:
    - class_path: LearningRateMonitor
      init_args: {logging_interval: epoch}
    - _target_: Timer
      duration: "00:00:10:00"
  logger: [CSVLogger, {class_path: TensorBoardLogger}]
)";

TEST(ConfigComponents, ClassPathAndTargetAreResolvedAndCompleted) {
  std::string path = write_file(kRun);
  json cfg = resolve_config(path, {"--model.init_args.dropout=0.3"}, true, &catalog());
  EXPECT_EQ(cfg["model"], (json{{"class_path", "my.Net"},
                                {"init_args", {{"hidden", 8}, {"in_features", nullptr}, {"dropout", 0.3}}}}));
  EXPECT_EQ(cfg["data"]["class_path"], "my.Csv");
  EXPECT_EQ(cfg["data"]["init_args"], (json{{"path", "rows.csv"}, {"batch_size", 64}}));  // _target_ args inline
  EXPECT_EQ(cfg["optimizer"]["init_args"]["momentum"], 0.0);
  EXPECT_EQ(cfg["lr_scheduler"]["init_args"]["gamma"], 0.1);
  EXPECT_EQ(cfg["link_arguments"].size(), 1u);
  EXPECT_EQ(cfg["trainer"]["callbacks"][0]["init_args"]["logging_interval"], "epoch");
  EXPECT_EQ(cfg["trainer"]["callbacks"][1]["class_path"], "Timer");
  EXPECT_EQ(cfg["trainer"]["logger"][0]["class_path"], "CSVLogger");  // a bare name is a component
  EXPECT_EQ(cfg["trainer"]["max_epochs"], 3);

  // print-config's YAML resolves to the same config.
  std::string printed = write_file(to_yaml(cfg));
  EXPECT_EQ(resolve_config(printed, {}, true, &catalog()), cfg);
  std::filesystem::remove(path);
}

TEST(ConfigComponents, OverridesSwitchClassesAndReachInitArgs) {
  std::string path = write_file(kRun);
  json cfg = resolve_config(path, {"--optimizer.class_path=SGD", "--optimizer.init_args.momentum=0.9",
                                   "--lr_scheduler=null", "--trainer.logger=false"},
                            true, &catalog());
  EXPECT_EQ(cfg["optimizer"]["init_args"]["lr"], 0.5);  // same class: its arguments stay
  EXPECT_EQ(cfg["optimizer"]["init_args"]["momentum"], 0.9);
  EXPECT_TRUE(cfg["lr_scheduler"].is_null());
  EXPECT_EQ(cfg["trainer"]["logger"], false);
  // json2vec's own model by class path is the shorthand section.
  json own = resolve_config(std::nullopt, {"--model.class_path=json2vec.Model", "--model.init_args.fields={price: number}",
                                           "--model.d_model=32"}, true, &catalog());
  EXPECT_EQ(own["model"]["d_model"], 32);
  EXPECT_EQ(own["model"]["fields"]["price"], "number");
  std::filesystem::remove(path);
}

std::string error_of(const std::string& text, std::vector<std::string> overrides = {}) {
  std::string path = write_file(text);
  try {
    resolve_config(path, overrides, true, &catalog());
  } catch (const ConfigError& e) {
    std::filesystem::remove(path);
    return e.what();
  }
  std::filesystem::remove(path);
  ADD_FAILURE() << "expected a ConfigError for\n" << text;
  return "";
}

TEST(ConfigComponents, MistakesNameTheKey) {
  EXPECT_NE(error_of(kRun, {"--model.init_args.hiden=3"}).find("model.init_args.hiden"), std::string::npos);
  EXPECT_NE(error_of(kRun, {"--trainer.callbacks=[{class_path: Nope}]"}).find("trainer.callbacks[0]"),
            std::string::npos);
  EXPECT_NE(error_of("model: {class_path: my.Net, args: {}}\ndata: {class_path: my.Csv}\n").find("model.args"),
            std::string::npos);
  EXPECT_NE(error_of("model: {class_path: my.Net}\ndata: {train: x.jsonl}\n").find("data module must be too"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kRun) + "\n", {"--link_arguments=[{source: num_features, target: model.init_args.x}]"})
                .find("data.NAME"),
            std::string::npos);
  EXPECT_NE(error_of(kRun, {"--model.hidden=3"}).find("--model.init_args.hidden"), std::string::npos);
  EXPECT_NE(error_of(kRun, {"--trainer.profiler=fancy"}).find("none, simple"), std::string::npos);
}

}  // namespace
}  // namespace j2v::cli
