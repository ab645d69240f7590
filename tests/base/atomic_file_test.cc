// Replacing files so that readers, crashes and failed writers never see half of one: what
// checkpoints, index.json, metrics.csv, config.yaml and predictions rely on.
#include "base/atomic_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>

namespace j2v {
namespace {

namespace fs = std::filesystem;

class AtomicFile : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() /
          ("j2v-atomic-file-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }

  std::string path(const std::string& name) const { return (dir / name).string(); }

  static std::string read(const std::string& file) {
    std::ifstream in(file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  static void write_plain(const std::string& file, const std::string& content) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << content;
  }

  // The names in the directory: shows any temporary file left behind.
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
    return names;
  }

  fs::path dir;
};

TEST_F(AtomicFile, WriteReplacesTheWholeContent) {
  std::string target = path("metrics.csv");
  write_file_atomically(target, std::string(1000, 'x') + "\n");
  write_file_atomically(target, [](std::ostream& out) { out << "epoch,step\n0,10\n"; });
  // A shorter new content leaves nothing of the longer old one.
  EXPECT_EQ(read(target), "epoch,step\n0,10\n");
  write_file_atomically(target, std::string_view("a\0b", 3));
  EXPECT_EQ(read(target), std::string("a\0b", 3));
  EXPECT_EQ(listing(), std::set<std::string>{"metrics.csv"});
}

TEST_F(AtomicFile, WriteCreatesAMissingFile) {
  std::string target = path("index.json");
  write_file_atomically(target, "{}\n");
  EXPECT_EQ(read(target), "{}\n");
  EXPECT_EQ(listing(), std::set<std::string>{"index.json"});
}

TEST_F(AtomicFile, AThrowingWriterLeavesTheOldFileAndNoTemporaryFile) {
  std::string target = path("config.yaml");
  write_plain(target, "old content\n");
  EXPECT_THROW(write_file_atomically(target,
                                     [](std::ostream& out) {
                                       out << "half of the new";
                                       out.flush();
                                       throw std::runtime_error("writer failed");
                                     }),
               std::runtime_error);
  EXPECT_EQ(read(target), "old content\n");
  EXPECT_EQ(listing(), std::set<std::string>{"config.yaml"});
}

TEST_F(AtomicFile, AThrowingWriterCreatesNothingWhenTheFileWasMissing) {
  std::string target = path("orders.jsonl");
  EXPECT_THROW(write_file_atomically(target, [](std::ostream&) { throw std::runtime_error("writer failed"); }),
               std::runtime_error);
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(listing().empty());
}

TEST_F(AtomicFile, WritingIntoAMissingDirectoryThrowsNamingThePath) {
  std::string target = path("no-such-dir/out.jsonl");
  try {
    write_file_atomically(target, "x\n");
    FAIL() << "expected AtomicFileError";
  } catch (const AtomicFileError& e) {
    EXPECT_NE(std::string(e.what()).find("'" + target + "'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(listing().empty());
}

TEST_F(AtomicFile, TempPathIsBesideThePathAndNamesTheProcess) {
  std::string target = path("epoch=0-step=10.ckpt");
  std::string temp = temp_path_for(target);
  EXPECT_NE(temp, target);
  EXPECT_EQ(temp.rfind(target + ".tmp-", 0), 0u) << temp;
  EXPECT_NE(temp.find(std::to_string(::getpid())), std::string::npos) << temp;
  EXPECT_EQ(fs::path(temp).parent_path(), fs::path(target).parent_path());
}

TEST_F(AtomicFile, LinkMakesBothNamesReadTheSameBytesAndReplacesAnExistingLink) {
  std::string first = path("epoch=0-step=10.ckpt");
  std::string second = path("epoch=1-step=20.ckpt");
  std::string last = path("last.ckpt");
  write_plain(first, "first checkpoint");
  write_plain(second, "second checkpoint");
  write_plain(last, "an older last checkpoint");

  ASSERT_TRUE(link_file_atomically(first, last));
  EXPECT_EQ(read(last), "first checkpoint");
  EXPECT_EQ(read(first), "first checkpoint");

  // Relinking replaces what `last` names and leaves the file it named before alone.
  ASSERT_TRUE(link_file_atomically(second, last));
  EXPECT_EQ(read(last), "second checkpoint");
  EXPECT_EQ(read(second), "second checkpoint");
  EXPECT_EQ(read(first), "first checkpoint");
  EXPECT_TRUE(fs::equivalent(last, second));
  EXPECT_EQ(listing(), (std::set<std::string>{"epoch=0-step=10.ckpt", "epoch=1-step=20.ckpt", "last.ckpt"}));
}

TEST_F(AtomicFile, LinkToAMissingFileChangesNothing) {
  std::string last = path("last.ckpt");
  write_plain(last, "kept");
  EXPECT_FALSE(link_file_atomically(path("missing.ckpt"), last));
  EXPECT_EQ(read(last), "kept");
  EXPECT_EQ(listing(), std::set<std::string>{"last.ckpt"});
}

TEST_F(AtomicFile, CommitPublishesATemporaryFileAndRefusesAMissingOne) {
  std::string target = path("predictions.jsonl");
  write_plain(target, "old rows\n");
  std::string temp = temp_path_for(target);
  try {
    commit_file(temp, target);
    FAIL() << "expected AtomicFileError";
  } catch (const AtomicFileError& e) {
    EXPECT_NE(std::string(e.what()).find("'" + temp + "'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read(target), "old rows\n");
  EXPECT_EQ(listing(), std::set<std::string>{"predictions.jsonl"});
  // Once written, the temporary file replaces the target and is gone.
  write_plain(temp, "new rows\n");
  commit_file(temp, target);
  EXPECT_EQ(read(target), "new rows\n");
  EXPECT_EQ(listing(), std::set<std::string>{"predictions.jsonl"});
}

// kill -9 leaves "<path>.tmp-PID" (and a checkpoint's or a Parquet writer's siblings of it);
// the next write of that path removes them, but never a running process's, nor other files.
TEST_F(AtomicFile, TheNextWriteRemovesWhatADeadRunLeft) {
  std::string target = path("last.ckpt");
  std::ofstream(path("last.ckpt.tmp-999999999")) << "dead";     // no such process
  fs::create_directories(path("last.ckpt.tmp-999999998.spill"));  // a dead writer's directory
  std::ofstream(path("last.ckpt.tmp-1")) << "init is running";
  std::ofstream(path("other.ckpt.tmp-999999999")) << "another target's";
  std::ofstream(path("last.ckpt.tmp-notapid")) << "not ours";
  write_file_atomically(target, "new");
  EXPECT_EQ(listing(), (std::set<std::string>{"last.ckpt", "last.ckpt.tmp-1", "other.ckpt.tmp-999999999",
                                              "last.ckpt.tmp-notapid"}));
  EXPECT_EQ(read(target), "new");
}

}  // namespace
}  // namespace j2v
