// The engine on a model that is not json2vec's: the MLP of examples/mlp_csv, trained in
// process through the registries and as users run it, through its own binary and config
// (class paths, link_arguments, several loggers, SIGTERM and resume).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "csv_data_module.h"
#include "engine/checkpoint_io.h"
#include "mlp.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using j2v::testing::slurp;

j2v::testing::CommandResult run_example(const std::string& args, const fs::path& dir) {
  return j2v::testing::run_in_repo(MLP_EXAMPLE_BINARY, args, dir);
}

class MlpExampleModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = j2v::testing::temp_dir("mlp");
    examples::register_mlp();
    examples::register_csv_data_module();
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string common() const {
    return "--config examples/mlp_csv/config.yaml --trainer.enable_progress_bar=false --trainer.default_root_dir=" +
           (dir / "runs").string();
  }
  fs::path dir;
};

// The spirals need the hidden layers: a linear model stays near chance (a third).
TEST_F(MlpExampleModel, LearnsTheSpiralsThroughTheRegistries) {
  auto data = j2v::engine::data_modules().make("examples.CsvDataModule",
                                                {{"path", j2v::testing::source_path("examples/mlp_csv/spirals.csv")}});
  json args = {{"in_features", data->property("num_features")}, {"num_classes", data->property("num_classes")},
               {"dropout", 0.0}};
  auto model = j2v::engine::modules().make("examples.MLP", args);
  j2v::engine::Trainer trainer(j2v::engine::TrainerOptions()
                                   .max_epochs(40)
                                   .default_root_dir((dir / "runs").string())
                                   .enable_progress_bar(false)
                                   .seed(0));
  trainer.fit(*model, *data);
  auto metrics = trainer.test(*model, *data);
  EXPECT_GT(metrics.at("accuracy/test"), 0.9);

  auto linear = j2v::engine::modules().make("examples.MLP", {{"in_features", 4}, {"num_classes", 3}, {"layers", 0}});
  j2v::engine::Trainer linear_trainer(j2v::engine::TrainerOptions()
                                          .max_epochs(40)
                                          .default_root_dir((dir / "linear").string())
                                          .enable_progress_bar(false)
                                          .seed(0));
  linear_trainer.fit(*linear, *data);
  EXPECT_LT(linear_trainer.test(*linear, *data).at("accuracy/test"), 0.6);
}

