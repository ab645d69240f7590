#include "engine/logger.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <set>
#include <sstream>

#include "base/atomic_file.h"

namespace j2v::engine {

namespace fs = std::filesystem;

void CSVLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  auto row = metrics;
  row["step"] = static_cast<double>(step);
  for (const auto& [k, _] : row)
    if (std::find(columns_.begin(), columns_.end(), k) == columns_.end()) columns_.push_back(k);
  rows_.push_back(std::move(row));
  dirty_ = true;
}

void CSVLogger::log_hyperparams(const nlohmann::json& params) {
  fs::create_directories(directory_);
  write_file_atomically((fs::path(directory_) / "hparams.json").string(), params.dump(2) + "\n");
}

// The file is rewritten whole because columns can appear after the first rows.
void CSVLogger::save() {
  if (!dirty_) return;
  fs::create_directories(directory_);
  std::vector<std::string> columns = columns_;
  std::stable_sort(columns.begin(), columns.end(), [](const std::string& a, const std::string& b) {
    auto rank = [](const std::string& c) { return c == "epoch" ? 0 : c == "step" ? 1 : 2; };
    return rank(a) < rank(b);
  });
  write_file_atomically((fs::path(directory_) / "metrics.csv").string(), [&](std::ostream& out) {
    for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
    out << "\n" << std::setprecision(9);
    for (const auto& row : rows_) {
      for (size_t i = 0; i < columns.size(); ++i) {
        if (i) out << ",";
        auto it = row.find(columns[i]);
        if (it != row.end()) {
          if (columns[i] == "epoch" || columns[i] == "step") out << static_cast<int64_t>(it->second);
          else out << it->second;
        }
      }
      out << "\n";
    }
  });
  dirty_ = false;
}

}  // namespace j2v::engine
