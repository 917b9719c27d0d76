// safetensors.hpp — safetensors files, and GPT-2 weights in the layout Hugging Face publishes
// (openai-community/gpt2's model.safetensors), so a GPT<T> can start from OpenAI's weights.
//
// The format: u64 little-endian N | N bytes of JSON header | the data section. The header maps each
// tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (bytes, relative to
// the data section), plus an optional "__metadata__" map of strings. Tensors tile the data section
// exactly (no overlap, no gap); every number is little-endian. The reader checks all of that and
// throws std::runtime_error naming the file, the tensor and the problem. It holds a whole file in
// memory (read_header() reads only the header).
//
// GPT-2 stores the block matrices as Conv1D weights [in, out] (y = x W + b) while our Linear keeps
// PyTorch's [out, in] (y = x W^T + b): c_attn, c_proj and c_fc weights are transposed on load and
// on save. Builds on model.hpp; read next: tests/test_parity_torch.cpp (parity with PyTorch).
#pragma once

#include <algorithm>     // std::sort, std::find_if
#include <cstdint>       // fixed-width integers
#include <cstring>       // std::memcpy
#include <fstream>       // std::ifstream
#include <map>           // std::map
#include <stdexcept>     // std::runtime_error, std::logic_error, std::invalid_argument
#include <string>        // std::string, std::to_string
#include <string_view>   // std::string_view
#include <system_error>  // std::error_code
#include <utility>       // std::pair, std::move
#include <vector>        // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/detail/atomic_file.hpp>
#include <nanogpt/detail/utf8.hpp>
#include <nanogpt/model.hpp>

namespace nanogpt {

namespace detail {

// ---- JSON: just what a safetensors header holds (objects, arrays, strings, integers) ----

struct Json {
    enum class Kind { object, array, string, integer };
    Kind kind = Kind::integer;
    std::uint64_t integer = 0;
    std::string string;
    std::vector<std::string> keys;  // object keys, in file order, parallel to items
    std::vector<Json> items;        // array elements or object values
};

class JsonParser {
public:
    JsonParser(std::string_view text, std::string source)
        : text_(text), source_(std::move(source)) {}

    /// One value and nothing after it but whitespace (writers pad the header with spaces).
    Json parse_document() {
        Json value = parse_value(0);
        skip_space();
        if (pos_ != text_.size()) fail("unexpected text after the top-level value");
        return value;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("safetensors '" + source_ + "': malformed header JSON at byte " +
                                 std::to_string(pos_) + ": " + what);
    }
    void skip_space() {
        while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                       text_[pos_] == '\r' || text_[pos_] == '\t'))
            ++pos_;
    }
    char peek() {
        skip_space();
        if (pos_ >= text_.size()) fail("unexpected end of the header");
        return text_[pos_];
    }
    void expect(char c) {
        if (peek() != c) fail(std::string("expected '") + c + "', found '" + text_[pos_] + "'");
        ++pos_;
    }

    Json parse_value(int depth) {
        if (depth > 8)
            fail("nested too deeply");  // a header needs 3 levels; this bounds the recursion
        const char c = peek();
        if (c == '{' || c == '[') return parse_container(depth, c == '{');
        Json value;
        if (c == '"') {
            value.kind = Json::Kind::string;
            value.string = parse_string();
        } else if (c >= '0' && c <= '9') {
            value.integer = parse_integer();
        } else {
            fail(std::string("unexpected character '") + c +
                 "' (expected an object, array, string or integer)");
        }
        return value;
    }

    Json parse_container(int depth, bool object) {
        Json value;
        value.kind = object ? Json::Kind::object : Json::Kind::array;
        ++pos_;  // '{' or '['
        const char close = object ? '}' : ']';
        while (true) {
            if (value.items.empty() && peek() == close) break;
            if (object) {
                if (peek() != '"') fail("expected a string key");
                std::string key = parse_string();
                if (std::find(value.keys.begin(), value.keys.end(), key) != value.keys.end()) {
                    fail("duplicate key '" + key + "'");
                }
                value.keys.push_back(std::move(key));
                expect(':');
            }
            value.items.push_back(parse_value(depth + 1));
            if (peek() == close) break;
            expect(',');
        }
        ++pos_;  // '}' or ']'
        return value;
    }

