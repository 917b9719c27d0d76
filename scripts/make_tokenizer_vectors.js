#!/usr/bin/env node
// make_tokenizer_vectors.js — writes tests/data/gpt2_tokenizer_vectors.txt: reference token ids
// from tiktoken's "gpt2" encoding, which tests/test_bpe_tokenizer.cpp compares GPT2Tokenizer with.
//
//   cd scripts && npm install && node make_tokenizer_vectors.js [DATA_DIR]
//
// DATA_DIR (default: $NANOGPT_DATA_DIR, else ../../shared/data) holds tinyshakespeare.txt.
//
// File format, one record per line, fields separated by one TAB:
//   # ...                               comment
//   A <text> <ids>                      tiktoken encode(text, allowed_special "all"); ids space-separated
//   O <text> <ids>                      tiktoken encode_ordinary(text)
//   H <text> <count> <hash>             like A, summarised: number of ids and their hash
//   F <file> <bytes> <count> <hash> <ids>  a file in DATA_DIR encoded like A; <ids> = the first ids
// <text> is UTF-8 with these escapes: \\ \t \n \r, \xHH for other ASCII control bytes and DEL,
// \u{HEX} for any other code point that is not a letter, number, punctuation or symbol (format
// characters, unassigned, private use, separators other than U+0020).
// <hash> is FNV-1a 64 (offset 0xcbf29ce484222325, prime 0x100000001b3) over the ids, each as 4
// little-endian bytes, printed as 16 lowercase hex digits.
"use strict";
const fs = require("fs");
const path = require("path");
const { get_encoding } = require("tiktoken");

const PREFIX_IDS = 2000;

function fnv1a64(ids) {
    const mask = (1n << 64n) - 1n;
    let h = 0xcbf29ce484222325n;
    for (const id of ids) {
        for (let shift = 0; shift < 32; shift += 8) {
            h ^= BigInt((id >>> shift) & 0xff);
            h = (h * 0x100000001b3n) & mask;
        }
    }
    return h.toString(16).padStart(16, "0");
}

const VISIBLE = /^[\p{L}\p{N}\p{P}\p{S}\p{M}]$/u;

function escapeText(text) {
    let out = "";
    for (const ch of text) {
        const cp = ch.codePointAt(0);
        if (ch === "\\") out += "\\\\";
        else if (ch === "\t") out += "\\t";
        else if (ch === "\n") out += "\\n";
        else if (ch === "\r") out += "\\r";
        else if (cp < 0x20 || cp === 0x7f) out += "\\x" + cp.toString(16).padStart(2, "0");
        else if (cp === 0x20 || (cp < 0x7f) || VISIBLE.test(ch)) out += ch;
        else out += "\\u{" + cp.toString(16) + "}";
    }
    return out;
}

// Hand-picked texts where a tokenizer is easy to get subtly wrong.
const EDGE_CASES = [
    "",
    "a",
    " ",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n",
    // contractions: lower case, upper case (not contractions in GPT-2), unicode apostrophes
    "it's don't we're you've I'm they'll he'd",
    "IT'S DON'T WE'RE YOU'VE I'M THEY'LL HE'D",
    "It\u2019s the cat\u2019s toy, isn\u2019t it? \u02bcs",
    "'s 't 're 've 'm 'll 'd ' 'x ''s '''",
    "rock'n'roll o'clock y'all ma'am",
    // whitespace runs: spaces, newlines, tabs, mixtures, at start and end
    "    four spaces before",
    "word    four spaces between",
    "trailing spaces    ",
    "\n\n\nthree newlines first",
    "line\n\n\n\nbreaks\r\nwindows\r\n\r\nend",
    "\ttab\t\tdouble tab \t mixed\t \n \tword",
    " \u00a0nbsp\u00a0\u00a0word\u3000ideographic\u2003em space\u2028line sep\u0085nel",
    "   \n   \n   ",
    "x \n y  \n\n  z",
    "\u000b\u000cvertical tab and form feed\u001c\u001dinfo separators",
    // digits and numbers
    "0 1 12 123 1234 12345 123456789012345678901234567890",
    "3.14159 -42 +7 1e10 0x1F 1,000,000 $19.99 50% 2024-01-01",
    "\u0660\u0661\u0662 \u0966\u0967 \u00bd\u00bc \u2160\u2161 \u2460 \uff11\uff12",
    "abc123def 123abc a1b2c3",
    // punctuation runs and symbols
    "!!! ??? ... --- *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} <<< >>>",
    "a.b,c;d:e!f?g",
    " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "https://example.com/path?query=1&x=y#frag",
    "std::vector<int> v{1, 2, 3}; // comment\nif (x != y) { return -1; }",
    "\u2014\u2013\u2026 \u201cquoted\u201d \u00abguillemets\u00bb \u00bfQu\u00e9?",
    // multilingual
    "Bonjour, \u00e7a va? Gr\u00fc\u00dfe aus M\u00fcnchen. \u00a1Ol\u00e9!",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439\u0442\u0435.",
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5 \u03b1\u03b2\u03b3 \u03a9\u03c9",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u6211\u662f\u4e00\u4e2a\u6a21\u578b\u3002",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c \u30ab\u30bf\u30ab\u30ca \u3072\u3089\u304c\u306a",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645 \u0627\u0644\u0639\u0631\u0628\u064a\u0629\u064f",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e \u0939\u093f\u0928\u094d\u0926\u0940",
    "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    // combining marks: precomposed vs decomposed, stacked marks, marks after spaces
    "caf\u00e9 cafe\u0301 e\u0301\u0302\u0303 \u0301alone a \u0308b",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357",
    // emoji: simple, modifiers, ZWJ sequences, flags, keycaps, variation selectors
    "\u{1F600}\u{1F601} \u{1F44D}\u{1F3FD} \u{1F468}\u200d\u{1F469}\u200d\u{1F467}\u200d\u{1F466}",
    "\u{1F1FA}\u{1F1F8}\u{1F1EF}\u{1F1F5} \u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} 1\ufe0f\u20e3 \u2764\ufe0f",
    "I \u2764 C++ \u{1F680}\u{1F680}\u{1F680} done\u2705",
    // astral letters and numbers
    "\u{10400}\u{10401} \u{1D400}\u{1D401}\u{1D7CE} \u{20000}\u{2A6D6} \u{1F100}",
    // the special token
    "<|endoftext|>",
    "a<|endoftext|>b",
    "end.<|endoftext|>\n\nStart <|endoftext|><|endoftext|> x",
    "<|endoftext|",
    "<|endoftext|>>",
    "<|endofprompt|> <|fim_prefix|>",
    // zero width and format characters
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u00adsoft",
    "\u{E000}private\u{F8FF}use",
];

