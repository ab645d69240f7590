#include "cli/config.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace j2v::cli {
namespace {

using nlohmann::json;

// Plain gtest (no gmock) keeps the link line minimal.
::testing::AssertionResult Contains(const char* text_expr, const char* needle_expr, const std::string& text,
                                    const std::string& needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text_expr << " does not contain " << needle_expr << "\n  text:   " << text
                                       << "\n  needle: " << needle;
}
::testing::AssertionResult Lacks(const char* text_expr, const char* needle_expr, const std::string& text,
                                 const std::string& needle) {
  if (text.find(needle) == std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text_expr << " contains " << needle_expr << "\n  text: " << text;
}
#define EXPECT_CONTAINS(text, needle) EXPECT_PRED_FORMAT2(Contains, text, needle)
#define EXPECT_LACKS(text, needle) EXPECT_PRED_FORMAT2(Lacks, text, needle)

// Every resolve needs at least one field; tests that are not about fields
// pass this along.
const std::string kOneField = "model.fields.price=number";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "j2v_config_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }

  std::string write(const std::string& name, const std::string& content) const {
    std::string path = (std::filesystem::path(path_) / name).string();
    std::ofstream(path) << content;
    return path;
  }
  std::string path(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

// The message of the ConfigError thrown by fn, or a failure when none is.
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

std::string resolve_error(const std::vector<std::string>& overrides) {
  return error_of([&] { resolve_config(std::nullopt, overrides); });
}

TEST(ConfigTest, DefaultsAreFilledForEveryKey) {
  json config = resolve_config(std::nullopt, {kOneField});
  for (const auto& spec : config_keys()) {
    auto dot = spec.key.find('.');
    ASSERT_TRUE(config.contains(spec.key.substr(0, dot))) << spec.key;
    ASSERT_TRUE(config[spec.key.substr(0, dot)].contains(spec.key.substr(dot + 1))) << spec.key;
  }
  EXPECT_EQ(config["model"]["name"], "record");
  EXPECT_EQ(config["model"]["d_model"], 64);
  EXPECT_DOUBLE_EQ(config["model"]["dropout"].get<double>(), 0.1);
  EXPECT_EQ(config["model"]["embed"], false);
  EXPECT_TRUE(config["data"]["train"].is_null());
  EXPECT_EQ(config["data"]["batch_size"], 0);  // from the training rows
  EXPECT_EQ(config["optimizer"]["name"], "adamw");
  EXPECT_EQ(config["scheduler"]["name"], "warmup_cosine");
  EXPECT_EQ(config["trainer"]["max_steps"], -1);
  EXPECT_TRUE(config["trainer"]["limit_train_batches"].is_number_float());
  EXPECT_EQ(config["trainer"]["default_root_dir"], "runs");
  EXPECT_EQ(config["checkpoint"]["monitor"], "loss/validate");
  EXPECT_EQ(config["early_stopping"]["patience"], 10);
  EXPECT_EQ(config["prediction_writer"]["format"], "parquet");
  EXPECT_EQ(config["model"]["fields"], json({{"price", "number"}}));
}

TEST(ConfigTest, SchemaIsConsistent) {
  for (const auto& spec : config_keys()) {
    EXPECT_FALSE(spec.help.empty()) << spec.key;
    EXPECT_NE(spec.key.find('.'), std::string::npos) << spec.key;
    if (spec.type == "enum") {
      EXPECT_NE(std::find(spec.allowed.begin(), spec.allowed.end(), spec.default_value.get<std::string>()),
                spec.allowed.end())
          << spec.key;
    }
  }
}

TEST(ConfigTest, FieldsAreRequiredUnlessWaived) {
  EXPECT_CONTAINS(resolve_error({}), "'model.fields' is required");
  json config = resolve_config(std::nullopt, {}, /*require_fields=*/false);
  EXPECT_TRUE(config["model"]["fields"].is_object());
  EXPECT_TRUE(config["model"]["fields"].empty());
}

TEST(ConfigTest, FileThenOverridesTakePrecedence) {
  TempDir dir;
  std::string path = dir.write("config.yaml", R"(
model:
  d_model: 32
  fields:
    price: {type: number, target: true}
    cut: category
trainer:
  max_epochs: 5
  gradient_clip_val: 0.5
optimizer:
  lr: 3e-4
writer:
data:
  train: train.jsonl.gz
)");
  json config = resolve_config(path, {"trainer.max_epochs=7", "--optimizer.name=sgd", "data.train=null"});
  EXPECT_EQ(config["model"]["d_model"], 32);      // file
  EXPECT_EQ(config["model"]["n_layers"], 2);      // default
  EXPECT_EQ(config["trainer"]["max_epochs"], 7);  // override beats file
  EXPECT_DOUBLE_EQ(config["trainer"]["gradient_clip_val"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(config["optimizer"]["lr"].get<double>(), 3e-4);
  EXPECT_EQ(config["optimizer"]["name"], "sgd");
  EXPECT_TRUE(config["data"]["train"].is_null());      // null override clears the path
  EXPECT_EQ(config["prediction_writer"]["path"], "predictions");  // empty section keeps defaults
  EXPECT_EQ(config["model"]["fields"]["price"], json({{"type", "number"}, {"target", true}}));
  EXPECT_EQ(config["model"]["fields"]["cut"], "category");

  // Later overrides win over earlier ones.
  config = resolve_config(path, {"trainer.max_epochs=7", "trainer.max_epochs=9"});
  EXPECT_EQ(config["trainer"]["max_epochs"], 9);
}

// The PredictionWriter's section was called `writer` in 0.1; configs written then still read.
TEST(ConfigTest, TheWriterSectionStillReadsAsPredictionWriter) {
  json config = resolve_config(std::nullopt, {kOneField, "writer={format: jsonl}", "--writer.path=out"});
  EXPECT_EQ(config["prediction_writer"]["format"], "jsonl");
  EXPECT_EQ(config["prediction_writer"]["path"], "out");
  EXPECT_FALSE(config.contains("writer"));
  EXPECT_CONTAINS(resolve_error({kOneField, "writer.fromat=jsonl"}), "did you mean 'prediction_writer.format'?");
}

TEST(ConfigTest, JsonFileIsAccepted) {
  TempDir dir;
  std::string path =
      dir.write("config.json", R"({"model": {"fields": {"price": "number"}}, "data": {"batch_size": 8}})");
  json config = resolve_config(path, {});
  EXPECT_EQ(config["data"]["batch_size"], 8);
  EXPECT_CONTAINS(error_of([&] { resolve_config(dir.write("bad.json", "{\"model\": "), {}); }), "bad.json");
}

TEST(ConfigTest, ScalarsAreTypedAndCoerced) {
  json config = resolve_config(std::nullopt,
                               {kOneField, "trainer.max_epochs=\"5\"", "trainer.max_steps=10.0", "model.dropout=0",
                                "data.shuffle=no", "trainer.default_root_dir=2024", "trainer.limit_train_batches=10",
                                "trainer.limit_val_batches=0.25", "model.name='true'"});
  EXPECT_EQ(config["trainer"]["max_epochs"], 5);  // quoted number string is parsed for an int key
  EXPECT_TRUE(config["trainer"]["max_steps"].is_number_integer());
  EXPECT_EQ(config["trainer"]["max_steps"], 10);  // integral float accepted for int
  EXPECT_TRUE(config["model"]["dropout"].is_number_float());
  EXPECT_EQ(config["data"]["shuffle"], false);
  EXPECT_EQ(config["trainer"]["default_root_dir"], "2024");
  EXPECT_TRUE(config["trainer"]["limit_train_batches"].is_number_integer());
  EXPECT_DOUBLE_EQ(config["trainer"]["limit_val_batches"].get<double>(), 0.25);
  EXPECT_EQ(config["model"]["name"], "true");  // quoted YAML stays a string
}

TEST(ConfigTest, YamlToJsonTypesScalars) {
  json j = yaml_to_json(YAML::Load(R"(
i: 42
neg: -7
hex: 0x1F
f: 1.5
e: 1e3
inf: .inf
t: true
n: null
tilde: ~
empty:
s: hello
quoted_int: "42"
single: 'null'
tagged: !!str 12
no: no
list: [1, two, 3.0]
nested: {a: {b: 1}}
)"));
  EXPECT_EQ(j["i"], 42);
  EXPECT_TRUE(j["i"].is_number_integer());
  EXPECT_EQ(j["neg"], -7);
  EXPECT_EQ(j["hex"], 31);
  EXPECT_TRUE(j["f"].is_number_float());
  EXPECT_DOUBLE_EQ(j["e"].get<double>(), 1000.0);
  EXPECT_TRUE(std::isinf(j["inf"].get<double>()));
  EXPECT_EQ(j["t"], true);
  EXPECT_TRUE(j["n"].is_null());
  EXPECT_TRUE(j["tilde"].is_null());
  EXPECT_TRUE(j["empty"].is_null());
  EXPECT_EQ(j["s"], "hello");
  EXPECT_EQ(j["quoted_int"], "42");
  EXPECT_EQ(j["single"], "null");
  EXPECT_EQ(j["tagged"], "12");
  EXPECT_EQ(j["no"], "no");  // YAML 1.2: not a boolean
  EXPECT_EQ(j["list"], json({1, "two", 3.0}));
  EXPECT_EQ(j["nested"]["a"]["b"], 1);
  EXPECT_CONTAINS(error_of([] { yaml_to_json(YAML::Load("a: 1\na: 2\n")); }), "duplicate key 'a'");
}

TEST(ConfigTest, UnknownKeySuggestsAndListsAllowed) {
  std::string message = resolve_error({kOneField, "trainer.max_epoch=3"});
  EXPECT_CONTAINS(message, "unknown config key 'trainer.max_epoch'");
  EXPECT_CONTAINS(message, "did you mean 'trainer.max_epochs'?");
  EXPECT_CONTAINS(message, "allowed in 'trainer': max_epochs, max_steps");
  EXPECT_CONTAINS(message, "accumulate_grad_batches");

  // The right key in the wrong section points at its real home.
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.lr=0.1"}), "did you mean 'optimizer.lr'?");
  // Nothing close: no guess, still the list.
  message = resolve_error({kOneField, "trainer.zzzzzzzz=1"});
  EXPECT_LACKS(message, "did you mean");
  EXPECT_CONTAINS(message, "allowed in 'trainer'");
}

TEST(ConfigTest, UnknownKeyInFileNamesFile) {
  TempDir dir;
  std::string path = dir.write("typo.yaml", "model:\n  fields: {a: number}\n  n_layer: 3\n");
  std::string message = error_of([&] { resolve_config(path, {}); });
  EXPECT_CONTAINS(message, "unknown config key 'model.n_layer'");
  EXPECT_CONTAINS(message, "did you mean 'model.n_layers'?");
  EXPECT_CONTAINS(message, "typo.yaml");
}

TEST(ConfigTest, UnknownSectionSuggests) {
  std::string message = resolve_error({kOneField, "trainr.max_epochs=3"});
  EXPECT_CONTAINS(message, "unknown config section 'trainr'");
  EXPECT_CONTAINS(message, "did you mean 'trainer'?");
  EXPECT_CONTAINS(message, "early_stopping");

  TempDir dir;
  std::string path = dir.write("c.yaml", "optimiser:\n  lr: 0.1\n");
  EXPECT_CONTAINS(error_of([&] { resolve_config(path, {kOneField}); }), "did you mean 'optimizer'?");
}

TEST(ConfigTest, WrongTypeMessages) {
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs=abc"}),
                  "config key 'trainer.max_epochs': expected int, got 'abc'");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs=2.5"}),
                  "config key 'trainer.max_epochs': expected int, got 2.5");
  EXPECT_CONTAINS(resolve_error({kOneField, "optimizer.lr=fast"}),
                  "config key 'optimizer.lr': expected float, got 'fast'");
  EXPECT_CONTAINS(resolve_error({kOneField, "data.shuffle=maybe"}),
                  "config key 'data.shuffle': expected bool, got 'maybe'");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.name=null"}), "config key 'model.name': expected string, got null");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs={a: 1}"}), "expected int, got a mapping");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.fields=[a, b]"}),
                  "config key 'model.fields': expected a mapping, got a list");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs=true"}), "expected int, got true");
}

