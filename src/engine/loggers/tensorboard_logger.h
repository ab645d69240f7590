#pragma once
// TensorBoard event files (after Lightning's TensorBoardLogger), written without TensorFlow or
// a protobuf library: TFRecord framing around hand-encoded tensorflow.Event messages.
#include <cstdio>
#include <string>

#include "engine/logger.h"

namespace j2v::engine {

// Writes events.out.tfevents.<unix_seconds>.<hostname>.<pid>.<n> in `directory`. Scalars go in
// as simple_value summaries; hyperparameters as one "hparams" text summary (JSON).
// finalize() closes the file; logging after it starts a new file, as a later run would.
class TensorBoardLogger : public Logger {
 public:
  // Creates the directory and the event file; throws std::runtime_error if either fails.
  explicit TensorBoardLogger(std::string directory);
  ~TensorBoardLogger() override;
  TensorBoardLogger(const TensorBoardLogger&) = delete;
  TensorBoardLogger& operator=(const TensorBoardLogger&) = delete;

  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;
  void log_hyperparams(const nlohmann::json& params) override;
  void save() override;
  void finalize() override;

  const std::string& directory() const { return directory_; }
  // The current (or, after finalize, the last) event file.
  const std::string& path() const { return path_; }

 private:
  void open();
  void write_record(const std::string& payload);

  std::string directory_;
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace j2v::engine