// Code points on both sides of every boundary between character classes (letter, number, space,
// other) as JavaScript's regex sees them (Node's ICU may know a newer Unicode than tiktoken, so
// this also sweeps characters tiktoken does not know yet). Each in a context whose tokens show
// the class: " " + ch splits unless ch is white space, and ch + "'s" gives the contraction token
// "'s" unless ch is a symbol, which swallows the apostrophe.
function classBoundaryText() {
    const classOf = (ch) => /\p{L}/u.test(ch) ? 1 : /\p{N}/u.test(ch) ? 2 : /\s/u.test(ch) ? 3 : 0;
    const picked = new Set();
    let previous = -1;
    for (let cp = 0; cp <= 0x10ffff; ++cp) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;  // no UTF-8 for surrogates
        const cls = classOf(String.fromCodePoint(cp));
        if (cls !== previous && cp > 0) picked.add(cp - 1).add(cp);
        previous = cls;
    }
    const lines = [];
    let line = "";
    for (const cp of [...picked].filter((c) => c < 0xd800 || c > 0xdfff).sort((a, b) => a - b)) {
        const ch = String.fromCodePoint(cp);
        line += " " + ch + "'s";
        if (line.length > 400) lines.push(line), (line = "");
    }
    if (line) lines.push(line);
    return lines;
}

function main() {
    const dataDir = process.argv[2] || process.env.NANOGPT_DATA_DIR ||
        path.join(__dirname, "..", "..", "shared", "data");
    const out = path.join(__dirname, "..", "tests", "data", "gpt2_tokenizer_vectors.txt");
    const enc = get_encoding("gpt2");
    const version = JSON.parse(fs.readFileSync(
        path.join(path.dirname(require.resolve("tiktoken")), "package.json"), "utf8")).version;
    const ids = (text, special) =>
        Array.from(special ? enc.encode(text, "all") : enc.encode_ordinary(text));
    const lines = [
        `# GPT-2 tokenizer reference vectors: tiktoken ${version} (npm), encoding "gpt2".`,
        "# Generated by scripts/make_tokenizer_vectors.js, which documents the format. Do not edit.",
    ];
    for (const text of EDGE_CASES) {
        lines.push(["A", escapeText(text), ids(text, true).join(" ")].join("\t"));
        if (text.includes("<|endoftext|>")) {
            lines.push(["O", escapeText(text), ids(text, false).join(" ")].join("\t"));
        }
    }
    for (const text of classBoundaryText()) {
        const all = ids(text, true);
        lines.push(["H", escapeText(text), `${all.length} ${fnv1a64(all)}`].join("\t"));
    }
    const file = "tinyshakespeare.txt";
    const bytes = fs.readFileSync(path.join(dataDir, file));
    const all = ids(bytes.toString("utf8"), true);
    lines.push(["F", file, `${bytes.length} ${all.length} ${fnv1a64(all)}`,
                all.slice(0, PREFIX_IDS).join(" ")].join("\t"));
    enc.free();
    fs.writeFileSync(out, lines.join("\n") + "\n");
    console.log(`make_tokenizer_vectors: ${lines.length - 2} records -> ${out}`);
}

main();
