// Round trips through RowWriter. Parquet output is read back twice: with DuckDB (the library
// that wrote it, so a shared bug could hide) and with hyparquet, an independent JavaScript
// reader (tests/io/read_parquet.mjs; skipped unless `npm ci --prefix tests/io` was run).
#include "io/row_writer.h"

#include "base/raw_json.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "duckdb.h"

#ifndef JSON2VEC_SOURCE_DIR
#error "JSON2VEC_SOURCE_DIR must name the repository root"
#endif

namespace j2v::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string sql_string(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// A private in-memory DuckDB for reading files back.
class Reader {
 public:
  Reader() {
    EXPECT_EQ(duckdb_open(nullptr, &db_), DuckDBSuccess);
    EXPECT_EQ(duckdb_connect(db_, &con_), DuckDBSuccess);
  }
  ~Reader() {
    duckdb_disconnect(&con_);
    duckdb_close(&db_);
  }

  // Every cell as text; NULL as std::nullopt. Fails the test on a query error.
  std::vector<std::vector<std::optional<std::string>>> query(const std::string& sql) {
    std::vector<std::vector<std::optional<std::string>>> rows;
    duckdb_result result;
    if (duckdb_query(con_, sql.c_str(), &result) == DuckDBError) {
      ADD_FAILURE() << sql << ": " << duckdb_result_error(&result);
      duckdb_destroy_result(&result);
      return rows;
    }
    for (idx_t r = 0; r < duckdb_row_count(&result); ++r) {
      std::vector<std::optional<std::string>> row;
      for (idx_t c = 0; c < duckdb_column_count(&result); ++c) {
        char* text = duckdb_value_varchar(&result, c, r);
        row.push_back(text ? std::optional<std::string>(text) : std::nullopt);
        duckdb_free(text);
      }
      rows.push_back(std::move(row));
    }
    duckdb_destroy_result(&result);
    return rows;
  }

  // The file's rows, each as a JSON object, in file order.
  json parquet_rows(const std::string& path) {
    json rows = json::array();
    for (const auto& row : query("SELECT to_json(t)::VARCHAR FROM read_parquet(" + sql_string(path) + ") t")) {
      rows.push_back(json::parse(*row.at(0)));
    }
    return rows;
  }

  // Column name -> DuckDB's spelling of its type, as read from the file.
  std::vector<std::pair<std::string, std::string>> parquet_columns(const std::string& path) {
    std::vector<std::pair<std::string, std::string>> columns;
    for (const auto& row : query("DESCRIBE SELECT * FROM read_parquet(" + sql_string(path) + ")")) {
      columns.emplace_back(*row.at(0), *row.at(1));
    }
    return columns;
  }

 private:
  duckdb_database db_ = nullptr;
  duckdb_connection con_ = nullptr;
};

bool hyparquet_available() {
  static const bool available =
      std::system("command -v node >/dev/null 2>&1") == 0 &&
      fs::exists(fs::path(JSON2VEC_SOURCE_DIR) / "tests/io/node_modules/hyparquet/package.json");
  return available;
}

#define SKIP_WITHOUT_HYPARQUET()                                                            \
  if (!hyparquet_available())                                                               \
  GTEST_SKIP() << "node or hyparquet missing; run `npm ci --prefix tests/io` in the repo root " \
                  "to enable the independent Parquet check"

// {"num_rows", "schema", "rows"} as printed by tests/io/read_parquet.mjs.
json read_with_hyparquet(const std::string& path) {
  std::string script = (fs::path(JSON2VEC_SOURCE_DIR) / "tests/io/read_parquet.mjs").string();
  std::string command = "node '" + script + "' '" + path + "' 2>&1";
  std::FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) {
    ADD_FAILURE() << "cannot run " << command;
    return json();
  }
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = pclose(pipe);
  if (status != 0) {
    ADD_FAILURE() << command << " failed:\n" << output;
    return json();
  }
  return json::parse(output);
}

const json* schema_child(const json& node, const std::string& name) {
  for (const auto& child : node.at("children")) {
    if (child.at("name") == name) return &child;
  }
  return nullptr;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  return names;
}

std::string temp_path_of(const std::string& path) { return path + ".tmp-" + std::to_string(::getpid()); }

class RowWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "row_writer_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

