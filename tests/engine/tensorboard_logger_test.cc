// TensorBoardLogger writes TFRecord-framed tensorflow.Event protobufs by hand, so its files are
// read back with an independent reader: tests/io/read_tfevents.mjs (protobufjs with TensorFlow's
// field numbers, and @aws-crypto/crc32c for the checksums; skipped unless
// `npm ci --prefix tests/io` was run).
#include "engine/loggers/tensorboard_logger.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/loggers/crc32c.h"

#ifndef JSON2VEC_SOURCE_DIR
#error "JSON2VEC_SOURCE_DIR must name the repository root"
#endif

namespace j2v::engine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool reader_available() {
  static const bool available =
      std::system("command -v node >/dev/null 2>&1") == 0 &&
      fs::exists(fs::path(JSON2VEC_SOURCE_DIR) / "tests/io/node_modules/protobufjs/package.json") &&
      fs::exists(fs::path(JSON2VEC_SOURCE_DIR) / "tests/io/node_modules/@aws-crypto/crc32c/package.json");
  return available;
}

#define SKIP_WITHOUT_READER()                                                                     \
  if (!reader_available())                                                                        \
  GTEST_SKIP() << "node, protobufjs or @aws-crypto/crc32c missing; run `npm ci --prefix tests/io` " \
                  "in the repo root to enable the independent event-file check"

struct ReaderResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};

ReaderResult run_reader(const std::string& path) {
  std::string script = (fs::path(JSON2VEC_SOURCE_DIR) / "tests/io/read_tfevents.mjs").string();
  std::string command = "node '" + script + "' '" + path + "' 2>&1";
  ReaderResult result;
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "cannot run " << command;
    return result;
  }
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  result.status = pclose(pipe);
  return result;
}

// The reader's JSON lines; fails the test if it did not exit cleanly.
std::vector<json> read_events(const std::string& path) {
  ReaderResult result = run_reader(path);
  std::vector<json> lines;
  if (result.status != 0) {
    ADD_FAILURE() << "read_tfevents.mjs failed on " << path << ":\n" << result.output;
    return lines;
  }
  size_t start = 0;
  while (start < result.output.size()) {
    size_t end = result.output.find('\n', start);
    if (end == std::string::npos) end = result.output.size();
    if (end > start) lines.push_back(json::parse(result.output.substr(start, end - start)));
    start = end + 1;
  }
  return lines;
}

// A fresh directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tensorboard_logger_test.XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST(TensorBoardLogger, Crc32cKnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the common check value.
  std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
  std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xFF);
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  std::vector<unsigned char> ascending(32);
  for (int i = 0; i < 32; ++i) ascending[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(ascending.data(), ascending.size()), 0x46DD794Eu);
  EXPECT_EQ(crc32c(nullptr, 0), 0u);

  for (size_t split = 0; split <= digits.size(); ++split) {
    uint32_t first = crc32c(digits.data(), split);
    EXPECT_EQ(crc32c(digits.data() + split, digits.size() - split, first), 0xE3069283u) << "split at " << split;
  }

  uint32_t crc = 0xE3069283u;
  uint32_t rotated = (crc >> 15) | (crc << 17);
  EXPECT_EQ(masked_crc32c(digits.data(), digits.size()), static_cast<uint32_t>(rotated + 0xa282ead8u));
}

TEST(TensorBoardLogger, IndependentReaderDecodesEveryScalar) {
  SKIP_WITHOUT_READER();
  TempDir tmp;
  std::string path;
  {
    TensorBoardLogger logger((tmp.path() / "run").string());
    path = logger.path();
    logger.log_hyperparams(json{{"lr", 0.01}, {"name", "demo"}});
    for (int64_t step : {10, 20, 30}) {
      logger.log_metrics({{"loss/train", 1.0 / step}, {"acc/val", step / 100.0}}, step);
      logger.save();
    }
    logger.finalize();
  }
  EXPECT_EQ(fs::path(path).parent_path(), tmp.path() / "run");
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u) << path;

  std::vector<json> lines = read_events(path);
  // the version event, the hparams event and its text,, then per step one event and two scalars
  ASSERT_EQ(lines.size(), 1u + 2u + 3u * 3u);
  EXPECT_EQ(lines[0].at("step"), 0);
  EXPECT_EQ(lines[0].at("file_version"), "brain.Event:2");
  double now = static_cast<double>(std::time(nullptr));
  EXPECT_NEAR(lines[0].at("wall_time").get<double>(), now, 600.0);

  EXPECT_FALSE(lines[1].contains("file_version"));
  EXPECT_EQ(lines[2].at("tag"), "hparams");
  std::string text = lines[2].at("text");
  ASSERT_EQ(text.rfind("```json\n", 0), 0u) << text;
  json params = json::parse(text.substr(8, text.size() - 8 - 4));
  EXPECT_EQ(params, (json{{"lr", 0.01}, {"name", "demo"}}));

  size_t i = 3;
  for (int64_t step : {10, 20, 30}) {
    SCOPED_TRACE("step " + std::to_string(step));
    const json& event = lines.at(i++);
    EXPECT_EQ(event.at("step"), step);
    EXPECT_FALSE(event.contains("file_version"));
    EXPECT_GE(event.at("wall_time").get<double>(), lines[0].at("wall_time").get<double>());
    std::map<std::string, double> values;
    for (int k = 0; k < 2; ++k) {
      const json& value = lines.at(i++);
      EXPECT_EQ(value.at("step"), step);
      values[value.at("tag")] = value.at("value").get<double>();
    }
    ASSERT_EQ(values.size(), 2u);
    EXPECT_NEAR(values.at("loss/train"), 1.0 / step, 1e-7);
    EXPECT_NEAR(values.at("acc/val"), step / 100.0, 1e-7);
  }
}

