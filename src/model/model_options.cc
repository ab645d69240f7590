#include "model/model_options.h"

#include <stdexcept>

namespace j2v {

nlohmann::json ModelOptions::to_json() const {
  return {{"name", name()},
          {"d_model", d_model()},
          {"n_layers", n_layers()},
          {"n_heads", n_heads()},
          {"dropout", dropout()},
          {"batch_size", batch_size()},
          {"embed", embed()},
          {"optimizer",
           {{"name", optimizer().name()},
            {"lr", optimizer().lr()},
            {"weight_decay", optimizer().weight_decay()},
            {"momentum", optimizer().momentum()}}},
          {"scheduler",
           {{"name", scheduler().name()},
            {"warmup_fraction", scheduler().warmup_fraction()},
            {"min_lr_ratio", scheduler().min_lr_ratio()}}}};
}

ModelOptions ModelOptions::from_json(const nlohmann::json& j) {
  ModelOptions o;
  o.name(j.value("name", o.name()))
      .d_model(j.value("d_model", o.d_model()))
      .n_layers(j.value("n_layers", o.n_layers()))
      .n_heads(j.value("n_heads", o.n_heads()))
      .dropout(j.value("dropout", o.dropout()))
      .batch_size(j.value("batch_size", o.batch_size()))
      .embed(j.value("embed", o.embed()));
  if (j.contains("optimizer")) {
    const auto& a = j["optimizer"];
    OptimizerOptions opt;
    opt.name(a.value("name", opt.name()))
        .lr(a.value("lr", opt.lr()))
        .weight_decay(a.value("weight_decay", opt.weight_decay()))
        .momentum(a.value("momentum", opt.momentum()));
    o.optimizer(opt);
  }
  if (j.contains("scheduler")) {
    const auto& a = j["scheduler"];
    SchedulerOptions s;
    s.name(a.value("name", s.name()))
        .warmup_fraction(a.value("warmup_fraction", s.warmup_fraction()))
        .min_lr_ratio(a.value("min_lr_ratio", s.min_lr_ratio()));
    o.scheduler(s);
  }
  return o;
}

void ModelOptions::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (d_model() < 1) fail("model.d_model must be >= 1");
  if (n_heads() < 1) fail("model.n_heads must be >= 1");
  if (d_model() % n_heads() != 0)
    fail("model.d_model (" + std::to_string(d_model()) + ") must be divisible by model.n_heads (" +
         std::to_string(n_heads()) + ")");
  if (n_layers() < 0) fail("model.n_layers must be >= 0");
  if (dropout() < 0 || dropout() >= 1) fail("model.dropout must be in [0, 1)");
  if (batch_size() < 1) fail("data.batch_size must be >= 1");
  const auto& on = optimizer().name();
  if (on != "adamw" && on != "adam" && on != "sgd")
    fail("optimizer.name: '" + on + "' is not allowed (allowed: adamw, adam, sgd)");
  if (!(optimizer().lr() > 0)) fail("optimizer.lr must be > 0");
  const auto& sn = scheduler().name();
  if (sn != "warmup_cosine" && sn != "constant")
    fail("scheduler.name: '" + sn + "' is not allowed (allowed: warmup_cosine, constant)");
}

}  // namespace j2v