// Columns that cover every supported shape, with struct field names that contain dots, as
// prediction outputs have them.
std::vector<ColumnType> prediction_columns() {
  return {
      {"id", "BIGINT"},
      {"inputs", "VARCHAR"},
      {"predictions",
       "STRUCT(\"record.fraud\" STRUCT(prob DOUBLE, label VARCHAR, probs FLOAT[]), "
       "\"record.amount\" STRUCT(value DOUBLE, count INTEGER))"},
      {"embedding", "FLOAT[]"},
      {"flag", "BOOLEAN"},
      {"meta", "JSON"},
      {"pair", "DOUBLE[2]"},
      {"items", "STRUCT(name VARCHAR, scores DOUBLE[])[]"},
  };
}

// Rows with NULLs at every level: missing column, JSON null column, null struct, null struct
// field, missing struct field, null list element, empty list. Floats are exact in FLOAT.
std::vector<json> prediction_rows() {
  return {
      json::parse(R"({"id": 1, "inputs": "{\"amount\": 12.5}",
        "predictions": {"record.fraud": {"prob": 0.25, "label": "yes", "probs": [0.75, 0.25]},
                        "record.amount": {"value": 12.5, "count": 3}},
        "embedding": [1.5, -2.25, 0.0], "flag": true, "meta": {"source": "a", "n": [1, 2]},
        "pair": [1.0, 2.0], "items": [{"name": "x", "scores": [0.5]}]})"),
      json::parse(R"({"id": 2})"),
      json::parse(R"({"id": 3, "inputs": null,
        "predictions": {"record.fraud": null, "record.amount": {"value": null}},
        "embedding": [0.5, null, -1.25], "flag": false, "meta": null, "pair": [null, 2.5],
        "items": []})"),
      json::parse(R"({"id": null, "predictions": null, "embedding": [], "meta": "just text",
        "items": [{"name": null, "scores": null}, {"name": "b", "scores": [1.0, null]}]})"),
  };
}

// What every reader must return: all columns present, absent values as null.
json expected_prediction_rows() {
  return json::parse(R"([
    {"id": 1, "inputs": "{\"amount\": 12.5}",
     "predictions": {"record.fraud": {"prob": 0.25, "label": "yes", "probs": [0.75, 0.25]},
                     "record.amount": {"value": 12.5, "count": 3}},
     "embedding": [1.5, -2.25, 0.0], "flag": true, "meta": {"source": "a", "n": [1, 2]},
     "pair": [1.0, 2.0], "items": [{"name": "x", "scores": [0.5]}]},
    {"id": 2, "inputs": null, "predictions": null, "embedding": null, "flag": null, "meta": null,
     "pair": null, "items": null},
    {"id": 3, "inputs": null,
     "predictions": {"record.fraud": null, "record.amount": {"value": null, "count": null}},
     "embedding": [0.5, null, -1.25], "flag": false, "meta": null, "pair": [null, 2.5], "items": []},
    {"id": null, "inputs": null, "predictions": null, "embedding": [], "flag": null,
     "meta": "just text", "pair": null,
     "items": [{"name": null, "scores": null}, {"name": "b", "scores": [1.0, null]}]}
  ])");
}

std::string write_predictions(const std::string& path, const std::string& format) {
  auto writer = make_row_writer(path, format, prediction_columns());
  for (const auto& row : prediction_rows()) writer->write(row);
  EXPECT_EQ(writer->rows_written(), 4);
  writer->close();
  return path;
}

TEST_F(RowWriterTest, ParquetRoundTripThroughDuckDB) {
  std::string path = write_predictions(file("out.parquet"), "parquet");
  Reader reader;
  EXPECT_EQ(reader.parquet_rows(path), expected_prediction_rows());
  // Types come back as declared, except that Parquet has no fixed-size list: DOUBLE[2]
  // returns as DOUBLE[]. DuckDB quotes field names that are keywords ("label", "value").
  std::vector<std::pair<std::string, std::string>> expected_types = {
      {"id", "BIGINT"},
      {"inputs", "VARCHAR"},
      {"predictions",
       "STRUCT(\"record.fraud\" STRUCT(prob DOUBLE, \"label\" VARCHAR, probs FLOAT[]), "
       "\"record.amount\" STRUCT(\"value\" DOUBLE, count INTEGER))"},
      {"embedding", "FLOAT[]"},
      {"flag", "BOOLEAN"},
      {"meta", "JSON"},
      {"pair", "DOUBLE[]"},
      {"items", "STRUCT(\"name\" VARCHAR, scores DOUBLE[])[]"},
  };
  EXPECT_EQ(reader.parquet_columns(path), expected_types);
  // A dotted field name is one path segment, reachable by quoting it.
  auto probs = reader.query("SELECT predictions.\"record.fraud\".prob FROM read_parquet(" + sql_string(path) + ")");
  ASSERT_EQ(probs.size(), 4u);
  EXPECT_EQ(probs[0][0], std::optional<std::string>("0.25"));
  EXPECT_EQ(probs[2][0], std::nullopt);
}

