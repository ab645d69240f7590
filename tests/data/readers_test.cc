#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "compress_util.h"
#include "base/errors.h"
#include "data/readers/record_reader.h"
#include "data/record_encoder.h"
#include "duckdb_util.h"
#include "fields/registry.h"
#include "test_util.h"

namespace j2v {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::gzip;
using testing::read_bytes;
using testing::write_bytes;
using testing::zstd;

struct Read {
  std::vector<json> records;
  std::vector<std::string> where;
};

Read read(std::unique_ptr<RecordReader> reader) {
  Read out;
  while (auto chunk = reader->next())
    for (size_t i = 0; i < chunk->size(); ++i) {
      out.records.push_back(json::parse(chunk->record(i)));
      out.where.push_back(chunk->where(i));
    }
  return out;
}

// 3,000 records with a blank line every 100th line, so line numbers and records differ.
std::string sample_lines() {
  std::string text;
  for (int i = 0; i < 3000; ++i) {
    text += json{{"id", i}, {"name", "record " + std::to_string(i)}}.dump() + "\n";
    if (i % 100 == 99) text += "\n";
  }
  return text;
}

TEST(Readers, JsonLinesPlainGzipAndZstdReadTheSameRecordsAndLines) {
  auto dir = testing::temp_dir("readers_jsonl");
  std::string text = sample_lines();
  write_bytes(dir / "a.jsonl", text);
  write_bytes(dir / "a.jsonl.gz", gzip(text));
  write_bytes(dir / "a.jsonl.zst", zstd(text));
  write_bytes(dir / "named_wrong.jsonl", zstd(text));  // the content decides, not the name
  ReaderOptions small;
  small.chunk_bytes = 1;  // smallest chunks: every boundary falls inside some line
  for (const char* name : {"a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "named_wrong.jsonl"}) {
    SCOPED_TRACE(name);
    for (const auto& options : {ReaderOptions{}, small}) {
      Read r = read(open_record_reader((dir / name).string(), options));
      ASSERT_EQ(r.records.size(), 3000u);
      for (int i = 0; i < 3000; ++i) ASSERT_EQ(r.records[i]["id"], i);
      // record 150 sits on line 152: one blank line after record 99, and lines count from 1
      EXPECT_EQ(r.where[150], (dir / name).string() + ":152");
    }
  }
  fs::remove_all(dir);
}

TEST(Readers, TruncatedCompressedFilesAreErrorsNotShortReads) {
  auto dir = testing::temp_dir("readers_truncated");
  std::string text = sample_lines();
  std::string gz = gzip(text), zs = zstd(text);
  write_bytes(dir / "cut.jsonl.gz", gz.substr(0, gz.size() / 2));
  write_bytes(dir / "cut.jsonl.zst", zs.substr(0, zs.size() / 2));
  for (const char* name : {"cut.jsonl.gz", "cut.jsonl.zst"}) {
    SCOPED_TRACE(name);
    std::string path = (dir / name).string();
    try {
      read(open_record_reader(path, ReaderOptions{}));
      FAIL() << "a truncated file was read without an error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(open_record_reader((dir / "missing.jsonl").string(), ReaderOptions{}), DataError);
  fs::remove_all(dir);
}

// Nested records: a struct, a list of structs (a branch), a list of strings, nulls.
std::vector<std::string> nested_records() {
  std::vector<std::string> out;
  for (int i = 0; i < 500; ++i) {
    json items = json::array();
    for (int k = 0; k < i % 4; ++k) items.push_back({{"sku", "s" + std::to_string((i + k) % 7)}, {"price", 1.5 * k}});
    json r = {{"id", i},
              {"customer", {{"tier", i % 3 == 0 ? "gold" : "basic"}, {"age", 20 + i % 50}}},
              {"items", items},
              {"tags", json::array({"t" + std::to_string(i % 5)})},
              {"note", i % 10 == 0 ? json(nullptr) : json("n" + std::to_string(i))}};
    out.push_back(r.dump());
  }
  return out;
}

TEST(Readers, NestedParquetBecomesTheSameJsonRecords) {
  auto dir = testing::temp_dir("readers_parquet");
  auto records = nested_records();
  testing::write_lines(dir / "orders.jsonl", records);
  testing::jsonl_to_parquet((dir / "orders.jsonl").string(), (dir / "orders.parquet").string(), 100);
  ReaderOptions options;
  options.chunk_rows = 64;
  Read r = read(open_record_reader((dir / "orders.parquet").string(), options));
  ASSERT_EQ(r.records.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) ASSERT_EQ(r.records[i], json::parse(records[i])) << "row " << i + 1;
  EXPECT_EQ(r.where[41], (dir / "orders.parquet").string() + ":42");  // rows count from 1

  // The same encoding as from JSON Lines, branch and all.
  Schema s = Schema::from_fields_json("order", json::parse(R"({
      "items": {"type": "branch", "length": 4, "fields": {"sku": "category", "price": "number"}},
      "tags": "set", "note": "category", "id": {"type": "number", "target": true}})"));
  SchemaTree tree;
  auto fields = build_fields(s, &tree);
  RecordEncoder encoder(fields, tree);
  auto from_jsonl = RecordBuffer::from_file((dir / "orders.jsonl").string());
  auto from_parquet = RecordBuffer::from_file((dir / "orders.parquet").string());
  auto stats = encoder.collect_stats(*from_jsonl, nullptr, 1);
  for (size_t f = 0; f < fields.size(); ++f) fields[f]->fit(*stats[f]);
  EncodedTable a = encoder.encode(from_jsonl, nullptr, 1), b = encoder.encode(from_parquet, nullptr, 1);
  ASSERT_EQ(a.rows, b.rows);
  for (size_t f = 0; f < fields.size(); ++f) {
    EXPECT_EQ(a.columns[f].state, b.columns[f].state) << fields[f]->address().str();
    EXPECT_EQ(a.columns[f].values, b.columns[f].values) << fields[f]->address().str();
    EXPECT_EQ(a.columns[f].indices, b.columns[f].indices) << fields[f]->address().str();
  }
  EXPECT_EQ(a.present, b.present);
  fs::remove_all(dir);
}

TEST(Readers, CsvValuesAreTypedAndEmptyCellsAreNull) {
  auto dir = testing::temp_dir("readers_csv");
  write_bytes(dir / "t.csv", "amount,merchant,fraud\n12.5,shop,0\n,cafe,1\n7,,0\n");
  Read r = read(open_record_reader((dir / "t.csv").string(), ReaderOptions{}));
  ASSERT_EQ(r.records.size(), 3u);
  EXPECT_EQ(r.records[0], json::parse(R"({"amount": 12.5, "merchant": "shop", "fraud": 0})"));
  EXPECT_TRUE(r.records[1]["amount"].is_null());
  EXPECT_TRUE(r.records[2]["merchant"].is_null());
  fs::remove_all(dir);
}

TEST(Readers, SqlQueriesSelectAndReshapeRecords) {
  auto dir = testing::temp_dir("readers_sql");
  auto records = nested_records();
  testing::write_lines(dir / "orders.jsonl", records);
  testing::jsonl_to_parquet((dir / "orders.jsonl").string(), (dir / "orders.parquet").string());
  std::string sql = "SELECT id, customer.tier AS tier, len(items) AS n_items FROM read_parquet('" +
                    (dir / "orders.parquet").string() + "') WHERE id % 10 = 3 ORDER BY id;";
  Read r = read(open_sql_reader(sql, ReaderOptions{}));
  ASSERT_EQ(r.records.size(), 50u);
  EXPECT_EQ(r.records[0], json::parse(R"({"id": 3, "tier": "gold", "n_items": 3})"));
  EXPECT_EQ(r.where[1], "data.sql:2");
  try {
    read(open_sql_reader("SELECT * FROM no_such_table", ReaderOptions{}));
    FAIL() << "a bad query was accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_table"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(Readers, ACorruptParquetFooterIsAnErrorNamingTheFile) {
  auto dir = testing::temp_dir("readers_corrupt");
  testing::write_lines(dir / "r.jsonl", nested_records());
  std::string good = (dir / "r.parquet").string();
  testing::jsonl_to_parquet((dir / "r.jsonl").string(), good);
  std::string bytes = read_bytes(good);
  std::string footer_cut = bytes.substr(0, bytes.size() - 6);          // magic bytes gone
  std::string scrambled = bytes;                                        // metadata overwritten
  for (size_t i = bytes.size() - 60; i < bytes.size() - 8; ++i) scrambled[i] = static_cast<char>(0x5a);
  write_bytes(dir / "cut.parquet", footer_cut);
  write_bytes(dir / "scrambled.parquet", scrambled);
  for (const char* name : {"cut.parquet", "scrambled.parquet"}) {
    SCOPED_TRACE(name);
    std::string path = (dir / name).string();
    try {
      Read r = read(open_record_reader(path, ReaderOptions{}));
      FAIL() << "a corrupt file gave " << r.records.size() << " records and no error";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

TEST(Readers, FormatsAreToldFromNamesWithTheAllowedListOnError) {
  EXPECT_EQ(format_of_path("a/b.parquet"), FileFormat::kParquet);
  EXPECT_EQ(format_of_path("x.ndjson.zst"), FileFormat::kJsonLines);
  EXPECT_EQ(format_of_path("x.csv.gz"), FileFormat::kCsv);
  EXPECT_TRUE(has_format_suffix("/train/part-0.jsonl.gz", FileFormat::kJsonLines));
  EXPECT_FALSE(has_format_suffix("/train/part-0.jsonl.gz", FileFormat::kParquet));
  try {
    format_from_name("avro");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("parquet"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace j2v
