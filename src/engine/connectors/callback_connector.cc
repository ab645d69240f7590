// The callbacks and loggers of a fit: the configured ones, plus a CSV logger, checkpoints and
// a progress bar unless turned off (Lightning's _CallbackConnector).
#include <set>

#include "engine/callbacks/model_checkpoint.h"
#include "engine/callbacks/progress_bar.h"
#include "engine/trainer.h"

namespace j2v::engine {

void Trainer::attach_default_callbacks() {
  if (options_.logger() && loggers_.empty() && is_global_zero()) loggers_.push_back(std::make_shared<CSVLogger>(run_dir_));
  for (auto& logger : loggers_) logger->set_run_dir(run_dir_);
  bool has_checkpoint = false, has_bar = false;
  for (auto& cb : callbacks_) {
    if (dynamic_cast<ModelCheckpoint*>(cb.get())) has_checkpoint = true;
    if (dynamic_cast<ProgressBar*>(cb.get())) has_bar = true;
  }
  if (options_.enable_checkpointing() && !has_checkpoint)
    callbacks_.push_back(std::make_shared<ModelCheckpoint>(ModelCheckpointOptions()));
  if (options_.enable_progress_bar() && !has_bar && is_global_zero()) callbacks_.push_back(std::make_shared<ProgressBar>());
  // Two callbacks with one state key would share (and overwrite) each other's checkpoint state.
  std::set<std::string> keys;
  for (auto& cb : callbacks_)
    if (!keys.insert(cb->state_key()).second)
      throw std::invalid_argument("two callbacks have the state key '" + cb->state_key() +
                                  "' (the same callback twice, e.g. in trainer.callbacks and in its own config "
                                  "section?): keep one, or give them different monitors");
}

}  // namespace j2v::engine