TEST_F(RowWriterTest, ParquetRoundTripThroughHyparquet) {
  SKIP_WITHOUT_HYPARQUET();
  std::string path = write_predictions(file("out.parquet"), "parquet");
  json file = read_with_hyparquet(path);
  ASSERT_TRUE(file.is_object());
  EXPECT_EQ(file.at("num_rows"), 4);
  EXPECT_EQ(file.at("rows"), expected_prediction_rows());

  // The dotted names are single schema elements, not split into nested groups.
  const json* predictions = schema_child(file.at("schema"), "predictions");
  ASSERT_NE(predictions, nullptr);
  const json* fraud = schema_child(*predictions, "record.fraud");
  ASSERT_NE(fraud, nullptr);
  ASSERT_NE(schema_child(*fraud, "prob"), nullptr);
  EXPECT_EQ(schema_child(*fraud, "prob")->at("type"), "DOUBLE");
  ASSERT_NE(schema_child(*predictions, "record.amount"), nullptr);
  EXPECT_EQ(schema_child(*schema_child(*predictions, "record.amount"), "count")->at("type"), "INT32");
  const json* embedding = schema_child(file.at("schema"), "embedding");
  ASSERT_NE(embedding, nullptr);
  EXPECT_EQ(embedding->at("converted_type"), "LIST");
  EXPECT_EQ(embedding->at("children").at(0).at("children").at(0).at("type"), "FLOAT");
  EXPECT_EQ(schema_child(file.at("schema"), "id")->at("type"), "INT64");
  EXPECT_EQ(schema_child(file.at("schema"), "meta")->at("converted_type"), "JSON");
}

