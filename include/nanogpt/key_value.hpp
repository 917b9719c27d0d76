// key_value.hpp — the plain-text `key = value` files of this project (a dataset's meta.txt, the
// training program's config.txt): one pair per line, '#' starts a comment at the start of a line
// or after a space or tab, blank lines are ignored.
//
// A value may be quoted so that it can hold anything a line can: "..." with the escapes \" \\ \n
// \r \t, or '...' taken literally (nanoGPT's Python-style configs write out_dir = 'out'). A '#'
// inside quotes is text, not a comment. quote_value() writes a value so that split_key_value()
// reads back exactly the same string. Builds on nothing; read next: token_file.hpp.
#pragma once

#include <string>       // std::string
#include <string_view>  // std::string_view

namespace nanogpt {

/// s without leading and trailing spaces, tabs and carriage returns.
inline std::string trim(std::string_view s) {
    const auto begin = s.find_first_not_of(" \t\r");
    if (begin == std::string_view::npos) return "";
    return std::string(s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1));
}

namespace detail {

inline bool starts_comment(std::string_view line, std::size_t i) {
    return line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t');
}

/// Reads the quoted value starting at line[i] (a quote); "" with `error` set on failure.
inline std::string read_quoted(std::string_view line, std::size_t i, std::string& error) {
    const char quote = line[i];
    std::string value;
    for (++i; i < line.size(); ++i) {
        const char c = line[i];
        if (c == quote) {
            const std::string rest = trim(line.substr(i + 1));
            if (!rest.empty() && rest[0] != '#')
                error = "unexpected text after the quoted value: '" + rest + "'";
            return value;
        }
        if (c != '\\' || quote == '\'') {
            value += c;
            continue;
        }
        if (++i == line.size()) break;
        constexpr std::string_view from = "\"\\nrt", to = "\"\\\n\r\t";
        const std::size_t k = from.find(line[i]);
        if (k == std::string_view::npos) {
            error = std::string("invalid escape '\\") + line[i] + "' (known: \\\" \\\\ \\n \\r \\t)";
            return "";
        }
        value += to[k];
    }
    error = std::string("unterminated quote ") + quote;
    return "";
}

}  // namespace detail

/// Splits one line into key and value (unquoted, comment removed). Returns false for a blank or
/// comment-only line. A malformed line returns true with `error` set (callers add file:line).
inline bool split_key_value(const std::string& line, std::string& key, std::string& value,
                            std::string& error) {
    error.clear();
    std::size_t eq = std::string::npos;
    for (std::size_t i = 0; i < line.size() && eq == std::string::npos; ++i) {
        if (detail::starts_comment(line, i)) break;
        if (line[i] == '=') eq = i;
    }
    if (eq == std::string::npos) {
        std::size_t end = 0;
        while (end < line.size() && !detail::starts_comment(line, end)) ++end;
        const std::string text = trim(std::string_view(line).substr(0, end));
        if (text.empty()) return false;
        error = "expected 'key = value', got '" + text + "'";
        return true;
    }
    key = trim(std::string_view(line).substr(0, eq));
    if (key.empty()) error = "missing key before '='";
    std::size_t start = eq + 1;
    while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
    if (start < line.size() && (line[start] == '"' || line[start] == '\'')) {
        std::string quoted_error;
        value = detail::read_quoted(line, start, quoted_error);
        if (error.empty()) error = quoted_error;
        return true;
    }
    std::size_t end = start;
    while (end < line.size() && !detail::starts_comment(line, end)) ++end;
    value = trim(std::string_view(line).substr(start, end - start));
    return true;
}

/// The value as split_key_value reads it back: unchanged when that is already exact, otherwise
/// double-quoted with escapes.
inline std::string quote_value(const std::string& value) {
    const bool plain =
        value.find_first_of("#\"'\\\n\r\t") == std::string::npos &&
        (value.empty() || (value.front() != ' ' && value.back() != ' '));
    if (plain) return value;
    std::string out = "\"";
    for (const char c : value) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else {
            out += c;
        }
    }
    return out + "\"";
}

}  // namespace nanogpt
