// The command line as users run it: the real binary, real files, exit codes and messages.
#include <duckdb.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "compress_util.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;

using j2v::testing::slurp;
using Result = j2v::testing::CommandResult;

Result run(const std::string& args, const fs::path& dir) { return j2v::testing::run_in_repo(JSON2VEC_BINARY, args, dir); }

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { dir = j2v::testing::temp_dir("cli"); }
  void TearDown() override { fs::remove_all(dir); }
  std::string common() const {
    return "--config examples/transactions/config.yaml --trainer.default_root_dir=" + (dir / "runs").string() +
           " --prediction_writer.path=" + (dir / "predictions").string() + " --trainer.enable_progress_bar=false";
  }
  fs::path dir;
};

int64_t parquet_rows(const fs::path& file, std::string* first_input) {
  duckdb_database db;
  duckdb_connection con;
  duckdb_result result;
  EXPECT_EQ(duckdb_open(nullptr, &db), DuckDBSuccess);
  EXPECT_EQ(duckdb_connect(db, &con), DuckDBSuccess);
  std::string sql = "SELECT count(*), first(inputs::VARCHAR), first(predictions.\"record.fraud\".content.value) FROM read_parquet('" +
                    file.string() + "')";
  EXPECT_EQ(duckdb_query(con, sql.c_str(), &result), DuckDBSuccess) << duckdb_result_error(&result);
  int64_t n = duckdb_value_int64(&result, 0, 0);
  char* s = duckdb_value_varchar(&result, 1, 0);
  if (first_input && s) *first_input = s;
  duckdb_free(s);
  duckdb_destroy_result(&result);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  return n;
}