TEST_F(RowWriterTest, JsonlRoundTrip) {
  std::string path = write_predictions(file("out.jsonl"), "jsonl");
  std::vector<std::string> lines = read_lines(path);
  // Values pass through untouched: only missing top-level columns are filled in with null.
  json expected = expected_prediction_rows();
  expected[2]["predictions"]["record.amount"].erase("count");
  ASSERT_EQ(lines.size(), expected.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(json::parse(lines[i]), expected[i]) << lines[i];
  // Compact, in column order (not nlohmann's sorted key order), missing columns as null.
  EXPECT_EQ(lines[1],
            R"({"id":2,"inputs":null,"predictions":null,"embedding":null,"flag":null,"meta":null,)"
            R"("pair":null,"items":null})");
}

// A raw_json value (a record's text kept as read) is written as that text: into a JSON
// column of Parquet, and into any column of JSON Lines.
TEST_F(RowWriterTest, RawJsonIsWrittenVerbatim) {
  const std::string record = R"({"b":2, "a":[1.50,true]})";
  for (std::string format : {"jsonl", "parquet"}) {
    std::string path = file("raw." + format);
    auto writer = make_row_writer(path, format, {{"inputs", "JSON"}, {"n", "BIGINT"}});
    writer->write({{"inputs", raw_json(record)}, {"n", 1}});
    writer->write({{"inputs", {{"z", 1}, {"a", 2}}}, {"n", 2}});  // a tree is still printed
    writer->close();
    if (format == "jsonl") {
      EXPECT_EQ(read_lines(path), (std::vector<std::string>{R"({"inputs":)" + record + R"(,"n":1})",
                                                              R"({"inputs":{"a":2,"z":1},"n":2})"}));
    } else {
      Reader reader;
      auto text = reader.query("SELECT inputs::VARCHAR FROM read_parquet(" + sql_string(path) + ") ORDER BY n");
      ASSERT_EQ(text.size(), 2u);
      EXPECT_EQ(text[0][0], std::optional<std::string>(record));
      EXPECT_EQ(text[1][0], std::optional<std::string>(R"({"a":2,"z":1})"));
    }
  }
  nlohmann::json row = {{"inputs", raw_json(record)}, {"list", {raw_json("[1, 2]")}}};
  materialize_raw_json(row);
  EXPECT_EQ(row, nlohmann::json::parse(R"({"inputs":{"b":2,"a":[1.5,true]},"list":[[1,2]]})"));
}

TEST_F(RowWriterTest, JsonlIgnoresTypes) {
  std::string path = file("out.jsonl");
  auto writer = make_row_writer(path, "jsonl", {{"b", "BIGINT"}, {"a", "VARCHAR"}});
  writer->write({{"a", {1, 2}}, {"b", "not a number"}});
  writer->close();
  EXPECT_EQ(read_lines(path), std::vector<std::string>{R"({"b":"not a number","a":[1,2]})"});
}

TEST_F(RowWriterTest, ZeroRowsGiveAnEmptyFileWithTheSchema) {
  std::string parquet = file("empty.parquet");
  auto writer = make_row_writer(parquet, "parquet", prediction_columns());
  writer->close();
  EXPECT_EQ(writer->rows_written(), 0);
  Reader reader;
  EXPECT_EQ(reader.parquet_rows(parquet), json::array());
  EXPECT_EQ(reader.parquet_columns(parquet).size(), prediction_columns().size());

  std::string jsonl = file("empty.jsonl");
  auto jsonl_writer = make_row_writer(jsonl, "jsonl", prediction_columns());
  jsonl_writer->close();
  ASSERT_TRUE(fs::exists(jsonl));
  EXPECT_EQ(fs::file_size(jsonl), 0u);
  EXPECT_EQ(files_in(dir_).size(), 2u) << "temp files left behind";
}

TEST_F(RowWriterTest, ZeroRowsReadByHyparquet) {
  SKIP_WITHOUT_HYPARQUET();
  std::string path = file("empty.parquet");
  make_row_writer(path, "parquet", prediction_columns())->close();
  json file = read_with_hyparquet(path);
  EXPECT_EQ(file.at("num_rows"), 0);
  EXPECT_EQ(file.at("rows"), json::array());
  EXPECT_EQ(file.at("schema").at("children").size(), prediction_columns().size());
}

// Many rows, flushed at an interval that does not divide DuckDB's 2048-row chunks, with nested
// lists so that list children span chunk boundaries.
json many_row(int i) {
  json scores = json::array();
  for (int k = 0; k < i % 4; ++k) scores.push_back(i + 0.5 * k);
  return {{"id", i},
          {"name", "row-" + std::to_string(i)},
          {"nested", {scores, json::array(), {i}}},
          {"items", {{{"name", std::to_string(i)}, {"scores", scores}}}}};
}

void write_many(const std::string& path, const std::string& format, int rows) {
  auto writer = make_row_writer(path, format,
                                {{"id", "BIGINT"},
                                 {"name", "VARCHAR"},
                                 {"nested", "DOUBLE[][]"},
                                 {"items", "STRUCT(name VARCHAR, scores DOUBLE[])[]"}});
  for (int i = 0; i < rows; ++i) {
    writer->write(many_row(i));
    if (i % 700 == 699) writer->flush();
  }
  EXPECT_EQ(writer->rows_written(), rows);
  writer->close();
}

TEST_F(RowWriterTest, MultipleFlushesKeepEveryRowInOrder) {
  const int kRows = 5000;
  std::string parquet = file("many.parquet");
  write_many(parquet, "parquet", kRows);
  Reader reader;
  json rows = reader.parquet_rows(parquet);
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(rows[i], many_row(i)) << "row " << i;

  std::string jsonl = file("many.jsonl");
  write_many(jsonl, "jsonl", kRows);
  std::vector<std::string> lines = read_lines(jsonl);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(json::parse(lines[i]), many_row(i)) << "line " << i;
}

TEST_F(RowWriterTest, MultipleFlushesReadByHyparquet) {
  SKIP_WITHOUT_HYPARQUET();
  const int kRows = 5000;
  std::string path = file("many.parquet");
  write_many(path, "parquet", kRows);
  json rows = read_with_hyparquet(path).at("rows");
  ASSERT_EQ(rows.size(), static_cast<size_t>(kRows));
  for (int i = 0; i < kRows; ++i) ASSERT_EQ(rows[i], many_row(i)) << "row " << i;
}

// A long prediction job must not hold its output in memory: each row group goes to the temp
// file while later rows are still being written, and the finished file has them all, in order.
TEST_F(RowWriterTest, ParquetRowGroupsReachTheDiskBeforeClose) {
  const int kGroupRows = 2048, kGroups = 6;
  std::string path = file("streamed.parquet");
  auto writer = make_row_writer(path, "parquet", {{"id", "BIGINT"}, {"name", "VARCHAR"}}, kGroupRows);
  for (int i = 0; i < kGroups * kGroupRows; ++i) {
    writer->write({{"id", i}, {"name", "row-" + std::to_string(i)}});
    if (i % kGroupRows == kGroupRows - 1) writer->flush();
  }
  // The encoder runs on its own thread; give it time to catch up (not a speed bound).
  uintmax_t written = 0;
  for (int wait = 0; wait < 600 && written < 20000; ++wait) {
    written = fs::file_size(temp_path_of(path));
    if (written < 20000) usleep(50 * 1000);
  }
  EXPECT_GE(written, 20000u) << "rows stayed in memory until close()";
  EXPECT_FALSE(fs::exists(path));
  writer->close();
  Reader reader;
  auto groups = reader.query("SELECT count(DISTINCT row_group_id) FROM parquet_metadata('" +
                             path + "')");
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(groups[0][0], std::to_string(kGroups));
  auto order = reader.query("SELECT count(*) FROM (SELECT id, row_number() OVER () - 1 AS position FROM '" + path +
                            "') WHERE id = position");
  EXPECT_EQ(order[0][0], std::to_string(kGroups * kGroupRows));
}

TEST_F(RowWriterTest, NothingAppearsAtThePathBeforeClose) {
  for (std::string format : {"parquet", "jsonl"}) {
    std::string path = file("out." + format);
    auto writer = make_row_writer(path, format, {{"id", "BIGINT"}});
    writer->write({{"id", 1}});
    writer->flush();
    EXPECT_FALSE(fs::exists(path)) << format;
    EXPECT_TRUE(fs::exists(temp_path_of(path))) << format;
    writer->close();
    EXPECT_TRUE(fs::exists(path)) << format;
    EXPECT_FALSE(fs::exists(temp_path_of(path))) << format;
  }
  EXPECT_EQ(files_in(dir_).size(), 2u);
}

TEST_F(RowWriterTest, AbortLeavesNothing) {
  for (std::string format : {"parquet", "jsonl"}) {
    std::string path = file("out." + format);
    auto writer = make_row_writer(path, format, prediction_columns());
    for (const auto& row : prediction_rows()) writer->write(row);
    writer->flush();
    writer->write(prediction_rows()[0]);
    writer->abort();
    writer->abort();  // twice is harmless
    EXPECT_FALSE(fs::exists(path)) << format;
    EXPECT_TRUE(files_in(dir_).empty()) << format << " left temp files behind";
    EXPECT_THROW(writer->write(prediction_rows()[0]), WriteError);
    EXPECT_THROW(writer->close(), WriteError);
  }
}

TEST_F(RowWriterTest, DestructionWithoutCloseLeavesNothing) {
  for (std::string format : {"parquet", "jsonl"}) {
    std::string path = file("out." + format);
    {
      auto writer = make_row_writer(path, format, prediction_columns());
      for (const auto& row : prediction_rows()) writer->write(row);
      writer->flush();
    }
    EXPECT_FALSE(fs::exists(path)) << format;
    EXPECT_TRUE(files_in(dir_).empty()) << format << " left temp files behind";
  }
}

// A process killed mid-write runs no destructor: only temp files may remain.
TEST_F(RowWriterTest, ProcessDeathLeavesOnlyTempFiles) {
  // "fast" forks, so the child writes into this test's directory (no DuckDB is open here).
  ::testing::FLAGS_gtest_death_test_style = "fast";
  for (std::string format : {"parquet", "jsonl"}) {
    std::string path = file("out." + format);
    EXPECT_EXIT(
        {
          auto writer = make_row_writer(path, format, {{"id", "BIGINT"}});
          for (int i = 0; i < 10000; ++i) writer->write({{"id", i}});
          writer->flush();
          std::_Exit(3);
        },
        ::testing::ExitedWithCode(3), "");
    EXPECT_FALSE(fs::exists(path)) << format;
    bool temp_found = false;
    for (const auto& name : files_in(dir_)) {
      EXPECT_EQ(name.rfind("out." + format + ".tmp-", 0), 0u) << "unexpected file " << name;
      temp_found = true;
    }
    EXPECT_TRUE(temp_found) << format;
    // The next writer of the path removes the dead run's leftovers, and only those: a
    // running process's temporary file (pid 1 is always running) is left alone.
    std::ofstream(dir_ / ("out." + format + ".tmp-1")) << "in progress";
    auto next = make_row_writer(path, format, {{"id", "BIGINT"}});
    next->write({{"id", 1}});
    next->close();
    auto left = files_in(dir_);
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, (std::vector<std::string>{"out." + format, "out." + format + ".tmp-1"})) << format;
    for (const auto& name : files_in(dir_)) fs::remove_all(dir_ / name);
  }
}

