// Tests for the GPT-2 side of the programs prepare, train and sample (examples/): they run the
// built programs and compare what they write with what the library computes in this process.
// Random small GPT-2-shaped models stand in for OpenAI's weights (vocab 50257, 2 layers of 2 heads
// over 32 channels: 1.7M parameters). The program paths come from tests/CMakeLists.txt (workflow
// block); tests that need GPT-2's encoder.json and vocab.bpe read them from NANOGPT_DATA_DIR and
// skip with a warning without it.
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <nanogpt.hpp>

#if defined(NANOGPT_PREPARE_EXE) && defined(NANOGPT_TRAIN_EXE) && defined(NANOGPT_SAMPLE_EXE)

namespace {

namespace fs = std::filesystem;
using nanogpt::GPT2Tokenizer;

/// A fresh working directory under the test's working directory, named after the test.
fs::path work_dir(const std::string& name) {
    const fs::path dir = fs::absolute("gpt2_programs") / name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::string read_all(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

struct Run {
    int status;
    std::string out;  // stdout
    std::string all;  // stdout, then stderr
};

/// Runs `program args` in dir (arguments must not need quoting).
Run run(const fs::path& dir, const std::string& program, const std::string& args) {
    const std::string cmd =
        "cd '" + dir.string() + "' && '" + program + "' " + args + " > stdout.txt 2> stderr.txt";
    const int status = std::system(cmd.c_str());
    const std::string out = read_all(dir / "stdout.txt");
    return {status, out, out + read_all(dir / "stderr.txt")};
}

Run run_ok(const fs::path& dir, const std::string& program, const std::string& args) {
    Run r = run(dir, program, args);
    INFO(program << " " << args << "\n" << r.all);
    REQUIRE(r.status == 0);
    return r;
}

std::optional<fs::path> gpt2_files() {
    const char* dir = std::getenv("NANOGPT_DATA_DIR");
    if (dir == nullptr || !fs::exists(fs::path(dir) / "encoder.json") ||
        !fs::exists(fs::path(dir) / "vocab.bpe")) {
        WARN("NANOGPT_DATA_DIR unset or without encoder.json + vocab.bpe: skipping this test");
        return std::nullopt;
    }
    return fs::path(dir);
}

GPT2Tokenizer load_tokenizer(const fs::path& dir) {
    return GPT2Tokenizer::load((dir / "encoder.json").string(), (dir / "vocab.bpe").string());
}

/// A random GPT-2-shaped model saved as safetensors. ln_f's gain is raised from 1 to 100, so the
/// logits of different tokens lie far apart (standard deviation about 11): greedy decoding then
/// picks the same token whatever the summation order, and the choice depends on the position too.
void save_random_gpt2(const fs::path& path, std::int64_t block_size,
                      std::int64_t vocab_size = 50257) {
    nanogpt::GPT<float> model(nanogpt::GPTConfig{block_size, vocab_size, 2, 2, 32, 0.0, true}, 7);
    for (const nanogpt::ParameterInfo& info : model.parameters().infos()) {
        if (info.name != "ln_f.weight") continue;
        float* p = model.parameters().data() + info.offset;
        for (std::int64_t i = 0; i < info.shape.numel(); ++i) p[i] *= 100.0f;
    }
    nanogpt::save_gpt2_safetensors(model, path.string());
}

/// What `sample --top_k=1 --num_samples=1` must print: the prompt, then the greedy continuation
/// of the model in the safetensors file, computed here by the library.
std::string greedy_sample(const fs::path& weights, const GPT2Tokenizer& tok,
                          const std::string& prompt, std::int64_t new_tokens) {
    nanogpt::GPT<float> model(nanogpt::gpt2_config_from_safetensors(weights.string()));
    nanogpt::load_gpt2_safetensors(model, weights.string());
    nanogpt::SamplingOptions greedy;
    greedy.top_k = 1;
    nanogpt::Random rng(1337);
    const std::vector<std::int32_t> ids = tok.encode(prompt);
    const std::vector<std::int32_t> all = model.generate(ids, new_tokens, greedy, rng);
    return prompt +
           tok.decode(std::vector<std::int32_t>(
               all.begin() + static_cast<std::ptrdiff_t>(ids.size()), all.end())) +
           "\n---------------\n";
}

std::vector<std::int32_t> read_ids(const fs::path& path) {
    const nanogpt::TokenFile file(path.string());
    return {file.tokens().begin(), file.tokens().end()};
}

const char* kText =
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish? Caf\xc3\xa9 \xe2\x80\x94 "
    "na\xc3\xafve \xf0\x9f\x98\x80!\n";

/// Writes input.txt (kText, repeated) and prepares data/ with GPT-2's tokenizer.
void prepare_gpt2_data(const fs::path& dir, int repeats) {
    std::string text;
    for (int i = 0; i < repeats; ++i) text += kText;
    std::ofstream(dir / "input.txt", std::ios::binary) << text;
    run_ok(dir, NANOGPT_PREPARE_EXE, "--input=input.txt --out_dir=data --tokenizer=gpt2");
}

}  // namespace

TEST_CASE("gpt2 programs: prepare --tokenizer=gpt2 writes GPT2Tokenizer's ids", "[gpt2_programs]") {
    const auto files = gpt2_files();
    if (!files) return;
    const GPT2Tokenizer tok = load_tokenizer(*files);
    const fs::path dir = work_dir("prepare");
    // 10 copies, "<|endoftext|>" between them: GPT-2's document separator becomes token 50256.
    std::string text;
    for (int i = 0; i < 10; ++i) text += std::string(kText) + (i < 9 ? "<|endoftext|>" : "");
    std::ofstream(dir / "input.txt", std::ios::binary) << text;
    const Run r =
        run_ok(dir, NANOGPT_PREPARE_EXE, "--input=input.txt --out_dir=data --tokenizer=gpt2");
    CHECK_THAT(r.out, Catch::Contains("tokenizer gpt2, vocab_size 50257"));

    // The split is of the text, at 90% of its characters (code points), as nanoGPT's prepare.py.
    std::size_t characters = 0;
    for (char c : text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
    const auto n_train = static_cast<std::size_t>(0.9 * static_cast<double>(characters));
    std::size_t split = 0;
    for (std::size_t seen = 0; split < text.size(); ++split) {
        if ((static_cast<unsigned char>(text[split]) & 0xC0) != 0x80 && seen++ == n_train) break;
    }
    CHECK(read_ids(dir / "data/train.bin") == tok.encode(text.substr(0, split)));
    CHECK(read_ids(dir / "data/val.bin") == tok.encode(text.substr(split)));
    const nanogpt::DatasetMeta meta = nanogpt::read_dataset_meta((dir / "data/meta.txt").string());
    CHECK(meta.tokenizer == "gpt2");
    CHECK(meta.vocab_size == 50257);
    CHECK(meta.vocabulary.empty());

    SECTION("explicit --encoder and --merges; missing files are named") {
        const std::string args = "--input=input.txt --out_dir=data2 --tokenizer=gpt2 --encoder=" +
                                 (*files / "encoder.json").string() +
                                 " --merges=" + (*files / "vocab.bpe").string();
        run_ok(dir, NANOGPT_PREPARE_EXE, args);
        CHECK(read_all(dir / "data2/train.bin") == read_all(dir / "data/train.bin"));
        const Run bad =
            run(dir, NANOGPT_PREPARE_EXE,
                "--input=input.txt --out_dir=x --tokenizer=gpt2 --encoder=nowhere.json");
        CHECK(bad.status != 0);
        CHECK_THAT(bad.all,
                   Catch::Contains("nowhere.json") && Catch::Contains("scripts/download_gpt2.sh"));
    }
}

TEST_CASE("gpt2 programs: sample --weights --top_k=1 is the library's greedy continuation",
          "[gpt2_programs]") {
    const auto files = gpt2_files();
    if (!files) return;
    const GPT2Tokenizer tok = load_tokenizer(*files);
    const fs::path dir = work_dir("sample");
    save_random_gpt2(dir / "w.safetensors", 32);
    const std::string args =
        "--weights=w.safetensors --start=Hello --top_k=1 --num_samples=1 --max_new_tokens=12";
    const Run first = run_ok(dir, NANOGPT_SAMPLE_EXE, args);
    const Run second =
        run_ok(dir, NANOGPT_SAMPLE_EXE, args + " --seed=99");  // greedy: the seed is irrelevant
    CHECK(first.out == second.out);
    CHECK(first.out == greedy_sample(dir / "w.safetensors", tok, "Hello", 12));

    SECTION("weights whose vocabulary is not GPT-2's") {
        save_random_gpt2(dir / "small.safetensors", 32, 100);
        const Run r =
            run(dir, NANOGPT_SAMPLE_EXE, "--weights=small.safetensors --max_new_tokens=2");
        CHECK(r.status != 0);
        CHECK_THAT(
            r.all,
            Catch::Contains("GPT-2's tokenizer has 50257 tokens but the model has vocab_size 100"));
    }
    SECTION("a missing weights file") {
        const Run r = run(dir, NANOGPT_SAMPLE_EXE, "--weights=missing.safetensors");
        CHECK(r.status != 0);
        CHECK_THAT(r.all, Catch::Contains("missing.safetensors"));
    }
}

TEST_CASE("gpt2 programs: train init_from=gpt2 loads the weights, crops block_size, resumes",
          "[gpt2_programs]") {
    const auto files = gpt2_files();
    if (!files) return;
    const GPT2Tokenizer tok = load_tokenizer(*files);
    const fs::path dir = work_dir("train");
    prepare_gpt2_data(dir, 8);
    save_random_gpt2(dir / "w.safetensors", 64);
    // One step at learning rate 0 leaves the weights as loaded; the checkpoint then holds them.
    const std::string tiny =
        "--data_dir=data --out_dir=out --batch_size=2 --gradient_accumulation_steps=1 "
        "--eval_interval=1 --eval_iters=1 --decay_lr=false --weight_decay=0 --threads=1";
    const Run r = run_ok(dir, NANOGPT_TRAIN_EXE,
                         tiny +
                             " --init_from=gpt2 --weights=w.safetensors --block_size=16 "
                             "--learning_rate=0 --max_iters=1 --dropout=0.1");
    CHECK_THAT(r.out, Catch::Contains("using the weights' n_embd = 32"));
    CHECK_THAT(r.out, Catch::Contains("cropped the position embedding from block_size 64 to 16"));
    const std::string config = read_all(dir / "out/config.txt");
    CHECK_THAT(config, Catch::Contains("n_embd = 32 ") && Catch::Contains("dropout = 0.1 ") &&
                           Catch::Contains("block_size = 16 "));
    const auto checkpoint = nanogpt::load_checkpoint<float>((dir / "out/ckpt.bin").string());
    CHECK(checkpoint.config == nanogpt::GPTConfig{16, 50257, 2, 2, 32, 0.1, true});
    CHECK(checkpoint.vocabulary.empty());

    // sample reads the tokenizer kind from out/config.txt -> data/meta.txt. Prompt + new tokens fit
    // in 16 positions, where the cropped model and the file's model agree.
    const std::string expected = greedy_sample(dir / "w.safetensors", tok, "First Citizen:", 10);
    const std::string greedy =
        " --start=First\\ Citizen: --top_k=1 --num_samples=1 --max_new_tokens=10";
    CHECK(run_ok(dir, NANOGPT_SAMPLE_EXE, "--out_dir=out" + greedy).out == expected);
    CHECK(run_ok(dir, NANOGPT_SAMPLE_EXE, "--weights=w.safetensors" + greedy).out == expected);

    // Resume works as for scratch runs: the checkpoint holds the configuration.
    const Run resumed = run_ok(dir, NANOGPT_TRAIN_EXE,
                               tiny + " --init_from=resume --learning_rate=1e-3 --max_iters=3");
    CHECK_THAT(resumed.out, Catch::Contains("resuming from out/ckpt.bin at step 1"));
    CHECK(nanogpt::load_checkpoint<float>((dir / "out/ckpt.bin").string()).training.iter == 3);
}

TEST_CASE("gpt2 programs: train init_from=gpt2 errors name the problem", "[gpt2_programs]") {
    const fs::path dir = work_dir("errors");
    // A gpt2 dataset written directly (no tokenizer files needed): ids below 50257.
    fs::create_directories(dir / "gdata");
    std::vector<std::int32_t> ids(200);
    for (std::size_t i = 0; i < ids.size(); ++i)
        ids[i] = static_cast<std::int32_t>(i * 251 % 50257);
    nanogpt::write_token_file((dir / "gdata/train.bin").string(), ids);
    nanogpt::write_token_file((dir / "gdata/val.bin").string(), ids);
    nanogpt::write_dataset_meta((dir / "gdata/meta.txt").string(), {"gpt2", 50257, {}});
    save_random_gpt2(dir / "w.safetensors", 32);
    save_random_gpt2(dir / "small.safetensors", 32, 100);
    const std::string tiny =
        "--out_dir=out --batch_size=2 --eval_iters=1 --max_iters=1 --block_size=16 --threads=1";
    auto fails_with = [&](const std::string& args, const std::string& message) {
        const Run r = run(dir, NANOGPT_TRAIN_EXE, tiny + " " + args);
        INFO(args << "\n" << r.all);
        CHECK(r.status != 0);
        CHECK_THAT(r.all, Catch::Contains(message));
    };

    SECTION("a missing weights file") {
        fails_with("--data_dir=gdata --init_from=gpt2 --weights=missing.safetensors",
                   "missing.safetensors");
        fails_with("--data_dir=gdata --init_from=gpt2", "data/gpt2/gpt2.safetensors");
    }
    SECTION("weights and dataset disagree on the vocabulary") {
        fails_with("--data_dir=gdata --init_from=gpt2 --weights=small.safetensors",
                   "weights 'small.safetensors' have vocab_size 100 but gdata/meta.txt says "
                   "vocab_size 50257");
    }
    SECTION("a char dataset") {
        fs::create_directories(dir / "cdata");
        nanogpt::write_token_file((dir / "cdata/train.bin").string(),
                                  std::vector<std::int32_t>(100, 1));
        nanogpt::write_token_file((dir / "cdata/val.bin").string(),
                                  std::vector<std::int32_t>(100, 1));
        nanogpt::write_dataset_meta((dir / "cdata/meta.txt").string(), {"char", 2, {"a", "b"}});
        fails_with("--data_dir=cdata --init_from=gpt2 --weights=w.safetensors",
                   "init_from = gpt2 needs data prepared with --tokenizer=gpt2, but cdata/meta.txt "
                   "says tokenizer = "
                   "char (vocab_size 2)");
    }
    SECTION("a block_size beyond the weights'") {
        fails_with(
            "--data_dir=gdata --init_from=gpt2 --weights=w.safetensors --block_size=64",
            "key 'block_size': 64 is larger than the block_size 32 of the weights 'w.safetensors'");
    }
    SECTION("an unknown GPT-2 name") {
        fails_with("--data_dir=gdata --init_from=gpt2-huge",
                   "'gpt2-huge' is not gpt2, gpt2-medium");
    }
    SECTION("it runs when everything fits") {
        const Run r = run(dir, NANOGPT_TRAIN_EXE,
                          tiny + " --data_dir=gdata --init_from=gpt2 --weights=w.safetensors");
        INFO(r.all);
        CHECK(r.status == 0);
    }
}

#else

TEST_CASE("gpt2 programs: skipped, the example programs are not built", "[gpt2_programs]") {
    WARN("prepare, train and sample are not part of this build: skipping the GPT-2 program tests");
}

#endif
