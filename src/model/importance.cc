#include "model/importance.h"

#include <algorithm>

#include "engine/trainer.h"

namespace j2v {

FieldImportance field_importance(Model& model,
                                 const std::function<std::unique_ptr<engine::DataModule>(const Model&)>& data,
                                 const engine::TrainerOptions& trainer_options) {
  auto score = [&](Model& m) {
    auto module = data(m);
    engine::Trainer trainer(trainer_options);
    return trainer.test(m, *module);
  };
  FieldImportance out;
  out.full = score(model);
  for (const auto& node : model.select(where("target") == false)) {
    if (!node.spec.active) continue;
    NodeImportance row{node.address, node.spec.type, {}, 0};
    try {
      auto off = model.override(where("address") == node.address, {{"active", false}});
      row.metrics = score(model);
    } catch (const SchemaError& e) {
      out.skipped.push_back(node.address + ": " + e.what());
      continue;
    }
    if (row.metrics.count("loss/test") && out.full.count("loss/test"))
      row.loss_increase = row.metrics.at("loss/test") - out.full.at("loss/test");
    out.nodes.push_back(std::move(row));
  }
  std::stable_sort(out.nodes.begin(), out.nodes.end(),
                   [](const NodeImportance& a, const NodeImportance& b) { return a.loss_increase > b.loss_increase; });
  return out;
}

}  // namespace j2v