TEST_F(RowWriterTest, TypeMismatchNamesRowAndColumnAndKeepsTheWriterUsable) {
  std::string path = file("out.parquet");
  auto writer = make_row_writer(path, "parquet", prediction_columns());
  writer->write(prediction_rows()[0]);
  auto message_of = [&](const json& row) -> std::string {
    try {
      writer->write(row);
    } catch (const WriteError& e) {
      return e.what();
    }
    return "no error";
  };
  std::string m = message_of({{"id", "seven"}});
  EXPECT_NE(m.find("row 2"), std::string::npos) << m;
  EXPECT_NE(m.find("column 'id'"), std::string::npos) << m;
  EXPECT_NE(m.find("BIGINT"), std::string::npos) << m;
  EXPECT_NE(m.find("\"seven\""), std::string::npos) << m;

  m = message_of(json::parse(R"({"predictions": {"record.fraud": {"prob": "high"}}})"));
  EXPECT_NE(m.find("row 2"), std::string::npos) << m;
  EXPECT_NE(m.find("column 'predictions' at predictions.\"record.fraud\".prob"), std::string::npos) << m;
  EXPECT_NE(m.find("DOUBLE"), std::string::npos) << m;

  m = message_of({{"embedding", {1.0, "x"}}});
  EXPECT_NE(m.find("embedding[1]"), std::string::npos) << m;
  m = message_of({{"pair", {1.0, 2.0, 3.0}}});
  EXPECT_NE(m.find("exactly 2"), std::string::npos) << m;
  m = message_of(json::parse(R"({"predictions": {"record.other": {}}})"));
  EXPECT_NE(m.find("'record.other' is not a field"), std::string::npos) << m;
  m = message_of({{"no_such_column", 1}});
  EXPECT_NE(m.find("'no_such_column' is not a declared column"), std::string::npos) << m;
  m = message_of({{"flag", 1}});
  EXPECT_NE(m.find("BOOLEAN"), std::string::npos) << m;
  m = message_of({{"inputs", 5}});
  EXPECT_NE(m.find("VARCHAR"), std::string::npos) << m;
  m = message_of({{"inputs", std::string("bad \xff utf-8")}});
  EXPECT_NE(m.find("UTF-8"), std::string::npos) << m;
  m = message_of(json::array({1, 2}));
  EXPECT_NE(m.find("expected a JSON object"), std::string::npos) << m;

  // Rejected rows are not written and do not advance the row count.
  EXPECT_EQ(writer->rows_written(), 1);
  writer->write(prediction_rows()[1]);
  m = message_of({{"id", 1.5}});
  EXPECT_NE(m.find("row 3"), std::string::npos) << m;
  writer->close();
  Reader reader;
  json rows = reader.parquet_rows(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["id"], 1);
  EXPECT_EQ(rows[1]["id"], 2);
}

