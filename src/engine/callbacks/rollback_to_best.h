#pragma once
// At the end of fit, puts the best checkpoint's weights back into the module (the one
// ModelCheckpoint ranked first), so whatever follows fit (test, predict, export) uses the
// best model rather than the last epoch's. An interrupted fit is left as it was.
#include "engine/callback.h"

namespace j2v::engine {

class RollbackToBest : public Callback {
 public:
  std::string state_key() const override { return "RollbackToBest"; }
  void on_fit_end(Trainer&, Module&) override;
  const std::string& restored_path() const { return restored_path_; }

 private:
  std::string restored_path_;
};

}  // namespace j2v::engine
