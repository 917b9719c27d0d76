// Tests for checkpoint.hpp: an exact round trip of weights, optimizer state and training state,
// resuming, and rejection of truncated, corrupt, mismatched or foreign files.
#include <catch2/catch.hpp>

#include <algorithm>   // std::equal
#include <cstdio>      // std::remove
#include <cstring>     // std::memcpy
#include <filesystem>  // std::filesystem::temp_directory_path, exists
#include <fstream>     // std::ifstream, std::ofstream
#include <iterator>    // std::istreambuf_iterator
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string
#include <utility>     // std::move
#include <vector>      // std::vector

#include <nanogpt/checkpoint.hpp>
#include <nanogpt/data.hpp>
#include <nanogpt/tokenizer.hpp>

#include "allocation_probe.hpp"

using namespace nanogpt;

namespace {

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("nanogpt_test_" + name)).string();
}

std::vector<char> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A tiny model trained for a few steps, so weights and AdamW moments are non-trivial.
struct Trained {
    GPTConfig config;
    GPT<float> model;
    AdamW<float> optimizer;
    CharTokenizer tokenizer;
    Random data_rng;

    Trained()
        : config(make_config()),
          model(config, 7),
          optimizer(model.parameters(), AdamWConfig{}),
          tokenizer(CharTokenizer::from_text("abcdefghijklmnopqrstuvwxyz ,.!?ABCDEF")),
          data_rng(3) {}

    static GPTConfig make_config() {
        GPTConfig c = GPTConfig::tiny();
        c.vocab_size = 37;
        return c;
    }

    float step(const std::vector<std::int32_t>& data) {
        Batch b = get_batch(data, 2, config.block_size, data_rng);
        auto out = model.forward(b.x, b.y);
        const float loss = out.loss.item();
        model.zero_grad();
        out.loss.backward();
        clip_grad_norm(model.parameters(), 1.0);
        optimizer.step(1e-2);
        return loss;
    }
};

std::vector<std::int32_t> some_tokens() {
    std::vector<std::int32_t> data(200);
    Random rng(11);
    for (auto& t : data) t = static_cast<std::int32_t>(rng.uniform_int(37));
    return data;
}

}  // namespace

