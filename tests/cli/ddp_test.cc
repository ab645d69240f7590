// Data-parallel training over processes (trainer.strategy ddp): what a user running the same
// config on N processes or M machines relies on. Every test starts real processes that meet
// over TCP on this machine's loopback addresses, so they are small and run one at a time.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "engine/checkpoint_io.h"
#include "engine/distributed/launcher.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using Result = j2v::testing::CommandResult;

Result run(const std::string& args, const fs::path& dir, const std::string& env = "") {
  fs::create_directories(dir);
  return j2v::testing::run_in_repo(env + " " + JSON2VEC_BINARY, args, dir);
}

// Numeric records whose target is a smooth function of the inputs; `id` is not in the schema.
fs::path write_numbers(const fs::path& dir, int rows, unsigned seed, double noise = 0.1) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<std::string> lines;
  for (int i = 0; i < rows; ++i) {
    double a = normal(rng), b = normal(rng), c = normal(rng);
    double y = 3 * a - 2 * b + c * c + noise * normal(rng);
    lines.push_back(nlohmann::json{{"id", i}, {"a", a}, {"b", b}, {"c", c}, {"y", y}}.dump());
  }
  auto path = dir / "numbers.jsonl";
  j2v::testing::write_lines(path, lines);
  std::ofstream(dir / "numbers.yaml") << "model:\n  d_model: 32\n  n_layers: 1\n  fields:\n    a: number\n    b: number\n"
                                         "    c: number\n    y: {type: number, target: true}\n";
  return path;
}

// fit on `data` (its config beside it), the run under `dir`/runs.
std::string common_args(const fs::path& dir, const fs::path& data) {
  return "fit --config " + (data.parent_path() / "numbers.yaml").string() + " --data.train=" + data.string() +
         " --trainer.default_root_dir=" + (dir / "runs").string() +
         " --trainer.enable_progress_bar=false --trainer.seed=3 --model.dropout=0 --trainer.ddp_timeout_s=60";
}

// A checkpoint's module weights by name.
std::map<std::string, torch::Tensor> weights_of(const fs::path& checkpoint) {
  j2v::engine::CheckpointReader reader(checkpoint.string());
  torch::serialize::InputArchive module;
  EXPECT_TRUE(reader.read_nested("module", module));
  std::map<std::string, torch::Tensor> out;
  std::function<void(torch::serialize::InputArchive&, const std::string&)> walk =
      [&](torch::serialize::InputArchive& archive, const std::string& prefix) {
        for (const auto& key : archive.keys()) {
          torch::Tensor t;
          if (archive.try_read(key, t) || archive.try_read(key, t, /*is_buffer=*/true)) {
            out[prefix + key] = t;
            continue;
          }
          torch::serialize::InputArchive nested;
          if (archive.try_read(key, nested)) walk(nested, prefix + key + ".");
        }
      };
  walk(module, "");
  return out;
}

fs::path last_checkpoint(const fs::path& runs) { return runs / "version_0" / "checkpoints" / "last.ckpt"; }

TEST(DistributedModel, TwoRanksStepLikeOneRankWithTheDoubledBatch) {
  auto dir = j2v::testing::temp_dir("ddp-equivalence");
  auto data = write_numbers(dir, 1500, 1);
  std::string fixed = " --data.validate_fraction=0 --early_stopping.enabled=false --trainer.max_epochs=5 "
                      "--trainer.max_steps=4";
  auto two = run(common_args(dir / "two", data) + fixed + " --trainer.strategy=ddp --trainer.devices=2 "
                     "--data.batch_size=32", dir / "two");
  ASSERT_EQ(two.code, 0) << two.err;
  auto one = run(common_args(dir / "one", data) + fixed + " --data.batch_size=64", dir / "one");
  ASSERT_EQ(one.code, 0) << one.err;
  // Only rank 0 reports, and both runs took the same 4 optimizer steps.
  EXPECT_EQ(std::count(two.out.begin(), two.out.end(), '\n'), 1) << two.out;
  EXPECT_EQ(two.last_json()["global_step"], 4);
  EXPECT_NEAR(two.last_json()["loss/train"].get<double>(), one.last_json()["loss/train"].get<double>(), 1e-4);
  auto got = weights_of(last_checkpoint(dir / "two" / "runs"));
  auto expected = weights_of(last_checkpoint(dir / "one" / "runs"));
  ASSERT_EQ(got.size(), expected.size());
  ASSERT_GT(got.size(), 5u);
  for (const auto& [name, tensor] : expected) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(torch::allclose(got[name], tensor, 1e-5, 1e-5)) << name << " differs by "
                                                                  << (got[name] - tensor).abs().max().item<double>();
  }
  fs::remove_all(dir);
}