TEST(ConfigTest, BoundsAndCrossChecks) {
  EXPECT_CONTAINS(resolve_error({kOneField, "data.batch_size=-1"}), "config key 'data.batch_size': must be >= 0, got -1");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.dropout=1.5"}), "must be <= 1");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.limit_val_batches=1.5"}), "must lie in [0, 1]");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.d_model=30"}), "divisible by n_heads");
}

TEST(ConfigTest, BadEnumListsAllowed) {
  std::string message = resolve_error({kOneField, "optimizer.name=adagrad"});
  EXPECT_CONTAINS(message, "config key 'optimizer.name': expected one of adamw, adam, sgd, got 'adagrad'");
  EXPECT_CONTAINS(resolve_error({kOneField, "prediction_writer.format=parqet"}), "did you mean 'parquet'?");
}

TEST(ConfigTest, MalformedOverrides) {
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs"}), "expected key=value");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.fields.x=[a"}), "not valid YAML");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer..max_epochs=1"}), "malformed key");
  EXPECT_CONTAINS(resolve_error({kOneField, "trainer.max_epochs.x=1"}), "not a mapping");
}

TEST(ConfigTest, MissingFile) {
  TempDir dir;
  std::string path = dir.path("nope.yaml");
  std::string message = error_of([&] { resolve_config(path, {}); });
  EXPECT_CONTAINS(message, "nope.yaml");
  EXPECT_CONTAINS(message, "no such file");
}

