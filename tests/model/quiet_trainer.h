#pragma once
// Trainer options for end-to-end model tests: no progress bar, a fixed seed, two threads.
#include <filesystem>

#include "engine/trainer.h"

namespace j2v::testing {

inline engine::TrainerOptions quiet_trainer(const std::filesystem::path& root, int epochs, bool checkpointing = false) {
  return engine::TrainerOptions()
      .max_epochs(epochs)
      .default_root_dir(root.string())
      .enable_progress_bar(false)
      .enable_checkpointing(checkpointing)
      .seed(0)
      .num_threads(2);
}

}  // namespace j2v::testing