TEST(DistributedModel, FitReachesTheSingleProcessValidationLoss) {
  auto dir = j2v::testing::temp_dir("ddp-fit");
  // 2,844 records: 284 held out, 2,560 to train on, 20 full steps an epoch either way.
  auto data = write_numbers(dir, 2844, 2, /*noise=*/1.0);
  std::string fixed = " --trainer.max_epochs=6 --early_stopping.enabled=false";
  auto two = run(common_args(dir / "two", data) + fixed + " --trainer.strategy=ddp --trainer.devices=2 "
                     "--data.batch_size=64", dir / "two");
  ASSERT_EQ(two.code, 0) << two.err;
  auto one = run(common_args(dir / "one", data) + fixed + " --data.batch_size=128", dir / "one");
  ASSERT_EQ(one.code, 0) << one.err;
  double ddp = two.last_json()["loss/validate"].get<double>(), single = one.last_json()["loss/validate"].get<double>();
  EXPECT_LT(std::abs(ddp - single), 0.02 * single) << "ddp " << ddp << " single " << single;
  // It learned: the validation RMSE nears the noise (1.0), far below the target's spread (about 4).
  EXPECT_LT(two.last_json()["record.y/validate:rmse:content"].get<double>(), 1.6) << two.out;
  EXPECT_EQ(two.last_json()["global_step"], 120);
  // Rank 0 alone wrote the run: one version directory, one metrics log.
  EXPECT_TRUE(fs::exists(dir / "two" / "runs" / "version_0" / "metrics.csv"));
  EXPECT_FALSE(fs::exists(dir / "two" / "runs" / "version_1"));
  fs::remove_all(dir);
}

TEST(DistributedModel, RunsAcrossTwoMachinesGivenNodeRanks) {
  // Two "machines": one process each, bound to two loopback addresses, started separately
  // with the same command and NODE_RANK 0 and 1, as on two hosts.
  auto dir = j2v::testing::temp_dir("ddp-nodes");
  auto data = write_numbers(dir, 800, 3);
  int port = j2v::engine::free_local_port();
  std::string args = common_args(dir, data) + " --trainer.max_epochs=2 --trainer.strategy=ddp --trainer.devices=1 "
                                              "--trainer.num_nodes=2 --data.batch_size=32";
  auto env = [&](int node) {
    return "NODE_RANK=" + std::to_string(node) + " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) +
           " J2V_BIND_ADDR=127.0.0." + std::to_string(node + 1);
  };
  Result second;
  std::thread node1([&] { second = run(args, dir / "node1", env(1)); });
  auto first = run(args, dir / "node0", env(0));
  node1.join();
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(second.code, 0) << second.err;
  // 720 training rows dealt to 2 ranks in batches of 32: 11 steps an epoch.
  EXPECT_EQ(first.last_json()["global_step"], 22) << first.out;
  EXPECT_TRUE(second.out.empty()) << second.out;  // rank 1 reports nothing
  // A machine without the NODE_RANK 0 machine's address is told what to set.
  auto lonely = run(common_args(dir, data) + " --trainer.strategy=ddp --trainer.num_nodes=2", dir / "lonely");
  EXPECT_NE(lonely.code, 0);
  EXPECT_NE(lonely.err.find("MASTER_ADDR"), std::string::npos) << lonely.err;
  fs::remove_all(dir);
}

// The pid of the process whose environment says LOCAL_RANK=1 and whose command line names `marker`.
pid_t find_rank_one(const std::string& marker) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = j2v::testing::slurp(entry.path() / "cmdline");
    std::string environ = j2v::testing::slurp(entry.path() / "environ");
    if (cmdline.find(marker) != std::string::npos && environ.find(std::string("LOCAL_RANK=1") + '\0') != std::string::npos)
      return static_cast<pid_t>(std::stoi(name));
  }
  return 0;
}