    std::uint64_t parse_integer() {
        const std::size_t start = pos_;
        std::uint64_t v = 0;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
            const auto digit = static_cast<std::uint64_t>(text_[pos_] - '0');
            if (v > (UINT64_MAX - digit) / 10) fail("integer too large");
            v = v * 10 + digit;
            ++pos_;
        }
        if (text_[start] == '0' && pos_ - start > 1) fail("leading zero in an integer");
        if (pos_ < text_.size() &&
            (text_[pos_] == '.' || text_[pos_] == 'e' || text_[pos_] == 'E')) {
            fail("only integers are expected in a safetensors header");
        }
        return v;
    }

    std::string parse_string() {
        ++pos_;  // opening quote
        std::string s;
        while (true) {
            if (pos_ >= text_.size()) fail("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return s;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                s += c;
                continue;
            }
            if (pos_ >= text_.size()) fail("unterminated escape");
            const char e = text_[pos_++];
            // A backslash and one of  " \ / b f n r t  stands for one character; 'u' starts 4 hex
            // digits.
            constexpr std::string_view from = "\"\\/bfnrt", to = "\"\\/\b\f\n\r\t";
            if (e == 'u') {
                nanogpt::detail::encode_utf8(static_cast<char32_t>(parse_code_point()), s);
            } else if (const std::size_t k = from.find(e); k != std::string_view::npos) {
                s += to[k];
            } else {
                fail(std::string("invalid escape '\\") + e + "'");
            }
        }
    }

    unsigned parse_hex4() {
        if (text_.size() - pos_ < 4) fail("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            const char h = text_[pos_++];
            const char lower = h >= 'A' && h <= 'F' ? static_cast<char>(h - 'A' + 'a') : h;
            const std::size_t d = std::string_view("0123456789abcdef").find(lower);
            if (d == std::string_view::npos) fail("invalid hex digit in a \\u escape");
            v = v * 16 + static_cast<unsigned>(d);
        }
        return v;
    }
    // The hex digits of a 'u' escape are a UTF-16 unit: a surrogate pair (two escapes, D800-DBFF
    // then DC00-DFFF) stands for one code point above U+FFFF.
    unsigned parse_code_point() {
        const unsigned hi = parse_hex4();
        if (hi >= 0xDC00 && hi <= 0xDFFF) fail("unpaired low surrogate");
        if (hi < 0xD800 || hi > 0xDBFF) return hi;
        if (text_.substr(pos_, 2) != "\\u") fail("unpaired high surrogate");
        pos_ += 2;
        const unsigned lo = parse_hex4();
        if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate");
        return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
    }

    std::string_view text_;
    std::string source_;
    std::size_t pos_ = 0;
};

/// A string as a JSON literal, quotes included.
inline std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            const char* hex = "0123456789abcdef";
            out += "\\u00";
            out += hex[(c >> 4) & 0xF];
            out += hex[c & 0xF];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// ---- dtypes: sizes of every safetensors dtype, and the conversions to float ----

