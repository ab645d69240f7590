#pragma once
// Helpers shared by the tests: temporary directories and the optional shared datasets.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace j2v::testing {

inline std::filesystem::path temp_dir(const std::string& name) {
  static std::mt19937_64 rng(std::random_device{}());
  auto dir = std::filesystem::temp_directory_path() / ("j2v_test_" + name + "_" + std::to_string(rng()));
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_lines(const std::filesystem::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& l : lines) out << l << "\n";
}

// ../shared/datasets next to the repository, when present (tests skip without it).
inline std::filesystem::path shared_dataset(const std::string& name) {
  return std::filesystem::path(JSON2VEC_SOURCE_DIR) / ".." / "shared" / "datasets" / name;
}

inline std::filesystem::path source_path(const std::string& relative) {
  return std::filesystem::path(JSON2VEC_SOURCE_DIR) / relative;
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A command-line program's run, as users see it: exit code, stdout, stderr.
struct CommandResult {
  int code;
  std::string out, err;
  // The last line of stdout, where fit/validate/test print their metrics.
  nlohmann::json last_json() const {
    auto end = out.find_last_not_of('\n');
    auto start = out.rfind('\n', end);
    start = start == std::string::npos ? 0 : start + 1;
    return nlohmann::json::parse(out.substr(start, end - start + 1));
  }
};

// Runs `binary args` from the repository root, its output captured in files under dir.
inline CommandResult run_in_repo(const std::string& binary, const std::string& args,
                                 const std::filesystem::path& dir) {
  auto out = dir / "stdout.txt", err = dir / "stderr.txt";
  std::string cmd = "cd " + std::string(JSON2VEC_SOURCE_DIR) + " && " + binary + " " + args + " > " + out.string() +
                    " 2> " + err.string();
  int status = std::system(cmd.c_str());
  return {WEXITSTATUS(status), slurp(out), slurp(err)};
}

}  // namespace j2v::testing