TEST_F(RowWriterTest, IntegersMustBeWholeAndInRange) {
  std::string path = file("ints.parquet");
  auto writer = make_row_writer(path, "parquet",
                                {{"i8", "TINYINT"}, {"u8", "UTINYINT"}, {"i64", "BIGINT"},
                                 {"u64", "UBIGINT"}, {"i32", "INTEGER"}, {"f", "FLOAT"}});
  writer->write({{"i8", -128}, {"u8", 255}, {"i64", INT64_MIN}, {"u64", UINT64_MAX}, {"i32", 3.0}, {"f", 0.5}});
  writer->write({{"i8", 127}, {"u8", 0}, {"i64", INT64_MAX}, {"u64", 0}, {"i32", -2147483648LL}, {"f", -1e30}});
  for (const json& bad : {json{{"i8", 128}}, json{{"i8", -129}}, json{{"u8", -1}}, json{{"u64", -1}},
                          json{{"i64", UINT64_MAX}}, json{{"i64", 9.3e18}}, json{{"i32", 2.5}},
                          json{{"i32", 2147483648LL}}, json{{"f", 1e39}}, json{{"u8", true}}}) {
    EXPECT_THROW(writer->write(bad), WriteError) << bad.dump();
  }
  writer->close();
  Reader reader;
  json rows = reader.parquet_rows(path);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], json({{"i8", -128}, {"u8", 255}, {"i64", INT64_MIN}, {"u64", UINT64_MAX}, {"i32", 3}, {"f", 0.5}}));
  EXPECT_EQ(rows[1]["i64"], INT64_MAX);
  EXPECT_EQ(rows[1]["i32"], -2147483648LL);
}

