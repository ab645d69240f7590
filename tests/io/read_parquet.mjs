// Independent check of the Parquet files json2vec writes through DuckDB: reads FILE with
// hyparquet (a from-scratch JavaScript reader) and prints one JSON document on stdout:
//   {"num_rows": N, "schema": {name, type, logical_type, children: [...]}, "rows": [{...}, ...]}
// Values are printed so the C++ test can compare them exactly: int64 as a number when safe
// and as a string otherwise, non-finite floats as the strings "NaN", "Infinity", "-Infinity".
// Usage: node tests/io/read_parquet.mjs FILE   (after `npm ci --prefix tests/io`)
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet'

function plain(value) {
  if (value === undefined || value === null) return null
  if (typeof value === 'bigint') {
    return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString()
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  if (value instanceof Uint8Array) return Array.from(value)
  if (ArrayBuffer.isView(value) || Array.isArray(value)) return Array.from(value, plain)
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'object') {
    const out = {}
    for (const [key, field] of Object.entries(value)) out[key] = plain(field)
    return out
  }
  return value
}

function describeSchema(tree) {
  const { name, type, logical_type, converted_type, repetition_type } = tree.element
  return {
    name,
    type: type ?? null,
    logical_type: logical_type?.type ?? null,
    converted_type: converted_type ?? null,
    repetition_type: repetition_type ?? null,
    children: tree.children.map(describeSchema),
  }
}

const [file] = process.argv.slice(2)
if (!file) {
  console.error('usage: node read_parquet.mjs FILE')
  process.exit(2)
}
try {
  const buffer = await asyncBufferFromFile(file)
  const metadata = await parquetMetadataAsync(buffer)
  const rows = await parquetReadObjects({ file: buffer, metadata })
  process.stdout.write(JSON.stringify({
    num_rows: Number(metadata.num_rows),
    schema: describeSchema(parquetSchema(metadata)),
    rows: rows.map(plain),
  }) + '\n')
} catch (error) {
  console.error(`read_parquet.mjs: cannot read '${file}': ${error.stack ?? error}`)
  process.exit(1)
}