TEST(ConfigTest, YamlSyntaxErrorNamesFileAndLine) {
  TempDir dir;
  std::string path = dir.write("broken.yaml", "model:\n  fields: {a: number}\ntrainer: [1, 2\nwriter: {}\n");
  std::string message = error_of([&] { resolve_config(path, {}); });
  EXPECT_CONTAINS(message, "broken.yaml");
  EXPECT_CONTAINS(message, "YAML syntax error at line 4");
}

TEST(ConfigTest, TopLevelMustBeMapping) {
  TempDir dir;
  std::string path = dir.write("list.yaml", "- a\n- b\n");
  std::string message = error_of([&] { resolve_config(path, {}); });
  EXPECT_CONTAINS(message, "list.yaml");
  EXPECT_CONTAINS(message, "top level must be a mapping");

  EXPECT_CONTAINS(error_of([&] { resolve_config(dir.write("s.yaml", "trainer: 5\n"), {kOneField}); }),
                  "config section 'trainer': expected a mapping, got 5");
  // An empty file is an empty configuration, not an error.
  EXPECT_EQ(resolve_config(dir.write("empty.yaml", ""), {kOneField})["trainer"]["max_epochs"], 100);
}

TEST(ConfigTest, MapOverrides) {
  TempDir dir;
  std::string path = dir.write("c.yaml", "model:\n  fields:\n    cut: category\n    carat: number\n");
  json config =
      resolve_config(path, {"model.fields.cut.max_vocab_size=8", "model.fields.price={type: number, target: true}",
                            "model.fields.depth.type=number", "model.fields.carat=null"});
  const json& fields = config["model"]["fields"];
  EXPECT_EQ(fields["cut"], json({{"type", "category"}, {"max_vocab_size", 8}}));
  EXPECT_EQ(fields["price"], json({{"type", "number"}, {"target", true}}));
  EXPECT_EQ(fields["depth"], json({{"type", "number"}}));
  EXPECT_FALSE(fields.contains("carat"));  // null removes a field

  // Replacing the whole map replaces, not merges.
  config = resolve_config(path, {"model.fields={x: number}"});
  EXPECT_EQ(config["model"]["fields"], json({{"x", "number"}}));

  EXPECT_CONTAINS(resolve_error({"model.fields.price=5"}), "config key 'model.fields.price': expected a field type");
}

