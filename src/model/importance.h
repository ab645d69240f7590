#pragma once
// Field importance: what each input field or branch contributes, measured as the test loss
// and target metrics with that node switched off (an override of `active: false`, which
// keeps every other weight), against the full model. `json2vec importance` prints it, writes
// it as CSV and draws it as SVG.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/data.h"
#include "engine/trainer_options.h"
#include "model/model.h"

namespace j2v {

struct NodeImportance {
  std::string address, type;
  std::map<std::string, double> metrics;  // the test metrics with the node switched off
  double loss_increase = 0;               // loss/test off minus loss/test of the full model
};

struct FieldImportance {
  std::map<std::string, double> full;  // the full model's test metrics
  std::vector<NodeImportance> nodes;   // every input field and branch, largest loss increase first
  std::vector<std::string> skipped;    // nodes that cannot be switched off alone, with why
};

// `data(model)` makes a data module with a test split for the model it is given (each
// switched-off variant has a codec of its own); `trainer` runs each test. The model is left
// as it was.
FieldImportance field_importance(Model& model,
                                 const std::function<std::unique_ptr<engine::DataModule>(const Model&)>& data,
                                 const engine::TrainerOptions& trainer);

}  // namespace j2v