TEST_F(Cli, FitTestPredictOnTheBundledExample) {
  auto fit = run("fit " + common() + " --trainer.max_epochs=3", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  auto fit_metrics = fit.last_json();
  EXPECT_TRUE(fit_metrics.contains("loss/validate")) << fit.out;  // validate_fraction holds out part of train
  EXPECT_TRUE(fs::exists(dir / "runs" / "version_0" / "checkpoints" / "last.ckpt"));
  EXPECT_TRUE(fs::exists(dir / "runs" / "version_0" / "metrics.csv"));
  EXPECT_TRUE(fs::exists(dir / "runs" / "version_0" / "config.yaml"));

  auto test = run("test " + common() + " --ckpt_path best", dir);
  ASSERT_EQ(test.code, 0) << test.err;
  auto metrics = test.last_json();
  EXPECT_GT(metrics.at("record.fraud/test:accuracy:content").get<double>(), 0.9) << test.out;
  EXPECT_TRUE(metrics.contains("loss/test"));

  auto predict = run("predict " + common() + " --ckpt_path last", dir);
  ASSERT_EQ(predict.code, 0) << predict.err;
  auto file = dir / "predictions" / "rank-0.parquet";
  ASSERT_TRUE(fs::exists(file));
  std::string first_input;
  EXPECT_EQ(parquet_rows(file, &first_input), 200);
  std::ifstream in(j2v::testing::source_path("examples/transactions/predict.jsonl"));
  std::string first_line;
  std::getline(in, first_line);
  EXPECT_EQ(nlohmann::json::parse(first_input), nlohmann::json::parse(first_line));

  auto resumed = run("fit " + common() + " --trainer.max_epochs=4 --ckpt_path last", dir);
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(resumed.last_json()["epoch"], 4.0);
}

TEST_F(Cli, AnEnsembleTrainsTestsAndPredictsFromOneCheckpoint) {
  auto fit = run("fit " + common() + " --trainer.max_epochs=3 --model.ensemble=2", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  EXPECT_NE(slurp(dir / "runs" / "version_0" / "config.yaml").find("ensemble: 2"), std::string::npos);
  // The checkpoint says how many networks it holds: test and predict need no flag.
  auto test = run("test " + common() + " --ckpt_path best", dir);
  ASSERT_EQ(test.code, 0) << test.err;
  EXPECT_GT(test.last_json().at("record.fraud/test:accuracy:content").get<double>(), 0.9) << test.out;
  auto predict = run("predict " + common() + " --ckpt_path last", dir);
  ASSERT_EQ(predict.code, 0) << predict.err;
  EXPECT_EQ(parquet_rows(dir / "predictions" / "rank-0.parquet", nullptr), 200);

  auto zero = run("fit " + common() + " --model.ensemble=0", dir);
  EXPECT_NE(zero.code, 0);
  EXPECT_NE(zero.err.find("model.ensemble"), std::string::npos) << zero.err;
}

// Early stopping chooses its epoch on a tenth held out of data.train; early_stopping.refit
// then trains a new model on every training row for those epochs, and that model is the
// run's best (always; auto under 1,000 rows; never, the default, leaves the fit as it is).
TEST_F(Cli, FitRefitsOnEveryTrainingRowForTheEpochsEarlyStoppingChose) {
  std::string short_fit = " --trainer.max_epochs=8 --trainer.min_epochs=0 --early_stopping.patience=2";
  auto fit = run("fit " + common() + short_fit + " --early_stopping.refit=always", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  auto out = fit.last_json();
  ASSERT_TRUE(out.contains("refit")) << fit.out;
  EXPECT_TRUE(out.contains("loss/validate")) << fit.out;  // the fit's own line is unchanged
  const auto& refit = out["refit"];
  // The best checkpoint of the fit is named epoch=E-step=S after its (E+1)th epoch.
  std::string best = refit["best_of_fit"].get<std::string>();
  ASSERT_NE(best.find((dir / "runs" / "version_0").string()), std::string::npos) << best;
  int best_epoch = std::stoi(best.substr(best.find("epoch=") + 6));
  EXPECT_EQ(refit["epoch"].get<int>(), best_epoch + 1) << out;
  EXPECT_EQ(refit["run_dir"].get<std::string>(), (dir / "runs" / "version_1").string());
  // 4,000 rows in batches of 128: 29 steps an epoch without the validation tenth, 32 with it.
  double fit_steps_per_epoch = out["global_step"].get<double>() / out["epoch"].get<double>();
  double refit_steps_per_epoch = refit["global_step"].get<double>() / refit["epoch"].get<double>();
  EXPECT_EQ(fit_steps_per_epoch, 29) << out;
  EXPECT_EQ(refit_steps_per_epoch, 32) << out;
  EXPECT_NE(slurp(dir / "runs" / "version_1" / "config.yaml").find("validate_fraction: 0"), std::string::npos);
  auto index = nlohmann::json::parse(slurp(dir / "runs" / "version_1" / "checkpoints" / "index.json"));
  EXPECT_EQ(index["best_model_path"], (dir / "runs" / "version_1" / "checkpoints" / "last.ckpt").string());
  EXPECT_EQ(fit.err.find("was not logged"), std::string::npos) << fit.err;

  auto test = run("test " + common() + " --ckpt_path best", dir);  // the refit's model
  ASSERT_EQ(test.code, 0) << test.err;
  EXPECT_GT(test.last_json().at("record.fraud/test:accuracy:content").get<double>(), 0.9) << test.out;

  for (std::string mode : {"", " --early_stopping.refit=auto"}) {  // never, the default; auto: 4,000 rows are enough
    fs::remove_all(dir / "runs");
    auto plain = run("fit " + common() + short_fit + mode, dir);
    ASSERT_EQ(plain.code, 0) << plain.err;
    EXPECT_FALSE(plain.last_json().contains("refit")) << mode << plain.out;
    EXPECT_FALSE(fs::exists(dir / "runs" / "version_1")) << mode;
    EXPECT_EQ(plain.err.find("refit"), std::string::npos) << plain.err;
  }
  // auto refits a table of fewer than 1,000 rows.
  std::ifstream all(j2v::testing::source_path("examples/transactions/train.jsonl"));
  std::vector<std::string> few(600);
  for (auto& line : few) std::getline(all, line);
  j2v::testing::write_lines(dir / "few.jsonl", few);
  fs::remove_all(dir / "runs");
  auto small = run("fit " + common() + short_fit + " --early_stopping.refit=auto --data.train=" +
                       (dir / "few.jsonl").string(),
                   dir);
  ASSERT_EQ(small.code, 0) << small.err;
  EXPECT_TRUE(small.last_json().contains("refit")) << small.out;

  // A validation file is not a share of data.train: nothing to give back, and it says so.
  fs::remove_all(dir / "runs");
  auto separate = run("fit " + common() + short_fit + " --early_stopping.refit=always" +
                          " --data.validate=examples/transactions/test.jsonl",
                      dir);
  ASSERT_EQ(separate.code, 0) << separate.err;
  EXPECT_FALSE(separate.last_json().contains("refit")) << separate.out;
  EXPECT_NE(separate.err.find("early_stopping.refit skipped: data.validate is a separate file"), std::string::npos)
      << separate.err;

  // An EarlyStopping and a ModelCheckpoint listed in trainer.callbacks watch the validation
  // loss, which the refit does not have: they rank the fit and stay out of the refit.
  fs::remove_all(dir / "runs");
  auto listed = run("fit " + common() + short_fit + " --early_stopping.refit=always" +
                        " --trainer.callbacks='[{class_path: EarlyStopping, init_args: {patience: 2}}, "
                        "{class_path: ModelCheckpoint, init_args: {save_last: true}}]'",
                    dir);
  ASSERT_EQ(listed.code, 0) << listed.err;
  ASSERT_TRUE(listed.last_json().contains("refit")) << listed.out << listed.err;
  EXPECT_EQ(listed.err.find("was not logged"), std::string::npos) << listed.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(dir / "runs" / "version_1" / "checkpoints" / "index.json"))["best_model_path"],
            (dir / "runs" / "version_1" / "checkpoints" / "last.ckpt").string());
}

TEST_F(Cli, AMalformedRecordIsOneLineNamingFileAndLine) {
  auto bad = dir / "bad.jsonl";
  j2v::testing::write_lines(bad, {R"({"amount": 1, "merchant": "books", "fraud": "no"})", R"({"amount": 2, "merchant": )"});
  auto r = run("fit " + common() + " --data.train=" + bad.string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(bad.string() + ":2: malformed JSON"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir / "runs" / "version_0" / "checkpoints"));
}

// predict reads its file as it goes: a bad record far into it fails the run after rows have
// gone to the writer, and still names file and line and leaves no output, complete or partial.
TEST_F(Cli, ABadRecordDeepInAPredictFileLeavesNoOutput) {
  auto fit = run("fit " + common() + " --trainer.max_epochs=1", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  std::vector<std::string> lines;
  for (int i = 0; i < 3000; ++i) lines.push_back(R"({"amount": 12.5, "merchant": "books", "hour": 3, "country": "DE"})");
  struct Case {
    std::string line, message;
  };
  for (const Case& c : {Case{R"({"amount": 2, "merchant": )", ":2501: malformed JSON"},
                        Case{R"({"amount": {"value": 2}, "merchant": "books"})",
                             ":2501: field 'record.amount' is an object, but the field is a number"}}) {
    for (std::string format : {"parquet", "jsonl"}) {
      auto bad = dir / "predict.jsonl";
      auto with_bad = lines;
      with_bad[2500] = c.line;
      j2v::testing::write_lines(bad, with_bad);
      fs::remove_all(dir / "predictions");
      auto r = run("predict " + common() + " --ckpt_path last --data.predict=" + bad.string() +
                       " --prediction_writer.format=" + format + " --prediction_writer.flush_every_n_batches=1",
                   dir);
      EXPECT_EQ(r.code, 1) << format;
      EXPECT_NE(r.err.find(bad.string() + c.message), std::string::npos) << format << ": " << r.err;
      if (fs::exists(dir / "predictions"))
        EXPECT_TRUE(fs::is_empty(dir / "predictions")) << format << ": a file was left behind";
    }
  }
}

// Files a hostile or careless user gives as data: each fails with one line naming the file
// (and line), or is read as the text it is; none crashes the process or loses records silently.
TEST_F(Cli, HostileDataFilesFailClearlyOrReadAsText) {
  auto fit = run("fit " + common() + " --trainer.max_epochs=1", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  const std::string record = R"({"amount": 12.5, "merchant": "books", "hour": 3, "country": "DE"})";
  auto predict = [&](const std::string& data, const std::string& extra = "") {
    fs::remove_all(dir / "predictions");
    return run("predict " + common() + " --ckpt_path last --prediction_writer.format=jsonl --data.predict=" + data +
                   extra,
               dir);
  };
  auto lines_in = [](const fs::path& file) {
    std::ifstream in(file);
    return std::count(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>(), '\n');
  };
  auto file = dir / "in.jsonl";

  // Two records on one line: refused, not one of them dropped.
  j2v::testing::write_lines(file, {record, record + " " + record, record});
  auto r = predict(file.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(file.string() + ":2: content after the JSON object"), std::string::npos) << r.err;

  // A key the schema does not use, nested 100,000 deep: a clear error, or skipped; no crash.
  j2v::testing::write_lines(file, {record, R"({"amount": 1, "junk": )" + std::string(100000, '[') +
                                               std::string(100000, ']') + "}"});
  r = predict(file.string());
  EXPECT_TRUE(r.code == 0 || (r.code == 1 && r.err.find(file.string() + ":2: ") != std::string::npos))
      << r.code << ": " << r.err.substr(0, 300);

  // A number beyond a double: refused naming the line, as serve refuses it (not read as inf).
  j2v::testing::write_lines(file, {record, R"({"amount": 1e400, "merchant": "books"})"});
  r = predict(file.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(file.string() + ":2: malformed JSON"), std::string::npos) << r.err;

  // A UTF-8 byte-order mark is not part of the first record.
  j2v::testing::write_lines(file, {"\xEF\xBB\xBF" + record, record});
  r = predict(file.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_in(dir / "predictions" / "rank-0.jsonl"), 2);

  // A directory, or a device that never ends a line.
  r = predict(dir.string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("is a directory"), std::string::npos) << r.err;
  r = predict("/dev/zero");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/dev/zero:1: a line longer than 256 MiB"), std::string::npos) << r.err;

  // Fields other than the checkpoint's: refused, naming the difference, not silently replaced.
  j2v::testing::write_lines(file, {record});
  r = predict(file.string(), " --model.fields.extra=number --model.fields.hour=category");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("'extra' is not in the checkpoint"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'hour' is a category here but a number in the checkpoint"), std::string::npos) << r.err;
}

TEST_F(Cli, AWrongTypeNamesTheField) {
  auto bad = dir / "bad.jsonl";
  j2v::testing::write_lines(bad, {R"({"amount": 1, "merchant": "books", "fraud": "no"})",
                                  R"({"amount": {"value": 2}, "merchant": "books", "fraud": "no"})"});
  auto r = run("fit " + common() + " --data.train=" + bad.string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find(":2: field 'record.amount' is an object, but the field is a number"), std::string::npos) << r.err;
}

TEST_F(Cli, AnUnknownConfigKeyIsRejectedWithASuggestion) {
  auto r = run("fit " + common() + " --trainer.max_epoch=3", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown config key 'trainer.max_epoch'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("did you mean 'trainer.max_epochs'"), std::string::npos) << r.err;
  auto bad_type = run("fit " + common() + " --model.fields.amount=money", dir);
  EXPECT_EQ(bad_type.code, 2);
  EXPECT_NE(bad_type.err.find("unknown field type 'money'"), std::string::npos) << bad_type.err;
}

TEST_F(Cli, AnUnreadableCheckpointIsAClearError) {
  auto ckpt = dir / "broken.ckpt";
  j2v::testing::write_lines(ckpt, {"garbage"});
  auto r = run("predict " + common() + " --ckpt_path " + ckpt.string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot read checkpoint"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "predictions" / "rank-0.parquet"));
  auto none = run("test " + common() + " --ckpt_path best", dir);
  EXPECT_EQ(none.code, 1);
  EXPECT_NE(none.err.find("no run under"), std::string::npos) << none.err;
}

TEST_F(Cli, PrintConfigShowsDefaultsAndOverrides) {
  auto r = run("print-config " + common() + " --trainer.max_epochs=7", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("max_epochs: 7"), std::string::npos);
  EXPECT_NE(r.out.find("validate_fraction: 0.1"), std::string::npos);
  auto help = run("--help", dir);
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("trainer.gradient_clip_val"), std::string::npos);
}

TEST_F(Cli, BenchEncodeReportsThroughput) {
  auto r = run("bench encode " + common() + " --input examples/transactions/train.jsonl", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = r.last_json();
  EXPECT_EQ(j["records"], 4000);
  EXPECT_GT(j["records_per_second"].get<double>(), 0);
}

TEST_F(Cli, BenchGemmReportsTheMachinesRateAndRefusesUnknownOptions) {
  auto r = run("bench gemm --threads 1 --seconds 0.01", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = r.last_json();
  EXPECT_EQ(j["threads"], 1);
  for (const char* shape : {"square", "thin"}) {
    // A float GEMM on any machine this runs on does well over a billion multiply-adds a second.
    EXPECT_GT(j[shape]["multiply_adds_per_second"].get<double>(), 1e9) << shape;
    EXPECT_GT(j[shape]["m"].get<int64_t>(), 0) << shape;
  }
  EXPECT_EQ(j["float32_matmul_precision"], "highest");
  EXPECT_FALSE(j["bf16_products"].get<bool>());
  // At medium the rate is bfloat16 products' where the CPU has them (reported either way).
  auto medium = run("bench gemm --threads 1 --seconds 0.01 --float32_matmul_precision medium", dir);
  ASSERT_EQ(medium.code, 0) << medium.err;
  EXPECT_EQ(medium.last_json()["float32_matmul_precision"], "medium");
  EXPECT_GT(medium.last_json()["square"]["multiply_adds_per_second"].get<double>(), 1e9);
  auto bad_precision = run("bench gemm --float32_matmul_precision low", dir);
  EXPECT_NE(bad_precision.code, 0);
  EXPECT_NE(bad_precision.err.find("must be highest or medium, got 'low'"), std::string::npos) << bad_precision.err;
  auto wrong = run("bench gemm --rounds 3", dir);
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("--seconds S and --float32_matmul_precision highest|medium, not --rounds"),
            std::string::npos)
      << wrong.err;
  auto not_a_number = run("bench gemm --threads two", dir);
  EXPECT_NE(not_a_number.code, 0);
  EXPECT_NE(not_a_number.err.find("--threads needs a number, got 'two'"), std::string::npos) << not_a_number.err;
  auto trailing = run("bench gemm --seconds 0.5s", dir);
  EXPECT_NE(trailing.code, 0);
  EXPECT_NE(trailing.err.find("--seconds needs a number, got '0.5s'"), std::string::npos) << trailing.err;
}

TEST_F(Cli, BenchAttentionTimesTheKernelAndRefusesOptionsOutOfRange) {
  auto r = run("bench attention --items 50 --keys 6 --absent 0.3 --rounds 2", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = r.last_json();
  EXPECT_EQ(j["items"], 50);
  EXPECT_EQ(j["keys"], 6);
  EXPECT_DOUBLE_EQ(j["dropout"].get<double>(), 0.1);  // the model's default
  EXPECT_GT(j["forward_ms"].get<double>(), 0);
  EXPECT_GT(j["backward_ms"].get<double>(), 0);
  auto too_long = run("bench attention --keys 129", dir);
  EXPECT_NE(too_long.code, 0);
  EXPECT_NE(too_long.err.find("--keys must be in [1, 128], got 129"), std::string::npos) << too_long.err;
  auto half_item = run("bench attention --items 2.5", dir);
  EXPECT_NE(half_item.code, 0);
  EXPECT_NE(half_item.err.find("--items needs a whole number, got '2.5'"), std::string::npos) << half_item.err;
  auto certain = run("bench attention --dropout 1", dir);
  EXPECT_NE(certain.code, 0);
  EXPECT_NE(certain.err.find("--dropout must be in [0, 1), got 1"), std::string::npos) << certain.err;
  auto huge = run("bench attention --items 10000000 --keys 128", dir);
  EXPECT_NE(huge.code, 0);
  EXPECT_NE(huge.err.find("is too large"), std::string::npos) << huge.err;
  auto unknown = run("bench attention --heads 8", dir);
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.err.find("not --heads"), std::string::npos) << unknown.err;
}

TEST_F(Cli, BenchEngineTimesTheSameStepsWithAndWithoutTheEngine) {
  auto r = run("bench engine " + common() + " --data.batch_size=512", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = r.last_json();
  EXPECT_EQ(j["steps_per_epoch"], 8);  // 90% of 4,000 records, 512 a batch
  EXPECT_GT(j["bare_ms_per_step"].get<double>(), 0);
  EXPECT_GT(j["engine_own_ms_per_step"].get<double>(), 0);
}

}  // namespace

// The transactions example as a directory of files read as a stream: Parquet for training,
// zstd JSON Lines to predict, with the order of the predictions that of the input.
TEST_F(Cli, StreamingFitAndPredictFromADirectory) {
  auto root = dir / "data";
  fs::create_directories(root / "train");
  fs::create_directories(root / "predict");
  std::string train = j2v::testing::source_path("examples/transactions/train.jsonl").string();
  std::string predict = j2v::testing::source_path("examples/transactions/predict.jsonl").string();
  // Made as a user would: with json2vec convert.
  auto converted = run("convert --input " + train + " --output " + (root / "train" / "all.parquet").string(), dir);
  ASSERT_EQ(converted.code, 0) << converted.err;
  std::string streaming = " --data.train=null --data.test=null --data.predict=null --data.streaming='{root: " +
                          root.string() + ", suffix: parquet, train: /train/, shuffle_buffer: 1000}'";
  auto fit = run("fit " + common() + streaming + " --trainer.max_epochs=3", dir);
  ASSERT_EQ(fit.code, 0) << fit.err;
  EXPECT_GT(fit.last_json().at("record.fraud/validate:accuracy:content").get<double>(), 0.9) << fit.out;

  j2v::testing::write_bytes(root / "predict" / "p.jsonl.zst", j2v::testing::zstd(j2v::testing::read_bytes(predict)));
  std::string predict_stream = " --data.train=null --data.test=null --data.predict=null --data.streaming='{root: " +
                               root.string() + ", suffix: jsonl, predict: /predict/, rank: 2, world_size: 3}'";
  auto out = run("predict " + common() + predict_stream + " --ckpt_path last --data.batch_size=16 --data.num_workers=2", dir);
  ASSERT_EQ(out.code, 0) << out.err;
  auto file = dir / "predictions" / "rank-2.parquet";  // the rank names the file
  ASSERT_TRUE(fs::exists(file)) << out.out;
  std::string first_input;
  // 3 ranks x 2 workers = 6 shards of runs of 16 records; rank 2 holds shards 4 and 5, so of
  // the 200 records it takes runs 4, 5, 10 and 11: 64 records, the first of them record 65.
  EXPECT_EQ(parquet_rows(file, &first_input), 64);
  std::ifstream in(predict);
  std::string line;
  for (int i = 0; i < 65; ++i) std::getline(in, line);
  EXPECT_EQ(nlohmann::json::parse(first_input), nlohmann::json::parse(line));
}

TEST_F(Cli, StreamingMistakesNameTheKey) {
  auto r = run("fit " + common() + " --data.train=null --data.test=null --data.predict=null --data.streaming='{root: /tmp, trian: x}'", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown config key 'data.streaming.trian'; allowed: root, suffix, train"), std::string::npos)
      << r.err;
  // A key the data section gives both modules is set there, not here.
  r = run("fit " + common() + " --data.train=null --data.test=null --data.predict=null "
          "--data.streaming='{root: /tmp, batch_size: 64}'", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("config key 'data.streaming.batch_size': set it as data.batch_size"), std::string::npos) << r.err;
  r = run("fit " + common() + " --data.train=null --data.test=null --data.predict=null "
          "--data.streaming='{root: /tmp, chunk_size: many}'", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("data.streaming.chunk_size: expected int, got \"many\""), std::string::npos)
      << r.err;
  r = run("fit " + common() + " --data.streaming='{root: /tmp, train: x}'", dir);
  EXPECT_NE(r.err.find("'data.train' and 'data.streaming' exclude each other"), std::string::npos) << r.err;
  auto root = dir / "data";
  fs::create_directories(root / "train");
  fs::copy_file(j2v::testing::source_path("examples/transactions/train.jsonl"), root / "train" / "a.jsonl");
  r = run("fit " + common() + " --data.train=null --data.test=null --data.predict=null --data.streaming='{root: " +
              root.string() + ", train: /train/, replacement: true}'",
          dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("set trainer.limit_train_batches to a number of batches"), std::string::npos) << r.err;
  r = run("fit " + common() + " --data.train=null --data.test=null --data.predict=null --trainer.max_epochs=1 "
              "--trainer.limit_train_batches=5 --data.streaming='{root: " + root.string() + ", train: /train/, replacement: true}'",
          dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.last_json()["global_step"], 5.0);
}

// Temporary files ("<name>.tmp-<pid>") left in a directory.
std::vector<std::string> leftovers(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos) names.push_back(entry.path().filename());
  return names;
}

TEST_F(Cli, ConvertWritesParquetThatReadsBackAsTheSameRecords) {
  auto generated = dir / "orders.jsonl";
  ASSERT_EQ(run("generate orders --rows 50 --seed 3 --output " + generated.string(), dir).code, 0);
  auto parquet = dir / "orders.parquet";
  auto r = run("convert --input " + generated.string() + " --output " + parquet.string(), dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.last_json()["rows"], 50);
  EXPECT_EQ(leftovers(dir), std::vector<std::string>{});
  // Nested items survive: a record read back from Parquet equals its JSON Lines original.
  std::string first_input;
  duckdb_database db;
  duckdb_connection con;
  duckdb_result result;
  ASSERT_EQ(duckdb_open(nullptr, &db), DuckDBSuccess);
  ASSERT_EQ(duckdb_connect(db, &con), DuckDBSuccess);
  std::string sql = "SELECT to_json(t)::VARCHAR FROM read_parquet('" + parquet.string() + "') t LIMIT 1";
  ASSERT_EQ(duckdb_query(con, sql.c_str(), &result), DuckDBSuccess) << duckdb_result_error(&result);
  char* text = duckdb_value_varchar(&result, 0, 0);
  std::string from_parquet = text;
  duckdb_free(text);
  duckdb_destroy_result(&result);
  duckdb_disconnect(&con);
  duckdb_close(&db);
  std::ifstream in(generated);
  std::string line;
  std::getline(in, line);
  auto original = nlohmann::json::parse(line), back = nlohmann::json::parse(from_parquet);
  // DuckDB types what it reads: the ISO timestamp became a TIMESTAMP, written back with a
  // space and no Z (the same instant; dateparts reads both forms).
  std::string iso = original["placed_at"];
  EXPECT_EQ(back["placed_at"], iso.substr(0, 10) + " " + iso.substr(11, 8));
  original.erase("placed_at");
  back.erase("placed_at");
  EXPECT_EQ(back, original);

  r = run("convert --input " + generated.string() + " --output " + (dir / "x.parquet.gz").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("convert writes uncompressed files"), std::string::npos) << r.err;
  // A malformed input: an error naming it, and neither the output nor its temporary file left.
  auto broken = dir / "broken.jsonl";
  j2v::testing::write_lines(broken, {R"({"a": 1})", R"({"a": )"});
  r = run("convert --input " + broken.string() + " --output " + (dir / "z.parquet").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("cannot convert '" + broken.string() + "'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "z.parquet"));
  EXPECT_EQ(leftovers(dir), std::vector<std::string>{});
  r = run("convert --input " + (dir / "missing.jsonl").string() + " --output " + (dir / "y.parquet").string(), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("no such file"), std::string::npos) << r.err;
}

// Ragged CSV rows and an open quote are errors on one line, not rows padded with nulls, a
// lost header or a quote inside a label; JSON nested past 1,000 levels is refused (DuckDB
// would crash on it). A well-formed CSV, with any common delimiter, still reads.
TEST_F(Cli, ConvertRefusesRaggedCsvAndRunawayNesting) {
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return (dir / name).string();
  };
  auto convert = [&](const std::string& input) {
    return run("convert --input " + input + " --output " + (dir / "out.jsonl").string(), dir);
  };
  for (const char* text : {"a,b,c\n1,2,3\n4,5\n6,7,8,9\n", "a,b\n1,\"x\n2,y\n"}) {
    auto r = convert(write("bad.csv", text));
    EXPECT_EQ(r.code, 1) << text;
    EXPECT_NE(r.err.find("cannot convert '" + (dir / "bad.csv").string() + "'"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out.jsonl"));
  }
  auto r = convert(write("deep.jsonl", "{\"a\": 1}\n{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}\n"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("deep.jsonl:2: nested deeper than 1000 levels"), std::string::npos) << r.err;
  for (const char* text : {"a,b\n1,x\n2,\"y, z\"\n", "a;b\n1;x\n2;y\n", "a\tb\n1\tx\n2\ty\n"}) {
    r = convert(write("good.csv", text));
    ASSERT_EQ(r.code, 0) << text << r.err;
    EXPECT_EQ(r.last_json()["rows"], 2) << text;
    std::ifstream in(dir / "out.jsonl");
    std::string first;
    std::getline(in, first);
    EXPECT_EQ(nlohmann::json::parse(first), nlohmann::json::parse(R"({"a":1,"b":"x"})")) << text;
  }
}
