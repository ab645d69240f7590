// Checks a predict output against its input with a reader independent of json2vec: the row
// count, and that the first and last rows carry the first and last input records (rows in
// input order). Prints "N rows, in order" or exits non-zero saying what differs.
// Usage: node bench/predict/check_output.mjs OUTPUT(.parquet|.jsonl) INPUT.jsonl
// (hyparquet from tests/io: `npm ci --prefix tests/io`)
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { isDeepStrictEqual } from 'node:util'

const require = createRequire(new URL('../../tests/io/package.json', import.meta.url))
const [output, input] = process.argv.slice(2)
const line = (file, which) => execFileSync(which, ['-n', '1', file], { maxBuffer: 1 << 26 }).toString().trim()
const count = (file) => Number(execFileSync('wc', ['-l', file]).toString().trim().split(' ')[0])
const expected = [JSON.parse(line(input, 'head')), JSON.parse(line(input, 'tail'))]
const n = count(input)

let rows, firstLast
if (output.endsWith('.parquet')) {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } = await import(require.resolve('hyparquet'))
  const file = await asyncBufferFromFile(output)
  const metadata = await parquetMetadataAsync(file)
  rows = Number(metadata.num_rows)
  const read = async (at) => (await parquetReadObjects({ file, metadata, columns: ['inputs'], rowStart: at, rowEnd: at + 1 }))[0].inputs
  // hyparquet hands a JSON column over parsed; a plain string column would come as text.
  const value = (v) => (typeof v === 'string' ? JSON.parse(v) : v)
  firstLast = [value(await read(0)), value(await read(rows - 1))]
} else {
  rows = count(output)
  firstLast = [JSON.parse(line(output, 'head')).inputs, JSON.parse(line(output, 'tail')).inputs]
}
if (rows !== n) { console.error(`${rows} rows for ${n} records`); process.exit(1) }
if (!isDeepStrictEqual(firstLast, expected)) { console.error('first/last rows do not carry the first/last records'); process.exit(1) }
console.log(`${rows} rows, in order`)