TEST_CASE("checkpoint: round trip is exact") {
    Trained run;
    const auto data = some_tokens();
    for (int i = 0; i < 3; ++i) run.step(data);
    TrainingState state{3, 2.5, run.data_rng.state()};
    const std::string path = temp_path("roundtrip.bin");
    save_checkpoint(path, run.model, &run.optimizer, run.tokenizer.symbols(), state);
    REQUIRE_FALSE(std::filesystem::exists(path + ".tmp"));  // renamed into place

    const Checkpoint<float> ck = load_checkpoint<float>(path);
    CHECK(ck.config == run.config);
    CHECK(ck.vocabulary == run.tokenizer.symbols());
    CHECK(ck.training.iter == 3);
    CHECK(ck.training.best_val_loss == 2.5);
    CHECK(ck.has_optimizer);
    CHECK(ck.adamw_steps == 3);
    const auto& p = run.model.parameters();
    REQUIRE(ck.weights.size() == static_cast<std::size_t>(p.size()));
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), p.data()));  // bit-exact
    CHECK(ck.adamw_m == run.optimizer.m());
    CHECK(ck.adamw_v == run.optimizer.v());

    GPT<float> restored = ck.make_model();
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), restored.parameters().data()));
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: resuming continues the run exactly") {
    const auto data = some_tokens();
    Trained straight;
    std::vector<float> losses;
    for (int i = 0; i < 6; ++i) losses.push_back(straight.step(data));

    Trained first;
    for (int i = 0; i < 3; ++i) first.step(data);
    const std::string path = temp_path("resume.bin");
    save_checkpoint(path, first.model, &first.optimizer, first.tokenizer.symbols(),
                    TrainingState{3, 0.0, first.data_rng.state()});

    Trained resumed;  // fresh objects, then everything restored from the file
    const Checkpoint<float> ck = load_checkpoint<float>(path);
    ck.restore(resumed.model, &resumed.optimizer);
    resumed.data_rng.set_state(ck.training.data_rng);
    for (int i = 3; i < 6; ++i) CHECK(resumed.step(data) == losses[static_cast<std::size_t>(i)]);
    const auto& a = straight.model.parameters();
    CHECK(std::equal(a.data(), a.data() + a.size(), resumed.model.parameters().data()));
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: bad files are rejected with a clear error") {
    Trained run;
    const std::string path = temp_path("bad_source.bin");
    save_checkpoint(path, run.model, &run.optimizer, run.tokenizer.symbols());
    const std::vector<char> good = read_bytes(path);
    const std::string bad = temp_path("bad.bin");

    SECTION("missing file") {
        CHECK_THROWS_WITH(load_checkpoint<float>(temp_path("does_not_exist.bin")),
                          Catch::Contains("cannot open"));
    }
    SECTION("truncated") {
        write_bytes(bad, std::vector<char>(good.begin(),
                                           good.begin() + static_cast<long>(good.size() / 2)));
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("truncated"));
    }
    SECTION("too short to be a checkpoint") {
        write_bytes(bad, std::vector<char>(good.begin(), good.begin() + 10));
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("not a nanogpt checkpoint"));
    }
    SECTION("a flipped byte in the weights") {
        std::vector<char> corrupt = good;
        corrupt[corrupt.size() / 2] ^= 0x40;
        write_bytes(bad, corrupt);
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("checksum mismatch"));
    }
    SECTION("another file format") {
        std::vector<char> other = good;
        other[0] = 'X';
        write_bytes(bad, other);
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("bad magic"));
    }
    SECTION("a newer format version") {
        std::vector<char> newer = good;
        newer[8] = 99;
        write_bytes(bad, newer);
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("format version 99"));
    }
    SECTION("a float checkpoint loaded as double") {
        CHECK_THROWS_WITH(load_checkpoint<double>(path),
                          Catch::Contains("4-byte elements, expected 8"));
    }
    SECTION("restoring into a model of another shape") {
        GPTConfig other = run.config;
        other.n_layer = 1;
        GPT<float> small(other);
        CHECK_THROWS_WITH(load_checkpoint<float>(path).restore(small, nullptr),
                          Catch::Contains("configuration does not match"));
    }
    SECTION("an invalid configuration inside a well-formed file") {
        GPTConfig broken = run.config;
        GPT<float> model(broken);
        save_checkpoint(bad, model, nullptr, {});
        std::vector<char> bytes = read_bytes(bad);
        // n_head is the 4th i64 of the config, which starts after 28 header bytes.
        const std::int64_t three = 3;
        std::memcpy(bytes.data() + 28 + 3 * 8, &three, sizeof three);
        // Re-seal the hash so only the configuration check can catch it.
        const std::uint64_t hash =
            detail::fnv1a(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size() - 8);
        std::memcpy(bytes.data() + bytes.size() - 8, &hash, sizeof hash);
        write_bytes(bad, bytes);
        CHECK_THROWS_WITH(load_checkpoint<float>(bad),
                          Catch::Contains("not divisible by n_head = 3"));
    }
    std::remove(bad.c_str());
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: saving over an existing file replaces it atomically") {
    Trained run;
    const std::string path = temp_path("replace.bin");
    save_checkpoint(path, run.model, nullptr, run.tokenizer.symbols());
    const auto before = read_bytes(path);
    run.step(some_tokens());
    save_checkpoint(path, run.model, &run.optimizer, run.tokenizer.symbols());
    const auto after = read_bytes(path);
    CHECK(before != after);
    CHECK(load_checkpoint<float>(path).has_optimizer);
    SECTION("an unwritable location fails loudly and leaves the old file alone") {
        CHECK_THROWS_WITH(save_checkpoint("/nonexistent-dir/ckpt.bin", run.model, nullptr, {}),
                          Catch::Contains("cannot open"));
        CHECK(read_bytes(path) == after);
    }
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: sampling loads an inference model without the optimizer state") {
    Trained run;
    const auto data = some_tokens();
    for (int i = 0; i < 3; ++i) run.step(data);
    const std::string path = temp_path("inference.bin");
    save_checkpoint(path, run.model, &run.optimizer, run.tokenizer.symbols(),
                    TrainingState{3, 2.5, run.data_rng.state()});
    const Checkpoint<float> full = load_checkpoint<float>(path);
    Checkpoint<float> weights_only = load_checkpoint<float>(path, OptimizerState::skip);
    CHECK(weights_only.config == full.config);
    CHECK(weights_only.vocabulary == full.vocabulary);
    CHECK(weights_only.training.iter == 3);
    CHECK(weights_only.weights == full.weights);
    CHECK_FALSE(weights_only.has_optimizer);  // passed over, so restore() leaves AdamW alone
    CHECK(weights_only.adamw_m.empty());
    CHECK(weights_only.adamw_v.empty());
    // The bytes in memory decode the same way as the file.
    std::ifstream in(path, std::ios::binary);
    const std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)),
                                           std::istreambuf_iterator<char>());
    const Checkpoint<float> parsed = parse_checkpoint<float>(bytes, path);
    CHECK(parsed.weights == full.weights);
    CHECK(parsed.adamw_m == full.adamw_m);
    CHECK(parsed.adamw_v == full.adamw_v);
    CHECK(parse_checkpoint<float>(bytes, path, OptimizerState::skip).adamw_m.empty());

    // The same tokens as the training model the sample program used to build, for a fixed seed.
    GPT<float> training_model = full.make_model();
    GPT<float> inference =
        GPT<float>::for_inference(weights_only.config, std::move(weights_only.weights));
    CHECK_FALSE(inference.training());
    CHECK_FALSE(inference.parameters().has_gradients());
    CHECK(inference.parameters().grad() == nullptr);
    SamplingOptions options;
    options.temperature = 0.8;
    options.top_k = 10;
    for (const bool cached : {true, false}) {
        Random a(5), b(5);
        const auto expected = training_model.generate({1, 2}, 40, options, a, {}, cached);
        CHECK(inference.generate({1, 2}, 40, options, b, {}, cached) == expected);
    }
    Tensor<std::int32_t> x(Shape{1, 4}), y(Shape{1, 4});
    const auto loss = inference.forward(x, y).loss;
    CHECK_FALSE(loss.requires_grad());  // nothing recorded: no gradients to fill
    const float value = loss.item();
    CHECK(value == training_model.forward(x, y).loss.item());
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: an inference model rejects training and wrong sizes") {
    const GPTConfig config = GPTConfig::tiny();
    SECTION("weight count") {
        REQUIRE_THROWS_AS(GPT<float>::for_inference(config, std::vector<float>(10)),
                          std::invalid_argument);
        REQUIRE_THROWS_WITH(GPT<float>::for_inference(config, std::vector<float>(10)),
                            "GPT::for_inference: 10 weights, the configuration needs " +
                                std::to_string(config.num_parameters()));
    }
    SECTION("optimizer and clipping") {
        GPT<float> model = GPT<float>::for_inference(
            config, std::vector<float>(static_cast<std::size_t>(config.num_parameters()), 0.01f));
        REQUIRE_THROWS_WITH(AdamW<float>(model.parameters()),
                            "AdamW: the parameters have no gradient buffer (an inference model, "
                            "GPT::for_inference)");
        REQUIRE_THROWS_WITH(grad_norm(model.parameters()),
                            Catch::StartsWith("grad_norm: the parameters have no gradient buffer"));
        CHECK_NOTHROW(model.zero_grad());
    }
}