TEST(TensorBoardLogger, NonFiniteValuesAreWritten) {
  SKIP_WITHOUT_READER();
  TempDir tmp;
  TensorBoardLogger logger(tmp.path().string());
  logger.log_metrics({{"a", std::nan("")}, {"b", INFINITY}, {"c", -INFINITY}}, 1);
  logger.finalize();
  std::vector<json> lines = read_events(logger.path());
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[2], (json{{"step", 1}, {"tag", "a"}, {"value", "NaN"}}));
  EXPECT_EQ(lines[3], (json{{"step", 1}, {"tag", "b"}, {"value", "Infinity"}}));
  EXPECT_EQ(lines[4], (json{{"step", 1}, {"tag", "c"}, {"value", "-Infinity"}}));
}

// Flipping any one bit of a record must make the reader refuse the file, which proves the
// reader checks both checksums (and the logger computes them the way TFRecord does).
TEST(TensorBoardLogger, CorruptedByteFailsTheReader) {
  SKIP_WITHOUT_READER();
  TempDir tmp;
  TensorBoardLogger logger(tmp.path().string());
  logger.log_metrics({{"loss/train", 0.5}}, 3);
  logger.finalize();
  std::string original;
  {
    std::ifstream in(logger.path(), std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_EQ(read_events(logger.path()).size(), 3u);

  size_t last_record = original.size();
  {
    // The first record's length (8 bytes, little-endian) says where the second starts.
    uint64_t length = 0;
    for (int b = 7; b >= 0; --b) length = (length << 8) | static_cast<unsigned char>(original[b]);
    last_record = 12 + length + 4;
  }
  ASSERT_LT(last_record, original.size());
  struct Case {
    size_t offset;
    const char* expect;
  };
  for (Case c : {Case{last_record + 1, "length checksum mismatch"},       // the length
                 Case{last_record + 9, "length checksum mismatch"},       // the length's crc
                 Case{last_record + 20, "payload checksum mismatch"},     // the payload
                 Case{original.size() - 1, "payload checksum mismatch"}}) {  // the payload's crc
    SCOPED_TRACE("byte " + std::to_string(c.offset));
    std::string corrupted = original;
    corrupted[c.offset] ^= 0x01;
    std::ofstream(logger.path(), std::ios::binary | std::ios::trunc) << corrupted;
    ReaderResult result = run_reader(logger.path());
    EXPECT_NE(result.status, 0) << result.output;
    EXPECT_NE(result.output.find(c.expect), std::string::npos) << result.output;
  }

  std::ofstream(logger.path(), std::ios::binary | std::ios::trunc) << original.substr(0, original.size() - 2);
  ReaderResult truncated = run_reader(logger.path());
  EXPECT_NE(truncated.status, 0) << truncated.output;
  EXPECT_NE(truncated.output.find("truncated"), std::string::npos) << truncated.output;
}

TEST(TensorBoardLogger, TwoLoggersWriteDistinctFiles) {
  TempDir tmp;
  TensorBoardLogger first(tmp.path().string());
  TensorBoardLogger second(tmp.path().string());
  EXPECT_NE(first.path(), second.path());
  first.log_metrics({{"x", 1.0}}, 1);
  second.log_metrics({{"x", 2.0}}, 1);
  first.finalize();
  second.finalize();
  std::set<std::string> files;
  for (const auto& entry : fs::directory_iterator(tmp.path())) files.insert(entry.path().string());
  EXPECT_EQ(files, (std::set<std::string>{first.path(), second.path()}));
  if (!reader_available()) return;
  EXPECT_EQ(read_events(first.path()).at(2).at("value"), 1.0);
  EXPECT_EQ(read_events(second.path()).at(2).at("value"), 2.0);
}

// The Trainer finalizes its loggers at the end of every fit; a later fit must not write into
// (or fail on) the closed file.
TEST(TensorBoardLogger, LoggingAfterFinalizeStartsANewFile) {
  TempDir tmp;
  TensorBoardLogger logger(tmp.path().string());
  logger.log_metrics({{"x", 1.0}}, 1);
  logger.finalize();
  std::string first = logger.path();
  logger.log_metrics({{"x", 2.0}}, 2);
  logger.finalize();
  EXPECT_NE(logger.path(), first);
  EXPECT_TRUE(fs::exists(first));
  EXPECT_TRUE(fs::exists(logger.path()));
  if (!reader_available()) return;
  EXPECT_EQ(read_events(logger.path()).size(), 3u);
}

TEST(TensorBoardLogger, UnusableDirectoryThrowsNamingThePath) {
  TempDir tmp;
  std::string blocker = (tmp.path() / "not_a_directory").string();
  std::ofstream(blocker) << "x";
  try {
    TensorBoardLogger logger(blocker + "/run");
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(blocker), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace j2v::engine
