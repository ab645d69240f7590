#include "engine/callbacks/rollback_to_best.h"

#include <fmt/format.h>

#include <iostream>

#include "engine/callbacks/model_checkpoint.h"
#include "engine/trainer.h"

namespace j2v::engine {

void RollbackToBest::on_fit_end(Trainer& trainer, Module& module) {
  for (auto& cb : trainer.callbacks()) {
    auto* checkpoint = dynamic_cast<ModelCheckpoint*>(cb.get());
    if (!checkpoint || checkpoint->best_model_path().empty()) continue;
    if (checkpoint->best_model_path() == checkpoint->last_model_path()) return;  // no metric ranked them
    trainer.load_weights(checkpoint->best_model_path(), module);
    restored_path_ = checkpoint->best_model_path();
    std::cerr << fmt::format("rolled back to the best checkpoint {} ({} = {:.6g})\n", restored_path_,
                             "score", checkpoint->best_model_score());
    return;
  }
}

}  // namespace j2v::engine