TEST_F(MlpExampleModel, TheExampleBinaryTrainsFromItsConfigWithLinkedArguments) {
  auto fit = run_example("fit " + common() + " --trainer.max_epochs=40", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  json metrics = fit.last_json();
  EXPECT_GT(metrics.at("accuracy/validate").get<double>(), 0.9) << fit.out;
  fs::path run = dir / "runs" / "version_0";
  // The resolved config, links applied, in the run directory and in the checkpoint.
  std::string saved = slurp(run / "config.yaml");
  EXPECT_NE(saved.find("in_features: 4"), std::string::npos) << saved;
  EXPECT_NE(saved.find("num_classes: 3"), std::string::npos) << saved;
  j2v::engine::CheckpointReader reader((run / "checkpoints" / "last.ckpt").string());
  EXPECT_EQ(reader.meta()["config"]["model"]["init_args"]["in_features"], 4);
  EXPECT_EQ(reader.meta()["config"]["optimizer"]["class_path"], "torch.optim.AdamW");
  // Both loggers wrote, and the learning-rate monitor's OneCycle rates are in the CSV.
  std::string csv = slurp(run / "metrics.csv");
  EXPECT_NE(csv.find("lr-AdamW"), std::string::npos);
  bool events = false;
  for (const auto& entry : fs::directory_iterator(run))
    events |= entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  EXPECT_TRUE(events);
  EXPECT_NE(fit.err.find("rolled back to the best checkpoint"), std::string::npos) << fit.err;

  auto test = run_example("test " + common() + " --ckpt_path best", dir);
  ASSERT_EQ(test.code, 0) << test.err;
  EXPECT_GT(test.last_json().at("accuracy/test").get<double>(), 0.9) << test.out;

  auto printed = run_example("fit " + common() + " --print_config", dir);
  ASSERT_EQ(printed.code, 0) << printed.err;
  EXPECT_NE(printed.out.find("class_path: examples.MLP"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("weight_decay: 0.0001"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("amsgrad: false"), std::string::npos) << printed.out;  // defaults filled in
  // json2vec's own schedule section doesn't apply to this model: it isn't shown as if it ran.
  EXPECT_EQ(printed.out.find("\nscheduler:"), std::string::npos) << printed.out;
  EXPECT_NE(printed.out.find("\nlr_scheduler:"), std::string::npos) << printed.out;

  auto bad = run_example("fit " + common() + " --model.init_args.hiden=3", dir);
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("model.init_args.hiden"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("hidden"), std::string::npos) << bad.err;
  auto bad_link = run_example("fit " + common() + " --link_arguments=[{source: data.num_rows, target: model.init_args.hidden}]", dir);
  EXPECT_EQ(bad_link.code, 2);
  EXPECT_NE(bad_link.err.find("num_rows"), std::string::npos) << bad_link.err;
}

// A bad cell is refused before training, naming the file, the line and the column; Windows
// line endings and blanks around numbers are read as the numbers they are.
TEST_F(MlpExampleModel, BadCsvCellsNameFileLineAndColumn) {
  auto read = [&](const std::string& text) {
    fs::path file = dir / "rows.csv";
    std::ofstream(file) << text;
    examples::CsvDataOptions options;
    options.path = file.string();
    examples::CsvDataModule data(options);
    data.prepare_data();
    return data.num_features();
  };
  auto error_of = [&](const std::string& text) {
    try {
      read(text);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string file = (dir / "rows.csv").string();
  EXPECT_EQ(read("a,b,label\r\n1, 2 ,0\r\n3,4,1\r\n5,6,2\r\n\r\n"), 2);
  EXPECT_EQ(error_of("a,b,label\n1,2,0\n3,x,1\n5,6,2\n"), file + ":3: column 'b': 'x' is not a number");
  EXPECT_EQ(error_of("a,b,label\n1,2,0\n3,4,1.5\n5,6,2\n"),
            file + ":3: column 'label': a class index (0, 1, ...) is needed, got 1.5");
  EXPECT_EQ(error_of("a,b,label\n1,2,0\n3,4\n"), file + ":3: 2 cells, the header has 3");
  EXPECT_EQ(error_of("a,b,label\n1,,0\n"), file + ":2: column 'b': '' is not a number");
  EXPECT_NE(error_of("a,b,class\n1,2,0\n").find("no column 'label' (columns: a, b, class)"), std::string::npos);
  EXPECT_NE(error_of("a,b,label\n1,2,0\n").find("needs at least 3 rows"), std::string::npos);

  // Through the example's binary: exit 1 and the same message, before any run directory.
  std::ofstream(dir / "rows.csv") << "x,y,label\n1,2,0\n3,oops,1\n";
  auto bad = run_example("fit " + common() + " --data.init_args.path=" + file, dir);
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_NE(bad.err.find(file + ":3: column 'y': 'oops' is not a number"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir / "runs" / "version_0"));
}

// A job scheduler's SIGTERM in the middle of training: the run stops after its step, leaves a
// resumable checkpoint, says so on stdout and exits 143; `--ckpt_path last` finishes the run.
TEST_F(MlpExampleModel, SigtermLeavesAResumableCheckpoint) {
  std::string cmd = std::string(MLP_EXAMPLE_BINARY) + " fit " + common() +
                    " --trainer.max_epochs=100000 --trainer.logger=false --trainer.callbacks=[] > " +
                    (dir / "out.txt").string() + " 2> " + (dir / "err.txt").string();
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (chdir(JSON2VEC_SOURCE_DIR) != 0) _exit(127);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait until it has trained at least one epoch, then interrupt it mid-run.
  fs::path last = dir / "runs" / "version_0" / "checkpoints" / "last.ckpt";
  for (int i = 0; i < 600 && !fs::exists(last); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(last)) << slurp(dir / "err.txt");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(child, SIGTERM);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal instead of stopping cleanly";
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM) << slurp(dir / "err.txt");
  std::string out = slurp(dir / "out.txt");
  json report = json::parse(out.substr(out.find('{')));
  EXPECT_EQ(report["interrupted"], "SIGTERM");
  std::string checkpoint = report["checkpoint"].get<std::string>();
  ASSERT_TRUE(fs::exists(checkpoint));
  j2v::engine::CheckpointReader reader(checkpoint);
  int64_t stopped_at = reader.meta()["global_step"].get<int64_t>();
  EXPECT_GT(stopped_at, 0);

  auto resumed = run_example("fit " + common() + " --trainer.logger=false --trainer.callbacks=[] --ckpt_path last "
                             "--trainer.max_epochs=" + std::to_string(reader.meta()["epoch"].get<int64_t>() + 2),
                             dir);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_GT(resumed.last_json().at("global_step").get<int64_t>(), stopped_at);
}

}  // namespace