TEST(ConfigTest, SectionOverrideMerges) {
  json config = resolve_config(std::nullopt, {kOneField, "trainer={max_epochs: 3, seed: 7}"});
  EXPECT_EQ(config["trainer"]["max_epochs"], 3);
  EXPECT_EQ(config["trainer"]["seed"], 7);
  EXPECT_EQ(config["trainer"]["max_steps"], -1);
}

TEST(ConfigTest, ToYamlRoundTrips) {
  TempDir dir;
  // Values chosen to trip a naive emitter: strings that look like null,
  // numbers or YAML 1.1 booleans, YAML indicators, spaces, nested lists.
  const std::vector<std::string> overrides = {
      "model.fields.price={type: number, target: true}",
      "model.fields.cut=category",
      "model.fields.\"weird key\"=number",
      "model.fields.tags={type: list, items: [a, 'yes', '1', {b: null}], opts: {}}",
      "model.name='null'",
      "trainer.default_root_dir=\"runs: #1\"",
      "data.train=/tmp/a b/train.jsonl.gz",
      "trainer.limit_train_batches=10",
      "optimizer.lr=1e-05",
      "checkpoint.monitor='1.5'",
  };
  json config = resolve_config(std::nullopt, overrides);
  std::string yaml = to_yaml(config);
  std::string path = dir.write("printed.yaml", yaml);
  json reloaded = resolve_config(path, {});
  EXPECT_EQ(reloaded, config) << yaml;

  // Floats that happen to be integral must stay floats (1.0 = all batches, 1 = one batch).
  EXPECT_CONTAINS(yaml, "limit_val_batches: 1.0");
  EXPECT_CONTAINS(yaml, "limit_train_batches: 10\n");
  // Readable output: sections in schema order, plain scalars where safe.
  EXPECT_LT(yaml.find("model:"), yaml.find("data:"));
  EXPECT_LT(yaml.find("data:"), yaml.find("prediction_writer:"));
  EXPECT_CONTAINS(yaml, "  monitor: \"1.5\"\n");
  EXPECT_CONTAINS(yaml, "  monitor: loss/validate\n");
  EXPECT_CONTAINS(yaml, "  test: null\n");
  EXPECT_CONTAINS(yaml, "    price:\n      type: number\n      target: true\n");  // a field's type leads
}