TEST_F(RowWriterTest, BadConfigurationIsReportedUpFront) {
  try {
    make_row_writer(file("x.out"), "csv", {{"id", "BIGINT"}});
    FAIL() << "no error";
  } catch (const WriteError& e) {
    EXPECT_STREQ(e.what(), "writer.format: unknown format 'csv' (allowed: parquet, jsonl)");
  }
  auto message_of = [&](const std::vector<ColumnType>& columns) -> std::string {
    try {
      make_row_writer(file("x.parquet"), "parquet", columns);
    } catch (const WriteError& e) {
      return e.what();
    }
    return "no error";
  };
  std::string m = message_of({{"id", "BIGINT"}, {"score", "DUBBLE"}});
  EXPECT_NE(m.find("column 'score'"), std::string::npos) << m;
  EXPECT_NE(m.find("DUBBLE"), std::string::npos) << m;
  m = message_of({{"id", "BIGINT); DROP TABLE x; --"}});
  EXPECT_NE(m.find("column 'id'"), std::string::npos) << m;
  m = message_of({{"when", "STRUCT(at DATE)"}});
  EXPECT_NE(m.find("DATE"), std::string::npos) << m;
  m = message_of({{"id", "BIGINT"}, {"id", "DOUBLE"}});
  EXPECT_NE(m.find("declared twice"), std::string::npos) << m;
  m = message_of({{"id", "BIGINT"}, {"ID", "DOUBLE"}});
  EXPECT_NE(m.find("differ only in case"), std::string::npos) << m;
  m = message_of({});
  EXPECT_NE(m.find("no columns"), std::string::npos) << m;
  EXPECT_TRUE(files_in(dir_).empty()) << "a failed constructor left files behind";
}

TEST_F(RowWriterTest, CreatesMissingParentDirectoriesAndQuotesNames) {
  // Quotes in column and path names must not break DuckDB's SQL.
  std::string path = file("a/b'c/out \"1\".parquet");
  auto writer = make_row_writer(path, "parquet", {{"we\"ird name", "VARCHAR"}, {"it's", "DOUBLE"}});
  writer->write({{"we\"ird name", "v"}, {"it's", 1.5}});
  writer->close();
  Reader reader;
  EXPECT_EQ(reader.parquet_rows(path), json::parse(R"([{"we\"ird name": "v", "it's": 1.5}])"));

  std::string jsonl = file("c/d/out.jsonl");
  auto jsonl_writer = make_row_writer(jsonl, "jsonl", {{"x", "BIGINT"}});
  jsonl_writer->write({{"x", 1}});
  jsonl_writer->close();
  EXPECT_EQ(read_lines(jsonl), std::vector<std::string>{R"({"x":1})"});
}

TEST_F(RowWriterTest, CloseTwiceIsHarmlessAndOverwritesAnOldFile) {
  std::string path = file("out.parquet");
  std::ofstream(path) << "stale";
  auto writer = make_row_writer(path, "parquet", {{"id", "BIGINT"}});
  writer->write({{"id", 7}});
  writer->close();
  writer->close();
  writer->abort();  // after a commit, abort must not delete the result
  EXPECT_THROW(writer->write({{"id", 8}}), WriteError);
  Reader reader;
  EXPECT_EQ(reader.parquet_rows(path), json::parse(R"([{"id": 7}])"));
}

}  // namespace
}  // namespace j2v::io