// ---- hostile files (issue 11): correct sizes and hashes, absurd contents ----

namespace {

/// A version-2 checkpoint holding `config`, a weight count of `n_weights` but only
/// `weights_present` weights of data, no optimizer, and a correct size field and hash: what an
/// attacker who recomputes FNV-1a writes.
std::vector<char> crafted_checkpoint(const GPTConfig& c, std::uint64_t n_weights,
                                     std::size_t weights_present) {
    detail::ByteWriter w;
    w.put_array(kCheckpointMagic, 8);
    w.put(std::uint32_t{2});
    w.put(std::uint32_t{4});
    w.put(std::uint64_t{0});
    w.put(std::uint32_t{0});
    for (std::int64_t v : {c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd}) w.put(v);
    w.put(c.dropout);
    w.put(static_cast<std::uint8_t>(c.bias));
    w.put(std::uint32_t{0});
    w.put(std::uint64_t{0});
    w.put(std::int64_t{0});
    w.put(0.0);
    w.put_state(Random::State{});
    w.put_state(Random::State{});
    w.put(n_weights);
    const std::vector<float> weights(weights_present, 0.5f);
    w.put_array(weights.data(), weights.size());
    w.put(std::uint8_t{0});
    const std::uint64_t total = w.bytes().size() + 8;
    std::memcpy(w.bytes().data() + 16, &total, 8);
    w.put(detail::fnv1a(w.bytes().data(), w.bytes().size()));
    return {w.bytes().begin(), w.bytes().end()};
}

}  // namespace