TEST(DistributedModel, RankKilledMidRunFailsTheRunNamingItAndLastResumes) {
  auto dir = j2v::testing::temp_dir("ddp-kill");
  auto data = write_numbers(dir, 6000, 4);
  std::string args = common_args(dir, data) + " --trainer.max_epochs=40 --trainer.strategy=ddp --trainer.devices=2 "
                                              "--data.batch_size=32 --early_stopping.enabled=false";
  Result killed;
  std::thread runner([&] { killed = run(args, dir / "first", ""); });
  // Kill rank 1 once the first epoch's checkpoint exists.
  auto last = last_checkpoint(dir / "runs");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
  while (!fs::exists(last) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(fs::exists(last)) << "no checkpoint after 240 s";
  pid_t rank_one = find_rank_one((dir / "runs").string());
  ASSERT_GT(rank_one, 0);
  auto killed_at = std::chrono::steady_clock::now();
  kill(rank_one, SIGKILL);
  runner.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  EXPECT_NE(killed.code, 0);
  EXPECT_NE(killed.err.find("rank 1 (pid " + std::to_string(rank_one) + ") was killed by SIGKILL"), std::string::npos)
      << killed.err;
  EXPECT_LT(seconds, 30.0);  // well within trainer.ddp_timeout_s
  // The last complete checkpoint resumes the run, with the same number of processes.
  auto saved = j2v::engine::CheckpointReader(last.string()).meta();
  int64_t saved_step = saved["global_step"], saved_epoch = saved["epoch"];
  auto resumed = run(args + " --trainer.max_epochs=" + std::to_string(saved_epoch + 2) + " --ckpt_path " + last.string(),
                     dir / "resumed");
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_GT(resumed.last_json()["global_step"].get<int64_t>(), saved_step);
  EXPECT_EQ(resumed.last_json()["epoch"], saved_epoch + 2);
  // Another number of processes is refused, saying why.
  auto other = run(common_args(dir, data) + " --trainer.max_epochs=" + std::to_string(saved_epoch + 2) +
                       " --ckpt_path " + last.string(), dir / "other");
  EXPECT_NE(other.code, 0);
  EXPECT_NE(other.err.find("was written by a run of 2 process(es), this run has 1"), std::string::npos) << other.err;
  fs::remove_all(dir);
}

TEST(DistributedModel, PredictOverThreeRanksWritesEveryRowOnceInOrder) {
  auto dir = j2v::testing::temp_dir("ddp-predict");
  auto data = write_numbers(dir, 500, 5);
  auto fit = run(common_args(dir, data) + " --trainer.max_epochs=1", dir / "fit");
  ASSERT_EQ(fit.code, 0) << fit.err;
  // validate over 2 ranks reports what one process reports.
  std::string validate = "validate --config " + (dir / "numbers.yaml").string() + " --data.validate=" + data.string() +
                         " --ckpt_path " + last_checkpoint(dir / "runs").string();
  auto single = run(validate, dir / "validate1");
  auto ranks = run(validate + " --trainer.strategy=ddp --trainer.devices=2 --trainer.ddp_timeout_s=60", dir / "validate2");
  ASSERT_EQ(single.code, 0) << single.err;
  ASSERT_EQ(ranks.code, 0) << ranks.err;
  EXPECT_NEAR(ranks.last_json()["loss/validate"].get<double>(), single.last_json()["loss/validate"].get<double>(), 1e-6);
  auto predicted = run("predict --config " + (dir / "numbers.yaml").string() + " --data.predict=" + data.string() +
                           " --ckpt_path " + last_checkpoint(dir / "runs").string() +
                           " --trainer.strategy=ddp --trainer.devices=3 --data.batch_size=7 --trainer.ddp_timeout_s=60"
                           " --prediction_writer.format=jsonl --prediction_writer.path=" + (dir / "out").string(),
                       dir / "predict");
  ASSERT_EQ(predicted.code, 0) << predicted.err;
  std::multiset<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    auto file = dir / "out" / ("rank-" + std::to_string(rank) + ".jsonl");
    ASSERT_TRUE(fs::exists(file)) << file;
    std::ifstream in(file);
    std::string line;
    int64_t previous = -1, rows = 0;
    while (std::getline(in, line)) {
      auto row = nlohmann::json::parse(line);
      int64_t id = row["inputs"]["id"].get<int64_t>();
      EXPECT_GT(id, previous) << "rank " << rank << " out of input order";
      previous = id;
      seen.insert(id);
      ++rows;
    }
    EXPECT_GT(rows, 100) << "rank " << rank;
  }
  ASSERT_EQ(seen.size(), 500u);
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), 499);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 500u);  // none twice
  fs::remove_all(dir);
}