/// Bytes per element, or 0 for a name the format does not define.
inline std::size_t safetensors_dtype_size(const std::string& dtype) {
    static const std::map<std::string, std::size_t> sizes = {
        {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
        {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
        {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
    const auto it = sizes.find(dtype);
    return it == sizes.end() ? 0 : it->second;
}

inline std::uint32_t load_le32(const unsigned char* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}
inline float float_from_bits(std::uint32_t bits) {
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}
/// IEEE half: 1 sign, 5 exponent (bias 15), 10 mantissa bits; rebias the exponent to float's 127.
inline float f16_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu,
                        mant = h & 0x3FFu;
    if (exp == 0) {  // zero or subnormal: mant * 2^-24
        const float v = static_cast<float>(mant) * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 0x1F) return float_from_bits(sign | 0x7F800000u | mant << 13);  // inf or nan
    return float_from_bits(sign | (exp + 112) << 23 | mant << 13);
}

}  // namespace detail

// ---- SafetensorsFile: a validated header plus the data section ----

/// One tensor of a safetensors file: its dtype, shape and bytes [begin, end) of the data section.
struct SafetensorsTensor {
    std::string name;
    std::string dtype;                // "F32", "F16", "BF16", "I64", ...
    std::vector<std::int64_t> shape;  // any rank; [] is a scalar
    std::size_t begin = 0, end = 0;
};

/// "[768, 2304]", as in every shape error message.
inline std::string shape_string(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i > 0) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

class SafetensorsFile {
public:
    /// An empty file to fill with add() and write().
    SafetensorsFile() = default;

    /// Reads and validates a whole file.
    static SafetensorsFile read(const std::string& path) { return open(path, true); }
    /// Reads and validates only the header (tensor sizes are checked against the file size);
    /// data access then throws std::logic_error.
    static SafetensorsFile read_header(const std::string& path) { return open(path, false); }

    /// Tensors in header order.
    const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
    /// The tensor called `name`, or nullptr.
    const SafetensorsTensor* find(const std::string& name) const {
        for (const auto& t : tensors_)
            if (t.name == name) return &t;
        return nullptr;
    }
    /// The "__metadata__" entries, in file order.
    const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
    /// A metadata value, or nullptr when the key is absent.
    const std::string* metadata(const std::string& key) const {
        for (const auto& [k, v] : metadata_)
            if (k == key) return &v;
        return nullptr;
    }

    /// The raw little-endian bytes of a tensor.
    const unsigned char* bytes(const SafetensorsTensor& t) const {
        if (!has_data_)
            throw std::logic_error("safetensors '" + source_ +
                                   "': opened with read_header(), no data");
        return data_.data() + t.begin;
    }
    /// A tensor's elements as float; F32, F16 and BF16 are supported, other dtypes throw.
    std::vector<float> to_float(const SafetensorsTensor& t) const {
        const unsigned char* p = bytes(t);
        const std::size_t n = (t.end - t.begin) / detail::safetensors_dtype_size(t.dtype);
        std::vector<float> out(n);
        if (t.dtype == "F32") {
            for (std::size_t i = 0; i < n; ++i)
                out[i] = detail::float_from_bits(detail::load_le32(p + 4 * i));
        } else if (t.dtype == "BF16") {  // bfloat16 is the top half of a float
            for (std::size_t i = 0; i < n; ++i)
                out[i] = detail::float_from_bits(std::uint32_t(p[2 * i] | p[2 * i + 1] << 8) << 16);
        } else if (t.dtype == "F16") {
            for (std::size_t i = 0; i < n; ++i)
                out[i] = detail::f16_to_float(std::uint16_t(p[2 * i] | p[2 * i + 1] << 8));
        } else {
            fail("tensor '" + t.name + "' has dtype " + t.dtype +
                 "; only F32, F16 and BF16 convert to float");
        }
        return out;
    }

    /// Appends an F32 tensor (values holds the product of `shape` elements).
    void add(const std::string& name, const std::vector<std::int64_t>& shape, const float* values) {
        if (name == "__metadata__" || find(name) != nullptr) {
            throw std::invalid_argument("SafetensorsFile::add: name '" + name + "' is taken");
        }
        std::int64_t n = 1;
        for (const std::int64_t d : shape) {
            if (d < 0)
                throw std::invalid_argument("SafetensorsFile::add: '" + name +
                                            "' has a negative dimension");
            n *= d;
        }
        const std::size_t begin = data_.size();
        data_.resize(begin + 4 * static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) {
            std::uint32_t bits;
            std::memcpy(&bits, values + i, 4);
            for (int b = 0; b < 4; ++b)
                data_[begin + 4 * i + b] = static_cast<unsigned char>(bits >> (8 * b));
        }
        tensors_.push_back(SafetensorsTensor{name, "F32", shape, begin, data_.size()});
    }
    void set_metadata(const std::string& key, const std::string& value) {
        for (auto& [k, v] : metadata_) {
            if (k == key) {
                v = value;
                return;
            }
        }
        metadata_.emplace_back(key, value);
    }

    /// Writes "<path>.tmp" and renames it over path, so a crash never leaves half a file.
    void write(const std::string& path) const {
        // Built with += only: GCC 12 reports a false -Wrestrict on "literal" + std::string
        // temporaries.
        std::string header = "{";
        if (!metadata_.empty()) {
            header += "\"__metadata__\":{";
            for (std::size_t i = 0; i < metadata_.size(); ++i) {
                if (i > 0) header += ',';
                header += detail::json_quote(metadata_[i].first);
                header += ':';
                header += detail::json_quote(metadata_[i].second);
            }
            header += '}';
        }
        for (const auto& t : tensors_) {
            if (header.size() > 1) header += ',';
            header += detail::json_quote(t.name);
            header += ":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + shape_string(t.shape);
            header += ",\"data_offsets\":[";
            header += std::to_string(t.begin);
            header += ',';
            header += std::to_string(t.end);
            header += "]}";
        }
        header += "}";
        header.append((8 - header.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
        unsigned char length[8];
        for (int b = 0; b < 8; ++b)
            length[b] = static_cast<unsigned char>(std::uint64_t(header.size()) >> (8 * b));

        detail::write_file_atomically(
            path,
            {{length, sizeof length}, {header.data(), header.size()}, {data_.data(), data_.size()}},
            "safetensors");
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("safetensors '" + source_ + "': " + what);
    }

    static SafetensorsFile open(const std::string& path, bool with_data) {
        SafetensorsFile f;
        f.source_ = path;
        std::ifstream in(path, std::ios::binary | std::ios::ate);
        if (!in) f.fail("cannot open the file");
        const auto file_size = static_cast<std::uint64_t>(in.tellg());
        in.seekg(0);
        if (file_size < 8)
            f.fail("file is " + std::to_string(file_size) + " bytes, too short for a header");
        unsigned char length[8];
        in.read(reinterpret_cast<char*>(length), 8);
        std::uint64_t n = 0;
        for (int b = 7; b >= 0; --b) n = n << 8 | length[b];
        if (n > file_size - 8) {
            f.fail("header length " + std::to_string(n) + " exceeds the file size (" +
                   std::to_string(file_size) + " bytes); the file is truncated or not safetensors");
        }
        if (n > (std::uint64_t(100) << 20))
            f.fail("header length " + std::to_string(n) + " exceeds 100 MB");
        std::string header(n, '\0');
        in.read(header.data(), static_cast<std::streamsize>(n));
        const std::uint64_t data_size = file_size - 8 - n;
        f.parse_header(header, data_size);
        if (with_data) {
            f.data_.resize(data_size);
            in.read(reinterpret_cast<char*>(f.data_.data()),
                    static_cast<std::streamsize>(data_size));
        }
        if (!in) f.fail("read error");
        f.has_data_ = with_data;
        return f;
    }

    void parse_header(std::string_view text, std::uint64_t data_size) {
        const detail::Json root = detail::JsonParser(text, source_).parse_document();
        if (root.kind != detail::Json::Kind::object) fail("the header is not a JSON object");
        for (std::size_t i = 0; i < root.keys.size(); ++i) {
            if (root.keys[i] == "__metadata__") {
                parse_metadata(root.items[i]);
            } else {
                tensors_.push_back(parse_tensor(root.keys[i], root.items[i]));
            }
        }
        check_layout(data_size);
    }

    void parse_metadata(const detail::Json& m) {
        if (m.kind != detail::Json::Kind::object) fail("__metadata__ is not an object");
        for (std::size_t i = 0; i < m.keys.size(); ++i) {
            if (m.items[i].kind != detail::Json::Kind::string)
                fail("__metadata__ '" + m.keys[i] + "' is not a string");
            metadata_.emplace_back(m.keys[i], m.items[i].string);
        }
    }

    SafetensorsTensor parse_tensor(const std::string& name, const detail::Json& e) const {
        using Kind = detail::Json::Kind;
        const std::string where = "tensor '" + name + "': ";
        if (e.kind != Kind::object) fail(where + "entry is not an object");
        auto field = [&](const char* key, Kind kind) -> const detail::Json& {
            for (std::size_t i = 0; i < e.keys.size(); ++i) {
                if (e.keys[i] != key) continue;
                if (e.items[i].kind != kind)
                    fail(where + "field '" + key + "' has the wrong JSON type");
                return e.items[i];
            }
            fail(where + "missing field '" + key + "'");
        };
        for (const auto& key : e.keys) {
            if (key != "dtype" && key != "shape" && key != "data_offsets")
                fail(where + "unknown field '" + key + "'");
        }
        SafetensorsTensor t;
        t.name = name;
        t.dtype = field("dtype", Kind::string).string;
        const std::size_t element = detail::safetensors_dtype_size(t.dtype);
        if (element == 0) fail(where + "unknown dtype '" + t.dtype + "'");
        std::uint64_t bytes = element;
        for (const auto& d : field("shape", Kind::array).items) {
            if (d.kind != Kind::integer) fail(where + "shape holds a non-integer");
            // Bounding each dimension keeps element counts far from int64 overflow, even with a 0
            // elsewhere.
            if (d.integer > (std::uint64_t(1) << 40) ||
                (d.integer != 0 && bytes > UINT64_MAX / d.integer)) {
                fail(where + "shape is too large");
            }
            t.shape.push_back(static_cast<std::int64_t>(d.integer));
            bytes *= d.integer;
        }
        const auto& offsets = field("data_offsets", Kind::array).items;
        if (offsets.size() != 2 || offsets[0].kind != Kind::integer ||
            offsets[1].kind != Kind::integer) {
            fail(where + "data_offsets must be two integers [begin, end]");
        }
        t.begin = offsets[0].integer;
        t.end = offsets[1].integer;
        if (t.begin > t.end) {
            fail(where + "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                 "] are reversed");
        }
        if (t.end - t.begin != bytes) {
            fail(where + "shape " + shape_string(t.shape) + " of " + t.dtype + " needs " +
                 std::to_string(bytes) + " bytes, data_offsets [" + std::to_string(t.begin) + ", " +
                 std::to_string(t.end) + "] hold " + std::to_string(t.end - t.begin));
        }
        return t;
    }

    // Tensors must cover the data section exactly once, as the safetensors format requires.
    void check_layout(std::uint64_t data_size) const {
        std::vector<const SafetensorsTensor*> order;
        for (const auto& t : tensors_) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](auto* a, auto* b) {
            return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
        });
        std::uint64_t covered = 0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            const SafetensorsTensor& t = *order[i];
            if (t.end > data_size) {
                fail("tensor '" + t.name + "': data_offsets [" + std::to_string(t.begin) + ", " +
                     std::to_string(t.end) + "] are out of range (the data section is " +
                     std::to_string(data_size) + " bytes)");
            }
            if (t.begin < covered)
                fail("tensor '" + t.name + "' overlaps tensor '" + order[i - 1]->name + "'");
            if (t.begin > covered) {
                fail("tensor '" + t.name + "': " + std::to_string(t.begin - covered) +
                     " unused bytes before it");
            }
            covered = t.end;
        }
        if (covered != data_size)
            fail(std::to_string(data_size - covered) + " unused bytes after the last tensor");
    }

    std::vector<SafetensorsTensor> tensors_;
    std::vector<std::pair<std::string, std::string>> metadata_;
    std::vector<unsigned char> data_;  // the data section
    bool has_data_ = true;
    std::string source_ = "(in memory)";
};

// ---- GPT-2 weights ----

namespace detail {

[[noreturn]] inline void gpt2_fail(const std::string& path, const std::string& what) {
    throw std::runtime_error("safetensors '" + path + "': " + what);
}

/// Block matrices (c_attn, c_proj, c_fc) are Conv1D in GPT-2 files: stored [in, out].
inline bool gpt2_is_conv1d(const ParameterInfo& info) {
    return info.name.rfind("h.", 0) == 0 && info.shape.ndim() == 2;
}

/// The shape a parameter has in a GPT-2 file.
inline std::vector<std::int64_t> gpt2_file_shape(const ParameterInfo& info) {
    if (gpt2_is_conv1d(info)) return {info.shape[1], info.shape[0]};
    std::vector<std::int64_t> s;
    for (int i = 0; i < info.shape.ndim(); ++i) s.push_back(info.shape[i]);
    return s;
}

/// The layer index i of a name "h.{i}.rest", or -1 (with `rest` set to what follows "h.{i}.").
inline std::int64_t gpt2_layer_of(const std::string& name, std::string* rest = nullptr) {
    if (name.rfind("h.", 0) != 0) return -1;
    std::size_t p = 2;
    std::int64_t i = 0;
    while (p < name.size() && name[p] >= '0' && name[p] <= '9' && p < 10)
        i = i * 10 + (name[p++] - '0');
    if (p == 2 || p >= name.size() || name[p] != '.' || (name[2] == '0' && p > 3)) return -1;
    if (rest != nullptr) *rest = name.substr(p + 1);
    return i;
}

/// Hugging Face files may carry the attention's causal-mask constants; they are not parameters.
inline bool gpt2_is_mask_buffer(const std::string& name) {
    std::string rest;
    return gpt2_layer_of(name, &rest) >= 0 && (rest == "attn.bias" || rest == "attn.masked_bias");
}

/// __metadata__ "n_head" as a number, or 0 when absent (our files store it; Hugging Face's do not).
inline std::int64_t gpt2_metadata_n_head(const SafetensorsFile& file, const std::string& path) {
    const std::string* text = file.metadata("n_head");
    if (text == nullptr) return 0;
    const bool digits = !text->empty() && text->size() <= 9 &&
                        text->find_first_not_of("0123456789") == std::string::npos &&
                        (*text)[0] != '0';
    if (!digits) gpt2_fail(path, "__metadata__ n_head '" + *text + "' is not a positive count");
    return std::stoll(*text);
}

/// The file's tensors by name, without the "transformer." prefix that some exports add.
inline std::map<std::string, const SafetensorsTensor*> gpt2_index(const SafetensorsFile& file,
                                                                  const std::string& path) {
    std::map<std::string, const SafetensorsTensor*> index;
    for (const auto& t : file.tensors()) {
        const std::string name = t.name.rfind("transformer.", 0) == 0 ? t.name.substr(12) : t.name;
        if (!index.emplace(name, &t).second) {
            throw std::runtime_error("safetensors '" + path + "': tensor '" + name +
                                     "' appears both with and without the 'transformer.' prefix");
        }
    }
    return index;
}

}  // namespace detail

/// The configuration of the GPT-2 stored in a safetensors file. n_layer counts the h.{i} blocks,
/// vocab_size and n_embd come from wte's shape, block_size from wpe's, bias from ln_f.bias.
/// n_head is not in the weights: it is read from __metadata__ "n_head" when present (our files
/// store it), otherwise GPT-2's rule of 64-dimensional heads applies, n_head = n_embd / 64
/// (gpt2 12, -medium 16, -large 20, -xl 25 heads). dropout is 0.
inline GPTConfig gpt2_config_from_safetensors(const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read_header(path);
    const auto index = detail::gpt2_index(file, path);
    auto matrix = [&](const std::string& name) {
        const auto it = index.find(name);
        if (it == index.end()) detail::gpt2_fail(path, "missing tensor '" + name + "'");
        if (it->second->shape.size() != 2) {
            detail::gpt2_fail(path, "tensor '" + name + "' has shape " +
                                        shape_string(it->second->shape) +
                                        ", expected 2 dimensions");
        }
        return it->second->shape;
    };
    const auto wte = matrix("wte.weight"), wpe = matrix("wpe.weight");
    if (wte[1] != wpe[1]) {
        detail::gpt2_fail(path, "wte.weight " + shape_string(wte) + " and wpe.weight " +
                                    shape_string(wpe) + " disagree on n_embd");
    }
    std::vector<bool> layers;  // layers[i]: some tensor is named h.{i}.*
    for (const auto& [name, t] : index) {
        const std::int64_t i = detail::gpt2_layer_of(name);
        if (i < 0) continue;
        if (i >= 100000) detail::gpt2_fail(path, "implausible layer index in '" + name + "'");
        if (static_cast<std::size_t>(i) >= layers.size())
            layers.resize(static_cast<std::size_t>(i) + 1);
        layers[static_cast<std::size_t>(i)] = true;
    }
    for (std::size_t i = 0; i < layers.size(); ++i) {
        if (!layers[i]) {
            detail::gpt2_fail(path, "no tensors for layer h." + std::to_string(i) +
                                        " (layers must be numbered 0..n-1)");
        }
    }
    GPTConfig c{wpe[0],
                wte[0],
                static_cast<std::int64_t>(layers.size()),
                0,
                wte[1],
                0.0,
                index.count("ln_f.bias") > 0};
    c.n_head = detail::gpt2_metadata_n_head(file, path);
    if (c.n_head == 0 && c.n_embd % 64 != 0) {
        detail::gpt2_fail(
            path, "cannot infer n_head: n_embd = " + std::to_string(c.n_embd) +
                      " is not a multiple of GPT-2's head size 64, and __metadata__ has no n_head");
    }
    if (c.n_head == 0) c.n_head = c.n_embd / 64;
    try {
        c.validate();
    } catch (const std::invalid_argument& e) {
        detail::gpt2_fail(path, std::string("inferred an invalid configuration: ") + e.what());
    }
    return c;
}

/// Loads GPT-2 weights (Hugging Face names and layout) into `model`, whose configuration must
/// match the file. Every parameter must be present with its shape; lm_head.weight (equal to wte,
/// since the head is tied) and the attention mask buffers are ignored; any other extra tensor is an
/// error. Nothing is copied unless the whole file checks out.
template <class T>
void load_gpt2_safetensors(GPT<T>& model, const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read(path);
    const auto index = detail::gpt2_index(file, path);
    Parameters<T>& params = model.parameters();
    const std::int64_t n_head = detail::gpt2_metadata_n_head(file, path);
    if (n_head != 0 && n_head != model.config().n_head) {
        detail::gpt2_fail(
            path, "__metadata__ n_head = " + std::to_string(n_head) +
                      " but the model has n_head = " + std::to_string(model.config().n_head));
    }
    std::map<std::string, const SafetensorsTensor*> found;
    for (const ParameterInfo& info : params.infos()) {
        const auto it = index.find(info.name);
        const auto expected = detail::gpt2_file_shape(info);
        if (it == index.end()) {
            detail::gpt2_fail(path, "missing tensor '" + info.name + "' (expected shape " +
                                        shape_string(expected) + ")");
        }
        if (it->second->shape != expected) {
            detail::gpt2_fail(path, "tensor '" + info.name + "' has shape " +
                                        shape_string(it->second->shape) + ", expected " +
                                        shape_string(expected));
        }
        const std::string& dtype = it->second->dtype;
        if (dtype != "F32" && dtype != "F16" && dtype != "BF16") {
            detail::gpt2_fail(path, "tensor '" + info.name + "' has dtype " + dtype +
                                        ", expected F32 (or F16, BF16)");
        }
        found[info.name] = it->second;
    }
    for (const auto& [name, t] : index) {
        if (found.count(name) || detail::gpt2_is_mask_buffer(name)) continue;
        if (name != "lm_head.weight") {
            detail::gpt2_fail(path,
                              "unexpected tensor '" + name + "' (not a parameter of this model)");
        }
        if (t->shape != found["wte.weight"]->shape ||
            file.to_float(*t) != file.to_float(*found["wte.weight"])) {
            detail::gpt2_fail(
                path,
                "lm_head.weight differs from wte.weight, but this model ties its head to wte");
        }
    }
    for (const ParameterInfo& info : params.infos()) {
        const std::vector<float> v = file.to_float(*found[info.name]);
        T* dst = params.data() + info.offset;
        if (detail::gpt2_is_conv1d(info)) {  // file [in, out] -> ours [out, in]
            const std::int64_t out = info.shape[0], in = info.shape[1];
            for (std::int64_t o = 0; o < out; ++o)
                for (std::int64_t i = 0; i < in; ++i)
                    dst[o * in + i] = static_cast<T>(v[i * out + o]);
        } else {
            for (std::size_t k = 0; k < v.size(); ++k) dst[k] = static_cast<T>(v[k]);
        }
    }
}

/// Saves `model` as openai-community/gpt2's model.safetensors does: Hugging Face names without a
/// prefix, Conv1D weights [in, out], F32, no lm_head (tied); __metadata__ {"format": "pt",
/// "n_head": "..."}. Written atomically.
template <class T>
void save_gpt2_safetensors(const GPT<T>& model, const std::string& path) {
    SafetensorsFile file;
    file.set_metadata("format", "pt");
    file.set_metadata("n_head", std::to_string(model.config().n_head));
    const Parameters<T>& params = model.parameters();
    std::vector<float> v;
    for (const ParameterInfo& info : params.infos()) {
        const T* src = params.data() + info.offset;
        v.resize(static_cast<std::size_t>(info.shape.numel()));
        if (detail::gpt2_is_conv1d(info)) {  // ours [out, in] -> file [in, out]
            const std::int64_t out = info.shape[0], in = info.shape[1];
            for (std::int64_t o = 0; o < out; ++o)
                for (std::int64_t i = 0; i < in; ++i)
                    v[i * out + o] = static_cast<float>(src[o * in + i]);
        } else {
            for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(src[k]);
        }
        file.add(info.name, detail::gpt2_file_shape(info), v.data());
    }
    file.write(path);
}

}  // namespace nanogpt
