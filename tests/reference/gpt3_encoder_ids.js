// Independent reference ids for test_tokenizer: encodes a UTF-8 text file with the npm
// package gpt-3-encoder@1.1.4 (a JavaScript port of OpenAI's GPT-2 encoder.py) and writes
// the ids as little-endian uint16. Run once to (re)make tests/data/moby-dick.gpt2-ids.u16;
// it is not part of the test run (the whole book takes a few minutes in JavaScript).
//
//   mkdir -p /tmp/x && cd /tmp/x && npm install gpt-3-encoder@1.1.4
//   NODE_PATH=/tmp/x/node_modules node tests/reference/gpt3_encoder_ids.js \
//       ~/.cache/gpt2-workbench/assets/moby-dick.txt tests/data/moby-dick.gpt2-ids.u16
'use strict';
const fs = require('fs');
const {encode} = require('gpt-3-encoder');

if (process.argv.length !== 4) {
  console.error('usage: node gpt3_encoder_ids.js TEXT_FILE OUT_FILE');
  process.exit(2);
}
const [textPath, outPath] = process.argv.slice(2);
const text = fs.readFileSync(textPath, 'utf-8');
const t0 = Date.now();
const ids = encode(text);  // the whole text in one call, exactly as a user of the package would
const out = Buffer.alloc(ids.length * 2);
ids.forEach((id, i) => {
  if (!Number.isInteger(id) || id < 0 || id > 65535) throw new Error(`id ${id} at ${i} is not uint16`);
  out.writeUInt16LE(id, i * 2);
});
fs.writeFileSync(outPath, out);
console.error(`${ids.length} ids from ${text.length} UTF-16 units in ${(Date.now() - t0) / 1000} s -> ${outPath}`);
