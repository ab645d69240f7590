// Independent check of the TensorBoard event files json2vec writes (tests/engine/
// tensorboard_logger_test.cc): reads every TFRecord in FILE, verifies both masked CRC32C
// checksums of each with @aws-crypto/crc32c, decodes each tensorflow.Event with protobufjs from
// the message definitions below, and prints JSON lines on stdout:
//   {"step":3,"wall_time":1700000000.5,"file_version":"brain.Event:2"}   (one per event)
//   {"step":3,"tag":"loss/train","value":0.5}                           (one per scalar)
//   {"step":0,"tag":"hparams","text":"..."}                             (one per text summary)
// Non-finite values print as the strings "NaN", "Infinity", "-Infinity". Exits 1 on a bad
// checksum, a truncated record or an undecodable event.
// Usage: node tests/io/read_tfevents.mjs FILE   (after `npm ci --prefix tests/io`)
import { readFileSync } from 'node:fs'
import { crc32c } from '@aws-crypto/crc32c'
import protobuf from 'protobufjs'

// TensorFlow's messages (tensorflow/core/util/event.proto, framework/summary.proto,
// framework/tensor.proto, framework/tensor_shape.proto) with their real field numbers; the
// fields json2vec never writes are kept as bytes so any file TensorFlow writes still decodes.
const PROTO = `
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
    bytes log_message = 6;
    bytes session_log = 7;
    bytes tagged_run_metadata = 8;
    bytes meta_graph_def = 9;
  }
  bytes source_metadata = 10;
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
      bytes image = 4;
      bytes histo = 5;
      bytes audio = 6;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}
message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  int32 data_class = 4;
}
message TensorShapeProto {
  message Dim {
    int64 size = 1;
    string name = 2;
  }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}
message TensorProto {
  int32 dtype = 1;
  TensorShapeProto tensor_shape = 2;
  int32 version_number = 3;
  bytes tensor_content = 4;
  repeated bytes string_val = 8;
}
`
const Event = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('tensorflow.Event')

// TFRecord's mask, computed in unsigned 32-bit arithmetic.
function maskedCrc(bytes) {
  const crc = crc32c(bytes) >>> 0
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0
}

function plain(value) {
  return typeof value === 'number' && !Number.isFinite(value) ? String(value) : value
}

function fail(message) {
  console.error(`read_tfevents.mjs: ${message}`)
  process.exit(1)
}

const [file] = process.argv.slice(2)
if (!file) {
  console.error('usage: node read_tfevents.mjs FILE')
  process.exit(2)
}
let data
try {
  data = readFileSync(file)
} catch (error) {
  fail(`cannot read '${file}': ${error.message}`)
}
const lines = []
let offset = 0
for (let record = 0; offset < data.length; ++record) {
  const where = `'${file}' record ${record} at byte ${offset}`
  if (data.length - offset < 12) fail(`${where}: truncated header`)
  const lengthBytes = data.subarray(offset, offset + 8)
  if (data.readUInt32LE(offset + 8) !== maskedCrc(lengthBytes)) fail(`${where}: length checksum mismatch`)
  const length = data.readBigUInt64LE(offset)
  if (length > BigInt(data.length - offset - 16)) fail(`${where}: truncated payload (length ${length})`)
  const start = offset + 12
  const end = start + Number(length)
  const payload = data.subarray(start, end)
  if (data.readUInt32LE(end) !== maskedCrc(payload)) fail(`${where}: payload checksum mismatch`)
  offset = end + 4
  let event
  try {
    event = Event.toObject(Event.decode(payload), { longs: String, bytes: Array, defaults: true, oneofs: true })
  } catch (error) {
    fail(`${where}: cannot decode Event: ${error.message}`)
  }
  const step = Number(event.step)
  const line = { step, wall_time: event.wall_time }
  if (event.what === 'file_version') line.file_version = event.file_version
  lines.push(line)
  if (event.what !== 'summary') continue
  for (const value of event.summary.value) {
    if (value.value === 'simple_value') {
      lines.push({ step, tag: value.tag, value: plain(value.simple_value) })
    } else if (value.value === 'tensor' && value.tensor.dtype === 7 && value.tensor.string_val.length === 1) {
      lines.push({ step, tag: value.tag, text: Buffer.from(value.tensor.string_val[0]).toString('utf8') })
    } else {
      lines.push({ step, tag: value.tag, kind: value.value ?? null })
    }
  }
}
for (const line of lines) process.stdout.write(JSON.stringify(line) + '\n')