TEST_CASE("checkpoint: hostile files are rejected before anything large is allocated") {
    const std::string path = temp_path("hostile.bin");
    SECTION("item 1: sizes whose parameter count overflows int64") {
        const GPTConfig huge{std::int64_t(1) << 40, 50257, std::int64_t(1) << 40, 1,
                             std::int64_t(1) << 40, 0.0, true};
        const auto bytes = crafted_checkpoint(huge, 0, 0);
        CHECK(bytes.size() < 250);
        write_bytes(path, bytes);
        CHECK_THROWS_WITH(load_checkpoint<float>(path),
                          Catch::Contains("invalid configuration") &&
                              Catch::Contains("num_parameters") && Catch::Contains(path));
    }
    SECTION("item 2: a weight count far beyond the bytes present") {
        const GPTConfig big{1024, 50257, 48, 25, 1600, 0.0, true};  // GPT-2 XL: 1.56e9 weights
        const auto bytes =
            crafted_checkpoint(big, static_cast<std::uint64_t>(big.num_parameters()), 4);
        write_bytes(path, bytes);
        nanogpt_test::reset_largest_allocation();
        CHECK_THROWS_WITH(load_checkpoint<float>(path), Catch::Contains("truncated in weights"));
        CHECK(nanogpt_test::largest_allocation() < 64 * 1024);
    }
    SECTION("item 9: a tiny model with a huge KV cache") {
        const GPTConfig deep{100000, 10, 1000, 1, 1, 0.0, true};
        CHECK(deep.kv_cache_elements() == 200000000);
        const auto n = static_cast<std::uint64_t>(deep.num_parameters());
        write_bytes(path, crafted_checkpoint(deep, n, static_cast<std::size_t>(n)));
        CHECK_THROWS_WITH(load_checkpoint<float>(path),
                          Catch::Contains("KV cache") && Catch::Contains("docs/formats.md"));
    }
    SECTION("item 5: a directory is not a checkpoint") {
        const std::string dir = temp_path("a_directory");
        std::filesystem::create_directories(dir);
        CHECK_THROWS_AS(load_checkpoint<float>(dir), std::runtime_error);
        CHECK_THROWS_WITH(load_checkpoint<float>(dir),
                          Catch::Contains(dir) && Catch::Contains("not a regular file"));
        std::filesystem::remove(dir);
    }
    SECTION("a crafted file with a sane configuration still loads") {
        const GPTConfig ok = GPTConfig::tiny();
        const auto n = static_cast<std::uint64_t>(ok.num_parameters());
        write_bytes(path, crafted_checkpoint(ok, n, static_cast<std::size_t>(n)));
        const Checkpoint<float> ck = load_checkpoint<float>(path);
        CHECK(ck.config == ok);
        CHECK(ck.weights.size() == n);
    }
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: a version-1 file written before the format change still loads") {
    // tests/data/checkpoint_v1.bin was written by save_checkpoint of format version 1 (a fresh
    // GPT{8, 5, 1, 2, 4} from seed 1337, AdamW before any step, iter 7, best_val_loss 1.5).
    const auto path = std::filesystem::path(__FILE__).parent_path() / "data" / "checkpoint_v1.bin";
    const std::vector<char> bytes = read_bytes(path.string());
    REQUIRE(bytes.size() > 24);
    std::uint32_t version = 0;
    std::memcpy(&version, bytes.data() + 8, 4);
    CHECK(version == 1);
    const Checkpoint<float> ck = load_checkpoint<float>(path.string());
    const GPTConfig expected{8, 5, 1, 2, 4, 0.0, true};
    CHECK(ck.config == expected);
    CHECK(ck.vocabulary == std::vector<std::string>{"a", "b", "c", "\n", "\xc3\xa9"});
    CHECK(ck.training.iter == 7);
    CHECK(ck.training.best_val_loss == 1.5);
    CHECK(ck.has_optimizer);
    CHECK(ck.adamw_steps == 0);
    GPT<float> fresh(expected);
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), fresh.parameters().data()));
    // Saved again, it is the current version and reads back the same.
    const std::string again = temp_path("v1_resaved.bin");
    GPT<float> model = ck.make_model();
    save_checkpoint(again, model, nullptr, ck.vocabulary, ck.training);
    const std::vector<char> resaved = read_bytes(again);
    std::memcpy(&version, resaved.data() + 8, 4);
    CHECK(version == kCheckpointVersion);
    CHECK(load_checkpoint<float>(again).weights == ck.weights);
    std::remove(again.c_str());
}