TEST(ConfigTest, ToYamlOfDefaultsRoundTrips) {
  TempDir dir;
  json config = resolve_config(std::nullopt, {}, /*require_fields=*/false);
  std::string path = dir.write("defaults.yaml", to_yaml(config));
  EXPECT_EQ(resolve_config(path, {}, /*require_fields=*/false), config);
}

TEST(ConfigTest, HelpMentionsEveryKey) {
  std::string help = config_help();
  for (const auto& spec : config_keys()) {
    EXPECT_CONTAINS(help, "--" + spec.key + " ") << spec.key;
    EXPECT_CONTAINS(help, spec.help) << spec.key;
  }
  EXPECT_CONTAINS(help, "adamw|adam|sgd");
  EXPECT_CONTAINS(help, "default: warmup_cosine");
  EXPECT_CONTAINS(help, "--model.fields (mapping; required)");
  EXPECT_LT(help.find("\nmodel:"), help.find("\ntrainer:"));
}

}  // namespace
// Hostile YAML: yaml-cpp shares aliased nodes and recurses per nesting level, so without
// limits these crash (stack) or exhaust memory instead of failing with a message.
TEST(ConfigTest, RecursiveAliasesAliasBombsAndDeepNestingAreRefused) {
  TempDir dir;
  auto load = [&](const std::string& content) {
    return error_of([&] { resolve_config(dir.write("hostile.yaml", content), {kOneField}); });
  };
  EXPECT_CONTAINS(load("a: &a [*a]\n"), "nested deeper than 64 levels (a recursive alias?)");
  std::string laughs = "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i) {
    laughs += fmt::format("l{}: &l{} [", i, i);
    for (int j = 0; j < 9; ++j) laughs += fmt::format("{}*l{}", j ? ", " : "", i - 1);
    laughs += "]\n";
  }
  EXPECT_CONTAINS(load("unknown_key:\n" + laughs), "values once aliases are expanded");
  EXPECT_CONTAINS(load("model: " + std::string(100000, '[') + std::string(100000, ']') + "\n"),
                  "line 1: nested deeper than 64 levels");
  // Brackets inside quotes and comments are text; an apostrophe inside a word is no quote.
  EXPECT_CONTAINS(load("# [[[[[[[[\nnote: \"" + std::string(100, '[') + "\"\nother: don't [x]\n"),
                  "unknown config section");
  EXPECT_CONTAINS(error_of([&] { resolve_config(std::string("/dev/zero"), {kOneField}); }), "larger than 16 MiB");
  EXPECT_CONTAINS(resolve_error({kOneField, "model.n_layers=100000"}), "model.n_layers");
}

}  // namespace j2v::cli
