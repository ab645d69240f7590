// The model's lifecycle on the command line: a schema inferred from data (infer-schema, and
// fit without fields), schema overrides at start-up (predict, serve), and field importance.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "base/atomic_file.h"
#include "cli/commands_internal.h"
#include "cli/config.h"
#include "data/schema_inference.h"
#include "engine/trainer.h"
#include "model/importance.h"
#include "schema/selector.h"

namespace j2v::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int64_t positive_integer(const std::string& key, const std::string& text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception&) {
  }
  throw ConfigError(fmt::format("--{} expects a positive whole number, got '{}'", key, text));
}

// A command-line value as JSON: true/false/null/numbers as such, anything else as a string.
json scalar_value(const std::string& text) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded() && !parsed.is_object() && !parsed.is_array()) return parsed;
  return text;
}

std::string svg_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

int run_infer_schema(const std::string& input, const std::vector<std::string>& options) {
  SchemaInferenceOptions o;
  for (const auto& kv : options) {
    auto eq = kv.find('=');
    std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (key == "target") o.target = value;
    else if (key == "sample") o.sample = positive_integer(key, value);
    else if (key == "name") o.name = value;
    else throw ConfigError(fmt::format("infer-schema takes FILE [--target NAME] [--sample N] [--name ROOT], not --{}", key));
  }
  if (input.empty()) throw ConfigError("infer-schema needs the records: json2vec infer-schema FILE [--target NAME]");
  auto inferred = infer_schema_from_file(input, o);
  inferred.schema.validate();
  std::cout << inferred.to_yaml(input);
  std::cerr << fmt::format("infer-schema: {} fields from {} records of {}; {} left out\n", inferred.reasons.size(),
                           inferred.records, input, inferred.left_out.size());
  return 0;
}

void infer_missing_fields(json& cfg) {
  const json& d = cfg["data"];
  if (d["train"].is_null())
    throw ConfigError("config key 'model.fields' is required unless data.train is given, from which fit infers them: "
                      "map each field name to a type, e.g. --model.fields.price=number");
  SchemaInferenceOptions o;
  o.name = cfg["model"]["name"].get<std::string>();
  if (cfg["model"].contains("target") && !cfg["model"]["target"].is_null())
    o.target = cfg["model"]["target"].get<std::string>();
  std::string path = d["train"].get<std::string>();
  InferredSchema inferred;
  try {
    inferred = infer_schema_from_file(path, o);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(std::string("model.target: ") + e.what());
  }
  cfg["model"]["fields"] = inferred.schema.to_json()["fields"];
  std::cerr << fmt::format("fit: no model.fields given; inferred {} fields from {} records of {} (saved in the run's "
                           "config.yaml; `json2vec infer-schema {}` explains each):\n",
                           inferred.reasons.size(), inferred.records, path, path);
  for (const auto& [address, reason] : inferred.reasons) std::cerr << "  " << address << ": " << reason << "\n";
  for (const auto& [address, reason] : inferred.left_out) std::cerr << "  left out " << address << ": " << reason << "\n";
}

void apply_schema_overrides(Model& model, const std::vector<std::string>& overrides) {
  for (const auto& text : overrides) {
    auto eq = text.find('=');
    auto dot = text.rfind('.', eq);
    if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot + 1 == eq)
      throw ConfigError(fmt::format("--override '{}': expected ADDRESS.OPTION=VALUE, e.g. {}.amount.active=false", text,
                                    model.schema().name));
    std::string address = text.substr(0, dot), option = text.substr(dot + 1, eq - dot - 1);
    try {
      auto change = model.update(where("address") == address, {{option, scalar_value(text.substr(eq + 1))}});
      std::cerr << fmt::format("override {}: {}", text, change.summary());
    } catch (const SchemaError& e) {
      throw ConfigError(fmt::format("--override '{}': {}", text, e.what()));
    }
  }
}

