#!/usr/bin/env node
// bench_tiktoken.js — tiktoken's "gpt2" encode speed on tiny Shakespeare, to compare with
// benchmarks/bench_tokenizer.cpp on the same file. Median of N runs after one warm-up run.
//
//   cd scripts && npm install && node bench_tiktoken.js [DATA_DIR] [RUNS]
//
// Encoding takes a JS string, so the UTF-8 decode of the file is done once, outside the timing;
// the MB/s figure divides the file's byte count by the encode time, as bench_tokenizer does.
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require("tiktoken");

const dataDir = process.argv[2] || process.env.NANOGPT_DATA_DIR ||
    path.join(__dirname, "..", "..", "shared", "data");
const runs = Number(process.argv[3] || 7);
const bytes = fs.readFileSync(path.join(dataDir, "tinyshakespeare.txt"));
const text = bytes.toString("utf8");
const enc = get_encoding("gpt2");

let ids = enc.encode(text, "all");  // warm-up
const times = [];
for (let r = 0; r < runs; ++r) {
    const start = process.hrtime.bigint();
    ids = enc.encode(text, "all");
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const mb = bytes.length / 1e6;
console.log(`tiktoken ${enc.name ?? "gpt2"} on tinyshakespeare.txt: ${mb.toFixed(2)} MB, ` +
            `${ids.length} tokens, runs: ${runs} (median)`);
console.log(`encode: ${(mb / median).toFixed(2)} MB/s  (${(median * 1e3).toFixed(1)} ms)`);
enc.free();
