#include "data/readers/record_reader.h"

#include <algorithm>

#include "base/errors.h"
#include "data/readers/duckdb_reader.h"
#include "data/readers/json_lines_reader.h"
#include "data/readers/s3_reader.h"
#include "io/s3/s3_client.h"

namespace j2v {

std::unique_ptr<RecordReader> open_record_reader(const std::string& path, const ReaderOptions& options) {
  if (io::is_s3_url(path)) return std::make_unique<S3Reader>(path, options);
  // Unknown names stay JSON Lines: that has always been the default input.
  FileFormat format = FileFormat::kJsonLines;
  try {
    format = format_of_path(path);
  } catch (const DataError&) {
  }
  if (format == FileFormat::kJsonLines) return std::make_unique<JsonLinesReader>(path, options);
  if (format == FileFormat::kParquet && !options.parquet_row_filter.empty())
    return std::make_unique<DuckDbReader>(DuckDbReader::for_parquet_rows(path, options.parquet_row_filter),
                                          options.display_name.empty() ? path : options.display_name, options);
  return std::make_unique<DuckDbReader>(DuckDbReader::for_file(path),
                                        options.display_name.empty() ? path : options.display_name, options);
}

std::unique_ptr<RecordReader> open_sql_reader(const std::string& sql, const ReaderOptions& options) {
  return std::make_unique<DuckDbReader>(DuckDbReader::for_query(sql), "data.sql", options);
}

int64_t parquet_row_count(const std::string& path) {
  if (io::is_s3_url(path) || !has_format_suffix(path, FileFormat::kParquet)) return -1;
  return DuckDbReader::parquet_row_count(path);
}

std::shared_ptr<RecordBuffer> read_all(std::unique_ptr<RecordReader> reader, const std::string& source) {
  auto first = reader->next();
  if (!first) return RecordBuffer::from_strings({}, source);
  auto second = reader->next();
  if (!second) return first;  // a file of one chunk is already one buffer: no copy
  RecordBuffer::Builder all;
  auto add = [&all](const RecordBuffer& chunk) {
    for (size_t i = 0; i < chunk.size(); ++i) all.add(chunk.record(i), chunk.source(i), chunk.line(i));
  };
  add(*first);
  add(*second);
  while (auto chunk = reader->next()) add(*chunk);
  return all.finish();
}

}  // namespace j2v