int run_importance(const json& cfg, const std::string& ckpt_path, const std::string& output_dir) {
  json config = cfg;
  if (config["data"]["test"].is_null()) {
    if (config["data"]["validate"].is_null())
      throw ConfigError("importance scores the model on data.test (or data.validate): set one of them");
    config["data"]["test"] = config["data"]["validate"];
  }
  config["trainer"]["enable_progress_bar"] = false;
  engine::Trainer resolver(build_trainer_options(config, "test"));
  std::string path = resolver.resolve_checkpoint(ckpt_path);
  Model model = Model::load(path);

  auto result = field_importance(
      model, [&](const Model& m) { return build_data(m, config); }, build_trainer_options(config, "test"));
  for (const auto& why : result.skipped) std::cerr << "importance: skipped " << why << "\n";
  const auto& full = result.full;
  const auto& rows = result.nodes;
  std::vector<std::string> metrics;
  for (const auto& [k, _] : full) metrics.push_back(k);

  fs::create_directories(output_dir);
  std::string csv = "node,type,loss_increase";
  for (const auto& k : metrics) csv += "," + k;
  csv += "\n(all fields),," + fmt::format("{:.6g}", 0.0);
  for (const auto& k : metrics) csv += fmt::format(",{:.6g}", full.at(k));
  csv += "\n";
  for (const auto& r : rows) {
    csv += fmt::format("{},{},{:.6g}", r.address, r.type, r.loss_increase);
    for (const auto& k : metrics) csv += r.metrics.count(k) ? fmt::format(",{:.6g}", r.metrics.at(k)) : ",";
    csv += "\n";
  }
  write_file_atomically((fs::path(output_dir) / "importance.csv").string(), csv);

  // A horizontal bar per node: how much the test loss rises without it.
  double top = 1e-12;
  for (const auto& r : rows) top = std::max(top, std::abs(r.loss_increase));
  const int bar_width = 420, row_height = 22, label_width = 260, height = 40 + row_height * static_cast<int>(rows.size());
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" "
      "font-size=\"12\">\n<text x=\"8\" y=\"18\" font-weight=\"bold\">Test loss increase with the node switched off "
      "(full model: {:.4f})</text>\n",
      label_width + bar_width + 90, height, full.count("loss/test") ? full.at("loss/test") : 0.0);
  for (size_t i = 0; i < rows.size(); ++i) {
    int y = 30 + row_height * static_cast<int>(i);
    int w = static_cast<int>(bar_width * std::abs(rows[i].loss_increase) / top);
    svg += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"{}\"/>\n<text x=\"{}\" y=\"{}\">{:+.4f}</text>\n",
        label_width - 6, y + 14, svg_escape(rows[i].address), label_width, y + 3, std::max(w, 1), row_height - 6,
        rows[i].loss_increase >= 0 ? "#3b6ea8" : "#c0504d", label_width + std::max(w, 1) + 6, y + 14,
        rows[i].loss_increase);
  }
  svg += "</svg>\n";
  write_file_atomically((fs::path(output_dir) / "importance.svg").string(), svg);

  // "record.label/test:accuracy:content" -> "label accuracy"
  auto column = [&](std::string k) {
    auto slash = k.find("/test:");
    if (slash != std::string::npos) {
      std::string node = k.substr(0, slash), metric = k.substr(slash + 6);
      auto dot = node.rfind('.');
      if (dot != std::string::npos) node = node.substr(dot + 1);
      auto colon = metric.find(':');
      k = node + " " + metric.substr(0, colon);
    }
    return k.size() > 24 ? k.substr(k.size() - 24) : k;
  };
  std::cout << fmt::format("{:<40} {:>14}", "node switched off", "loss increase");
  for (const auto& k : metrics)
    if (k != "loss/test") std::cout << fmt::format(" {:>24}", column(k));
  std::cout << "\n" << fmt::format("{:<40} {:>14}", "(none: the full model)", "0");
  for (const auto& k : metrics)
    if (k != "loss/test") std::cout << fmt::format(" {:>24.4f}", full.at(k));
  std::cout << "\n";
  for (const auto& r : rows) {
    std::cout << fmt::format("{:<40} {:>+14.4f}", r.address, r.loss_increase);
    for (const auto& k : metrics)
      if (k != "loss/test") std::cout << (r.metrics.count(k) ? fmt::format(" {:>24.4f}", r.metrics.at(k)) : std::string(25, ' '));
    std::cout << "\n";
  }
  std::cout << json{{"csv", (fs::path(output_dir) / "importance.csv").string()},
                    {"chart", (fs::path(output_dir) / "importance.svg").string()}}
                   .dump()
            << std::endl;
  return 0;
}

}  // namespace j2v::cli