TEST_CASE("checkpoint: a staged checkpoint is written only when committed (issue 11, item 7)") {
    Trained run;
    const std::string path = temp_path("pending.bin");
    save_checkpoint(path, run.model, &run.optimizer, run.tokenizer.symbols());
    const std::vector<char> good = read_bytes(path);
    PendingCheckpoint pending;
    CHECK_FALSE(pending.pending());
    CHECK_FALSE(pending.commit());
    run.step(some_tokens());
    pending.stage(path, run.model, &run.optimizer, run.tokenizer.symbols(), TrainingState{1});
    CHECK(pending.pending());
    CHECK(read_bytes(path) == good);  // staging writes nothing
    pending.discard();               // the step after it diverged
    CHECK_FALSE(pending.commit());
    CHECK(read_bytes(path) == good);
    pending.stage(path, run.model, &run.optimizer, run.tokenizer.symbols(), TrainingState{1});
    CHECK(pending.commit());  // the step after it was sound
    const Checkpoint<float> ck = load_checkpoint<float>(path);
    CHECK(ck.training.iter == 1);
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), run.model.parameters().data()));
    CHECK_FALSE(pending.pending());
    std::remove(path.c_str());
}

TEST_CASE("checkpoint: a version-2 file (before the dtype field) loads as float32") {
    // tests/data/checkpoint_v2.bin was written by save_checkpoint of format version 2 (the model,
    // tokenizer and training state of checkpoint_v1.bin).
    const auto path = std::filesystem::path(__FILE__).parent_path() / "data" / "checkpoint_v2.bin";
    const std::vector<char> bytes = read_bytes(path.string());
    REQUIRE(bytes.size() > 24);
    std::uint32_t version = 0;
    std::memcpy(&version, bytes.data() + 8, 4);
    CHECK(version == 2);
    const Checkpoint<float> ck = load_checkpoint<float>(path.string());
    const GPTConfig expected{8, 5, 1, 2, 4, 0.0, true};
    CHECK(ck.config == expected);
    CHECK(ck.config.dtype == nanogpt::Dtype::float32);
    CHECK(ck.training.iter == 7);
    GPT<float> fresh(expected);
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), fresh.parameters().data()));
}

TEST_CASE("checkpoint: the dtype is saved, restored, and not part of the architecture") {
    GPTConfig config{8, 5, 1, 2, 4, 0.0, true};
    config.dtype = nanogpt::Dtype::bfloat16;
    GPT<float> model(config, 3);
    const std::string path = temp_path("dtype.bin");
    save_checkpoint(path, model, nullptr, {});
    const Checkpoint<float> ck = load_checkpoint<float>(path);
    CHECK(ck.config.dtype == nanogpt::Dtype::bfloat16);
    CHECK(ck.make_model().config().dtype == nanogpt::Dtype::bfloat16);
    GPT<float> fp32(GPTConfig{8, 5, 1, 2, 4, 0.0, true}, 9);  // same shape, float32
    ck.restore(fp32, nullptr);
    CHECK(std::equal(ck.weights.begin(), ck.weights.end(), fp32.parameters().data()));
    SECTION("a corrupt dtype byte is rejected by name") {
        std::vector<char> bytes = read_bytes(path);
        // The dtype byte follows the config: 8 magic + 4 version + 4 element bytes + 8 size +
        // 4 element type + 5 x 8 + 8 dropout + 1 bias.
        const std::size_t at = 8 + 4 + 4 + 8 + 4 + 40 + 8 + 1;
        REQUIRE(bytes[at] == 1);
        bytes[at] = 7;
        // Recompute the hash so that the field check, not the hash, rejects the file.
        const std::uint64_t hash = nanogpt::detail::fnv1a(
            reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size() - 8);
        std::memcpy(bytes.data() + bytes.size() - 8, &hash, 8);
        const std::string bad = temp_path("dtype_bad.bin");
        write_bytes(bad, bytes);
        CHECK_THROWS_WITH(load_checkpoint<float>(bad), Catch::Contains("dtype 7 (0 float32, 1 bfloat16)"));
        std::remove(bad.c_str());
    }
    std::remove(path.c_str());
}
