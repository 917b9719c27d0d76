// safetensors.hpp — the safetensors file format (Hugging Face's container for tensors); GPT-2's
// names and layout inside such a file live in gpt2_weights.hpp.
//
// The format: u64 little-endian N | N bytes of JSON header | the data section. The header maps each
// tensor name to {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (bytes, relative to
// the data section), plus an optional "__metadata__" map of strings. Tensors tile the data section
// exactly (no overlap, no gap); every number is little-endian. The reader checks all of that and
// throws std::runtime_error naming the file, the tensor and the problem. It holds a whole file in
// memory (read_header() reads only the header). The header's JSON goes through detail/json.hpp;
// names are indexed in a hash map, so duplicates and look-ups cost linear time overall.
// Builds on detail/json.hpp and file_io.hpp; read next: gpt2_weights.hpp.
#pragma once

#include <algorithm>     // std::sort, std::find_if
#include <cstdint>       // fixed-width integers
#include <cstring>       // std::memcpy
#include <filesystem>    // std::filesystem::is_regular_file
#include <fstream>       // std::ifstream
#include <map>           // std::map
#include <stdexcept>     // std::runtime_error, std::logic_error, std::invalid_argument
#include <string>        // std::string, std::to_string
#include <string_view>   // std::string_view
#include <system_error>  // std::error_code
#include <unordered_map>  // std::unordered_map
#include <utility>       // std::pair, std::move
#include <vector>        // std::vector

#include <nanogpt/detail/json.hpp>
#include <nanogpt/file_io.hpp>

namespace nanogpt {

namespace detail {

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
        const auto it = index_.find(name);
        return it == index_.end() ? nullptr : &tensors_[it->second];
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
        index_.emplace(name, tensors_.size());
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

        write_file_atomically(
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
        std::error_code ec;
        if (!std::filesystem::is_regular_file(path, ec)) f.fail("not a regular file");
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
        const detail::Json root =
            detail::JsonParser(text, "safetensors '" + source_ + "' header").parse_document();
        if (root.kind != detail::Json::Kind::object) fail("the header is not a JSON object");
        for (std::size_t i = 0; i < root.keys.size(); ++i) {
            if (root.keys[i] == "__metadata__") {
                parse_metadata(root.items[i]);
            } else {
                index_.emplace(root.keys[i], tensors_.size());  // keys are unique (JsonParser)
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
    std::unordered_map<std::string, std::size_t> index_;  // name -> position in tensors_
    std::vector<std::pair<std::string, std::string>> metadata_;
    std::vector<unsigned char> data_;  // the data section
    bool has_data_ = true;
    std::string source_ = "(in memory)";
};

}  // namespace nanogpt
