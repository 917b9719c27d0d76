// Tests for safetensors.hpp: the generic reader and writer (round trip, F16/BF16, metadata), GPT-2
// files (exact round trip, inferred configuration, Conv1D transposition, Hugging Face's extra
// tensors) and the rejection of truncated, malformed and mismatched files, by message.
#include <catch2/catch.hpp>

#include <cstdint>     // std::int64_t, std::uint64_t
#include <cstring>     // std::memcmp
#include <filesystem>  // std::filesystem::temp_directory_path
#include <fstream>     // std::ifstream, std::ofstream
#include <functional>  // std::function
#include <iterator>    // std::istreambuf_iterator
#include <limits>      // std::numeric_limits
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt/random.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/gpt2_weights.hpp>
#include <nanogpt/safetensors.hpp>
#include <nanogpt/tape.hpp>

#include "allocation_probe.hpp"

using namespace nanogpt;
using Catch::Matchers::Contains;

namespace {

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("nanogpt_test_st_" + name)).string();
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A file with the given header text and `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, std::size_t data_bytes) {
    std::string bytes(8, '\0');
    for (int b = 0; b < 8; ++b)
        bytes[b] = static_cast<char>(std::uint64_t(header.size()) >> (8 * b));
    return bytes + header + std::string(data_bytes, '\0');
}

/// Replaces `from` by `to` (same length, so offsets stay valid) in the header of a file image.
std::string patch(std::string bytes, const std::string& from, const std::string& to) {
    REQUIRE(from.size() == to.size());
    const auto at = bytes.find(from);
    REQUIRE(at != std::string::npos);
    return bytes.replace(at, from.size(), to);
}

const GPTConfig kConfig{16, 37, 2, 2, 32, 0.0, true};

/// A model whose every parameter (gains and biases included) is random.
GPT<float> random_model(const GPTConfig& config, std::uint64_t seed) {
    GPT<float> model(config, seed);
    Random rng(seed + 1);
    for (std::int64_t k = 0; k < model.parameters().size(); ++k) {
        model.parameters().data()[k] += static_cast<float>(0.1 * rng.normal());
    }
    return model;
}

/// Copies a GPT-2 file tensor by tensor through `edit`, which may rename, reshape or drop
/// (return false) each one, or add tensors to `out`.
void rewrite(
    const std::string& from, const std::string& to,
    const std::function<bool(std::string&, std::vector<std::int64_t>&, std::vector<float>&)>& edit,
    const std::function<void(SafetensorsFile&)>& extra = {}) {
    const SafetensorsFile in = SafetensorsFile::read(from);
    SafetensorsFile out;
    for (const auto& [key, value] : in.metadata()) out.set_metadata(key, value);
    for (const SafetensorsTensor& t : in.tensors()) {
        std::string name = t.name;
        std::vector<std::int64_t> shape = t.shape;
        std::vector<float> values = in.to_float(t);
        if (edit(name, shape, values)) out.add(name, shape, values.data());
    }
    if (extra) extra(out);
    out.write(to);
}

bool same_weights(const GPT<float>& a, const GPT<float>& b) {
    return a.parameters().size() == b.parameters().size() &&
           std::memcmp(a.parameters().data(), b.parameters().data(),
                       static_cast<std::size_t>(a.parameters().size()) * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("safetensors: a generic file round-trips names, shapes, values and metadata",
          "[safetensors]") {
    const std::string path = temp_path("generic.safetensors");
    const std::vector<float> a = {1.0f, -2.5f, 3.25f, 1e-30f, 6.0f, -0.0f};
    const float scalar = 42.0f;
    SafetensorsFile file;
    file.add("a \"quoted\" \\ name \xC3\xA9", {2, 3}, a.data());
    file.add("scalar", {}, &scalar);
    file.add("empty", {0, 4}, nullptr);
    file.set_metadata("format", "pt");
    file.set_metadata("note", "tab\there");
    file.write(path);

    // The header is padded so the data section starts 8-byte aligned.
    const std::string bytes = read_bytes(path);
    std::uint64_t n = 0;
    for (int b = 7; b >= 0; --b) n = n << 8 | static_cast<unsigned char>(bytes[b]);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 4 * 7);

    const SafetensorsFile back = SafetensorsFile::read(path);
    REQUIRE(back.tensors().size() == 3);
    const SafetensorsTensor* t = back.find("a \"quoted\" \\ name \xC3\xA9");
    REQUIRE(t != nullptr);
    CHECK(t->dtype == "F32");
    CHECK(t->shape == std::vector<std::int64_t>{2, 3});
    CHECK(back.to_float(*t) == a);
    CHECK(back.find("scalar")->shape.empty());
    CHECK(back.to_float(*back.find("scalar")) == std::vector<float>{42.0f});
    CHECK(back.to_float(*back.find("empty")).empty());
    CHECK(*back.metadata("note") == "tab\there");
    CHECK(back.metadata("absent") == nullptr);

    const SafetensorsFile header_only = SafetensorsFile::read_header(path);
    CHECK(header_only.tensors().size() == 3);
    CHECK_THROWS_WITH(header_only.to_float(*header_only.find("scalar")), Contains("read_header"));
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: F16 and BF16 tensors convert to float, escapes decode", "[safetensors]") {
    const std::string path = temp_path("half.safetensors");
    // F16: 1.0 = 0x3C00, -2.0 = 0xC000, smallest subnormal 2^-24 = 0x0001, inf = 0x7C00.
    // BF16: 1.0 = 0x3F80, -0.5 = 0xBF00. Little-endian bytes.
    const std::string header =
        R"({"h": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]},)"
        R"( "b\u00e9\ud83d\ude00": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]}})";
    std::string bytes = raw_file(header, 0);
    bytes +=
        std::string("\x00\x3C\x00\xC0\x01\x00\x00\x7C", 8) + std::string("\x80\x3F\x00\xBF", 4);
    write_bytes(path, bytes);
    const SafetensorsFile file = SafetensorsFile::read(path);
    const std::vector<float> h = file.to_float(*file.find("h"));
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(h[2] == 0x1p-24f);
    CHECK(h[3] == std::numeric_limits<float>::infinity());
    const SafetensorsTensor* b =
        file.find("b\xC3\xA9\xF0\x9F\x98\x80");  // U+00E9, U+1F600 in UTF-8
    REQUIRE(b != nullptr);
    CHECK(file.to_float(*b) == std::vector<float>{1.0f, -0.5f});
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: a GPT saved and loaded has exactly the same weights", "[safetensors]") {
    const std::string path = temp_path("gpt2_roundtrip.safetensors");
    for (const bool bias : {true, false}) {
        GPTConfig config = kConfig;
        config.bias = bias;
        GPT<float> model = random_model(config, 3);
        save_gpt2_safetensors(model, path);

        // Hugging Face's layout: Conv1D [in, out], no lm_head, format and n_head in the metadata.
        const SafetensorsFile file = SafetensorsFile::read(path);
        CHECK(file.find("h.1.attn.c_attn.weight")->shape == std::vector<std::int64_t>{32, 96});
        CHECK(file.find("h.0.mlp.c_proj.weight")->shape == std::vector<std::int64_t>{128, 32});
        CHECK(file.find("wte.weight")->shape == std::vector<std::int64_t>{37, 32});
        CHECK(file.find("lm_head.weight") == nullptr);
        CHECK((file.find("ln_f.bias") != nullptr) == bias);
        CHECK(*file.metadata("format") == "pt");
        CHECK(*file.metadata("n_head") == "2");
        CHECK(file.tensors().size() == model.parameters().infos().size());

        GPT<float> loaded(config, 4);
        CHECK_FALSE(same_weights(model, loaded));
        load_gpt2_safetensors(loaded, path);
        CHECK(same_weights(model, loaded));

        // A double model reads the same file (the values widen exactly).
        GPT<double> wide(config, 5);
        load_gpt2_safetensors(wide, path);
        CHECK(wide.parameters().data()[100] == static_cast<double>(model.parameters().data()[100]));
    }
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: the configuration is inferred from a GPT-2 file", "[safetensors]") {
    const std::string path = temp_path("gpt2_config.safetensors");
    const std::string other = temp_path("gpt2_config_edit.safetensors");
    for (const bool bias : {true, false}) {
        GPTConfig config = kConfig;
        config.bias = bias;
        save_gpt2_safetensors(GPT<float>(config, 1), path);
        CHECK(gpt2_config_from_safetensors(path) == config);
    }
    GPTConfig wide{8, 11, 3, 4, 128, 0.0, true};
    save_gpt2_safetensors(GPT<float>(wide, 1), path);
    CHECK(gpt2_config_from_safetensors(path).n_head == 4);

    SECTION("without n_head in the metadata, heads are 64 wide as in GPT-2") {
        const SafetensorsFile in = SafetensorsFile::read(path);
        SafetensorsFile out;
        for (const auto& t : in.tensors()) out.add(t.name, t.shape, in.to_float(t).data());
        out.write(other);
        CHECK(gpt2_config_from_safetensors(other).n_head == 2);  // 128 / 64
    }
    SECTION("a 'transformer.' prefix and Hugging Face's extra tensors are accepted") {
        const SafetensorsFile in = SafetensorsFile::read(path);
        SafetensorsFile out;
        out.set_metadata("n_head", "4");
        for (const auto& t : in.tensors())
            out.add("transformer." + t.name, t.shape, in.to_float(t).data());
        const std::vector<float> mask(64, 1.0f), wte = in.to_float(*in.find("wte.weight"));
        for (int i = 0; i < 3; ++i) {
            out.add("transformer.h." + std::to_string(i) + ".attn.bias", {1, 1, 8, 8}, mask.data());
            out.add("transformer.h." + std::to_string(i) + ".attn.masked_bias", {}, mask.data());
        }
        out.add("lm_head.weight", {11, 128}, wte.data());
        out.write(other);
        CHECK(gpt2_config_from_safetensors(other) == wide);
        GPT<float> original(wide, 1), loaded(wide, 2);
        load_gpt2_safetensors(loaded, other);
        CHECK(same_weights(original, loaded));
    }
    SECTION("n_embd not a multiple of 64 needs n_head in the metadata") {
        const SafetensorsFile in = SafetensorsFile::read(path);
        SafetensorsFile out;
        std::vector<float> zeros(11 * 96);
        out.add("wte.weight", {11, 96}, zeros.data());
        out.add("wpe.weight", {8, 96}, zeros.data());
        out.write(other);
        CHECK_THROWS_WITH(gpt2_config_from_safetensors(other),
                          Contains("cannot infer n_head: n_embd = 96"));
    }
    SECTION("layers must be numbered from 0 without gaps") {
        rewrite(path, other, [](std::string& name, auto&, auto&) {
            if (name.rfind("h.1.", 0) == 0) name = "h.7." + name.substr(4);
            return true;
        });
        CHECK_THROWS_WITH(gpt2_config_from_safetensors(other),
                          Contains("no tensors for layer h.1"));
    }
    std::filesystem::remove(path);
    std::filesystem::remove(other);
}

TEST_CASE("safetensors: Conv1D weights [in, out] load transposed, so y = x W + b",
          "[safetensors]") {
    // A one-layer model with n_embd 4 built by hand: c_fc.weight is the 4 x 16 matrix W[i][o] = i -
    // o / 8.
    const GPTConfig config{3, 5, 1, 2, 4, 0.0, true};
    const std::string path = temp_path("conv1d.safetensors");
    GPT<float> model(config, 1);
    SafetensorsFile file;
    file.set_metadata("n_head", "2");
    for (const ParameterInfo& info : model.parameters().infos()) {
        const std::vector<std::int64_t> shape = detail::gpt2_file_shape(info);
        std::vector<float> v(static_cast<std::size_t>(info.shape.numel()), 0.5f);
        if (info.name == "h.0.mlp.c_fc.weight") {
            REQUIRE(shape == std::vector<std::int64_t>{4, 16});
            for (int i = 0; i < 4; ++i)
                for (int o = 0; o < 16; ++o)
                    v[i * 16 + o] = static_cast<float>(i) - static_cast<float>(o) / 8;
        }
        if (info.name == "h.0.mlp.c_fc.bias")
            for (int o = 0; o < 16; ++o) v[o] = static_cast<float>(o) * 100;
        file.add(info.name, shape, v.data());
    }
    file.write(path);
    CHECK(gpt2_config_from_safetensors(path) == config);
    load_gpt2_safetensors(model, path);

    // y = x W + b computed by hand, against the model's own Linear on the loaded weights.
    const float x[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    NoGradGuard no_grad;
    const Tensor<float> input = Tensor<float>::from_vector(Shape{1, 4}, {x[0], x[1], x[2], x[3]});
    const Tensor<float> weight = model.parameters().find("h.0.mlp.c_fc.weight");
    REQUIRE(weight.shape() == (Shape{16, 4}));  // ours: [out, in]
    const std::vector<float> y =
        linear(input, weight, model.parameters().find("h.0.mlp.c_fc.bias")).to_vector();
    for (int o = 0; o < 16; ++o) {
        float expected = static_cast<float>(o) * 100;
        for (int i = 0; i < 4; ++i)
            expected += x[i] * (static_cast<float>(i) - static_cast<float>(o) / 8);
        CHECK(y[o] == Approx(expected).epsilon(1e-6));
    }
    // And saving writes the [in, out] matrix back unchanged.
    const std::string again = temp_path("conv1d_again.safetensors");
    save_gpt2_safetensors(model, again);
    const SafetensorsFile a = SafetensorsFile::read(path), b = SafetensorsFile::read(again);
    CHECK(a.to_float(*a.find("h.0.mlp.c_fc.weight")) == b.to_float(*b.find("h.0.mlp.c_fc.weight")));
    std::filesystem::remove(path);
    std::filesystem::remove(again);
}

TEST_CASE("safetensors: corrupt or malformed files are rejected by name", "[safetensors]") {
    const std::string path = temp_path("corrupt.safetensors");
    auto read_raw = [&](const std::string& header, std::size_t data_bytes) {
        write_bytes(path, raw_file(header, data_bytes));
        return SafetensorsFile::read(path);
    };
    const std::string ok = R"({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})";
    REQUIRE(read_raw(ok, 24).tensors().size() == 1);

    SECTION("too short for the length") {
        write_bytes(path, "abc");
        CHECK_THROWS_WITH(SafetensorsFile::read(path), Contains("file is 3 bytes, too short"));
    }
    SECTION("header length larger than the file") {
        std::string bytes = raw_file(ok, 24);
        bytes[1] = 0x10;  // length += 4096
        write_bytes(path, bytes);
        CHECK_THROWS_WITH(SafetensorsFile::read(path), Contains("exceeds the file size"));
    }
    SECTION("truncated data") {
        CHECK_THROWS_WITH(read_raw(ok, 20),
                          Contains("tensor 'x': data_offsets [0, 24] are out of range") &&
                              Contains("data section is 20 bytes"));
    }
    SECTION("trailing bytes") {
        CHECK_THROWS_WITH(read_raw(ok, 28), Contains("4 unused bytes after the last tensor"));
    }
    SECTION("bad JSON") {
        CHECK_THROWS_WITH(read_raw(R"({"x": {"dtype": "F32", )", 0),
                          Contains("header: malformed JSON"));
        CHECK_THROWS_WITH(read_raw(R"({"x": 1,})", 0), Contains("expected a string key"));
        CHECK_THROWS_WITH(read_raw(R"({"x": tru})", 0), Contains("unexpected character 't'"));
        CHECK_THROWS_WITH(read_raw(R"({"x": 1.5})", 0), Contains("only integers"));
        CHECK_THROWS_WITH(read_raw(R"({"x": -1})", 0), Contains("unexpected character '-'"));
        CHECK_THROWS_WITH(read_raw(R"({"x": "a\qb"})", 0), Contains("invalid escape"));
        CHECK_THROWS_WITH(read_raw(R"({"x": "abc)", 0), Contains("unterminated string"));
        CHECK_THROWS_WITH(read_raw(R"({"x": 99999999999999999999999})", 0),
                          Contains("integer too large"));
        CHECK_THROWS_WITH(read_raw(R"({} {})", 0), Contains("unexpected text after"));
        CHECK_THROWS_WITH(read_raw(std::string(200, '[') + std::string(200, ']'), 0),
                          Contains("nested too deeply"));
        CHECK_THROWS_WITH(read_raw(R"([1, 2])", 0), Contains("the header is not a JSON object"));
        CHECK_THROWS_WITH(read_raw(R"({"x": {}, "x": {}})", 0), Contains("duplicate key 'x'"));
    }
    SECTION("bad entries") {
        CHECK_THROWS_WITH(
            read_raw(R"({"x": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}})", 4),
            Contains("tensor 'x': unknown dtype 'F33'"));
        CHECK_THROWS_WITH(read_raw(R"({"x": {"dtype": "F32", "shape": [1]}})", 0),
                          Contains("tensor 'x': missing field 'data_offsets'"));
        CHECK_THROWS_WITH(
            read_raw(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "y": 1}})", 4),
            Contains("tensor 'x': unknown field 'y'"));
        CHECK_THROWS_WITH(
            read_raw(R"({"x": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}})", 4),
            Contains("tensor 'x': field 'shape' has the wrong JSON type"));
        CHECK_THROWS_WITH(
            read_raw(R"({"x": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 20),
            Contains(
                "tensor 'x': shape [2, 3] of F32 needs 24 bytes, data_offsets [0, 20] hold 20"));
        CHECK_THROWS_WITH(
            read_raw(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8),
            Contains("tensor 'x': data_offsets [8, 4] are reversed"));
        CHECK_THROWS_WITH(read_raw(R"({"__metadata__": {"n": 1}})", 0),
                          Contains("__metadata__ 'n' is not a string"));
    }
    SECTION("overlapping and out-of-range offsets") {
        CHECK_THROWS_WITH(
            read_raw(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                     R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                     12),
            Contains("tensor 'b' overlaps tensor 'a'"));
        CHECK_THROWS_WITH(
            read_raw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
            Contains("tensor 'a': 4 unused bytes before it"));
        CHECK_THROWS_WITH(
            read_raw(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [1000, 1004]}})", 8),
            Contains("tensor 'a': data_offsets [1000, 1004] are out of range"));
    }
    SECTION("a dtype that does not convert to float") {
        const SafetensorsFile f =
            read_raw(R"({"i": {"dtype": "I32", "shape": [2], "data_offsets": [0, 8]}})", 8);
        CHECK_THROWS_WITH(f.to_float(*f.find("i")), Contains("tensor 'i' has dtype I32"));
    }
    CHECK_THROWS_WITH(SafetensorsFile::read(temp_path("does_not_exist")), Contains("cannot open"));
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: a GPT-2 file that does not match the model is rejected by name",
          "[safetensors]") {
    const std::string path = temp_path("mismatch.safetensors");
    const std::string bad = temp_path("mismatch_bad.safetensors");
    const GPT<float> source = random_model(kConfig, 8);
    save_gpt2_safetensors(source, path);
    GPT<float> model(kConfig, 9);
    const GPT<float> untouched(kConfig, 9);
    auto check_load_fails = [&](const std::string& message) {
        CHECK_THROWS_WITH(load_gpt2_safetensors(model, bad), Contains(message));
        CHECK(same_weights(model, untouched));  // a failed load changes nothing
    };

    SECTION("missing tensor") {
        rewrite(path, bad, [](std::string& name, auto&, auto&) { return name != "h.1.ln_2.bias"; });
        check_load_fails("missing tensor 'h.1.ln_2.bias' (expected shape [32])");
    }
    SECTION("mis-shaped tensor: a Conv1D weight saved in the [out, in] layout") {
        rewrite(path, bad, [](std::string& name, std::vector<std::int64_t>& shape, auto&) {
            if (name == "h.0.mlp.c_fc.weight") shape = {128, 32};
            return true;
        });
        check_load_fails("tensor 'h.0.mlp.c_fc.weight' has shape [128, 32], expected [32, 128]");
    }
    SECTION("wrong dtype") {
        write_bytes(bad, patch(read_bytes(path), R"("wpe.weight":{"dtype":"F32")",
                               R"("wpe.weight":{"dtype":"I32")"));
        check_load_fails("tensor 'wpe.weight' has dtype I32, expected F32");
    }
    SECTION("unexpected extra tensor") {
        const std::vector<float> one{1.0f};
        rewrite(
            path, bad, [](auto&, auto&, auto&) { return true; },
            [&](SafetensorsFile& f) { f.add("h.0.attn.rotary", {1}, one.data()); });
        check_load_fails("unexpected tensor 'h.0.attn.rotary'");
    }
    SECTION("a third layer") {
        GPTConfig deeper = kConfig;
        deeper.n_layer = 3;
        save_gpt2_safetensors(GPT<float>(deeper, 1), bad);
        check_load_fails("unexpected tensor 'h.2.");
    }
    SECTION("an untied lm_head") {
        std::vector<float> head(37 * 32, 0.25f);
        rewrite(
            path, bad, [](auto&, auto&, auto&) { return true; },
            [&](SafetensorsFile& f) {
                f.add("lm_head.weight", {37, 32}, head.data());
            });
        check_load_fails("lm_head.weight differs from wte.weight");
    }
    SECTION("another head count") {
        write_bytes(bad, patch(read_bytes(path), R"("n_head":"2")", R"("n_head":"4")"));
        check_load_fails("__metadata__ n_head = 4 but the model has n_head = 2");
        write_bytes(bad, patch(read_bytes(path), R"("n_head":"2")", R"("n_head":"x")"));
        check_load_fails("__metadata__ n_head 'x' is not a positive count");
        CHECK_THROWS_WITH(gpt2_config_from_safetensors(bad),
                          Contains("n_head 'x' is not a positive count"));
    }
    SECTION("truncated file") {
        const std::string bytes = read_bytes(path);
        write_bytes(bad, bytes.substr(0, bytes.size() - 100));
        check_load_fails("are out of range");
        write_bytes(bad, bytes.substr(0, 50));
        check_load_fails("exceeds the file size");
    }
    SECTION("a name both with and without the 'transformer.' prefix") {
        const std::vector<float> v(32, 1.0f);
        rewrite(
            path, bad, [](auto&, auto&, auto&) { return true; },
            [&](SafetensorsFile& f) { f.add("transformer.ln_f.bias", {32}, v.data()); });
        check_load_fails(
            "tensor 'ln_f.bias' appears both with and without the 'transformer.' prefix");
    }
    std::filesystem::remove(path);
    std::filesystem::remove(bad);
}

// ---- hostile files (issue 11, items 3 and 4) ----

TEST_CASE("safetensors: GPT-2's expected tensors are the model's parameters", "[safetensors]") {
    for (const bool bias : {true, false}) {
        GPTConfig c = kConfig;
        c.bias = bias;
        const GPT<float> model(c);
        std::vector<std::pair<std::string, std::vector<std::int64_t>>> listed;
        detail::gpt2_for_each_tensor(c, [&](const std::string& name, const auto& shape) {
            listed.emplace_back(name, shape);
        });
        const auto& infos = model.parameters().infos();
        REQUIRE(listed.size() == infos.size());
        for (std::size_t i = 0; i < infos.size(); ++i) {
            CHECK(listed[i].first == infos[i].name);
            CHECK(listed[i].second == detail::gpt2_file_shape(infos[i]));
        }
    }
}

TEST_CASE("safetensors: a small file naming a big model is rejected before the model is built",
          "[safetensors]") {
    // Item 3: wte/wpe and one small tensor per layer name 200 layers of n_embd 64: the model would
    // hold 10 million weights (40 MB); the file holds a few kilobytes.
    const std::string path = temp_path("small_big.safetensors");
    SafetensorsFile f;
    const std::vector<float> row(64, 0.5f);
    f.add("wte.weight", {1, 64}, row.data());
    f.add("wpe.weight", {1, 64}, row.data());
    for (int i = 0; i < 200; ++i) f.add("h." + std::to_string(i) + ".ln_1.weight", {1}, row.data());
    f.set_metadata("n_head", "1");
    f.write(path);
    CHECK(std::filesystem::file_size(path) < 20000);
    nanogpt_test::reset_largest_allocation();
    CHECK_THROWS_AS(gpt2_config_from_safetensors(path), std::runtime_error);
    CHECK_THROWS_WITH(gpt2_config_from_safetensors(path),
                      Contains("missing tensor 'h.0.ln_1.weight'") ||
                          Contains("tensor 'h.0.ln_1.weight' has shape [1], expected [64]"));
    CHECK(nanogpt_test::largest_allocation() < 1024 * 1024);
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: 100,000 keys, duplicates found in linear time", "[safetensors]") {
    // Item 4: the duplicate check used to compare each key with every earlier one.
    std::string header = "{";
    for (int i = 0; i < 100000; ++i) {
        header += "\"t" + std::to_string(i) +
                  "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},";
    }
    const std::string path = temp_path("many_keys.safetensors");
    write_bytes(path, raw_file(header + "\"t5\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0));
    CHECK_THROWS_WITH(SafetensorsFile::read(path), Contains("duplicate key 't5'"));
    header.back() = '}';
    write_bytes(path, raw_file(header, 0));
    const SafetensorsFile ok = SafetensorsFile::read(path);
    CHECK(ok.tensors().size() == 100000);
    REQUIRE(ok.find("t99999") != nullptr);
    CHECK(ok.find("t99999")->shape == std::vector<std::int64_t>{0});
    std::filesystem::remove(path);
}

TEST_CASE("safetensors: a directory is reported as such", "[safetensors]") {
    const std::string dir = temp_path("dir");
    std::filesystem::create_directories(dir);
    CHECK_THROWS_WITH(SafetensorsFile::read(dir), Contains(dir) && Contains("not a regular file"));
    std::filesystem::remove(dir);
}