TEST(DistributedModel, EveryRankLearnsTheSameFieldStateWhateverItsShare) {
  // One record holds the label "rare": only one rank trains on it in an epoch, yet both ranks
  // must build the same model (a category head with every label), or the run is refused.
  auto dir = j2v::testing::temp_dir("ddp-labels");
  std::vector<std::string> lines;
  std::mt19937 rng(6);
  std::normal_distribution<double> normal;
  for (int i = 0; i < 600; ++i) {
    double a = normal(rng);
    std::string label = i == 417 ? "rare" : a > 0 ? "high" : "low";
    lines.push_back(nlohmann::json{{"a", a}, {"label", label}}.dump());
  }
  j2v::testing::write_lines(dir / "labels.jsonl", lines);
  std::ofstream(dir / "labels.yaml") << "model:\n  d_model: 16\n  n_layers: 1\n  fields:\n    a: number\n"
                                        "    label: {type: category, target: true}\n";
  auto fit = run("fit --config " + (dir / "labels.yaml").string() + " --data.train=" + (dir / "labels.jsonl").string() +
                     " --trainer.default_root_dir=" + (dir / "runs").string() +
                     " --trainer.max_epochs=2 --trainer.enable_progress_bar=false --trainer.strategy=ddp "
                     "--trainer.devices=2 --data.batch_size=16 --data.validate_fraction=0 --trainer.ddp_timeout_s=60",
                 dir / "fit");
  ASSERT_EQ(fit.code, 0) << fit.err;
  auto meta = j2v::engine::CheckpointReader(last_checkpoint(dir / "runs").string()).meta();
  EXPECT_NE(meta["module"]["fields"].dump().find("\"rare\""), std::string::npos) << meta["module"]["fields"].dump();
  fs::remove_all(dir);
}

TEST(DistributedModel, JoinsAsTheRankAnOutsideLauncherSets) {
  // As under torchrun or srun: RANK, WORLD_SIZE and LOCAL_RANK set, nothing started by json2vec.
  auto dir = j2v::testing::temp_dir("ddp-torchrun");
  auto data = write_numbers(dir, 600, 7);
  int port = j2v::engine::free_local_port();
  std::string args = common_args(dir, data) + " --trainer.max_epochs=1 --trainer.strategy=ddp --trainer.devices=2 "
                                              "--data.batch_size=30";
  auto env = [&](int rank) {
    return "RANK=" + std::to_string(rank) + " LOCAL_RANK=" + std::to_string(rank) +
           " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port);
  };
  Result second;
  std::thread rank1([&] { second = run(args, dir / "rank1", env(1)); });
  auto first = run(args, dir / "rank0", env(0));
  rank1.join();
  ASSERT_EQ(first.code, 0) << first.err;
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_EQ(first.last_json()["global_step"], 9);  // 540 rows, 2 ranks of 30
  // A world that does not match the config is refused before anything starts.
  auto wrong = run(args + " --trainer.devices=3", dir / "wrong", env(0));
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("WORLD_SIZE is 2, but trainer.devices x trainer.num_nodes is 3 x 1"), std::string::npos)
      << wrong.err;
  fs::remove_all(dir);
}

TEST(DistributedModel, StreamsAreShardedByRankAndRanksEndEpochsTogether) {
  auto dir = j2v::testing::temp_dir("ddp-stream");
  auto data = write_numbers(dir, 1000, 8);
  fs::create_directories(dir / "root" / "train");
  fs::copy_file(data, dir / "root" / "train" / "a.jsonl");
  std::string streaming = " --data.train=null --data.streaming='{root: " + (dir / "root").string() +
                          ", suffix: jsonl, train: /train/, sharding: record}' --data.validate_fraction=0";
  auto fit = run(common_args(dir, data) + streaming +
                     " --trainer.max_epochs=2 --trainer.strategy=ddp --trainer.devices=2 --data.batch_size=25 "
                     "--early_stopping.enabled=false",
                 dir / "fit");
  ASSERT_EQ(fit.code, 0) << fit.err;
  // Each rank reads every other record, 500 an epoch: 20 batches of 25, two epochs.
  EXPECT_EQ(fit.last_json()["global_step"], 40) << fit.out;
  EXPECT_TRUE(std::isfinite(fit.last_json()["loss/train"].get<double>())) << fit.out;
  // Sharded in chunks of 1,024 records, 1,000 records leave rank 1 nothing: refused, saying what to set.
  auto by_file = run(common_args(dir, data) + " --data.train=null --data.streaming='{root: " +
                         (dir / "root").string() + ", suffix: jsonl, train: /train/}' --trainer.strategy=ddp "
                         "--trainer.devices=2",
                     dir / "by_file");
  EXPECT_NE(by_file.code, 0);
  EXPECT_NE(by_file.err.find("rank(s) 1 got no training batches in epoch 0"), std::string::npos) << by_file.err;
  fs::remove_all(dir);
}

}  // namespace
