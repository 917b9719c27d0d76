// train_config.hpp — the training program's configuration: ONE table of keys (name, type,
// nanoGPT's default, help) from which --help, out_dir/config.txt and docs/training.md's table are all
// produced; named presets that override some keys; plain-text config files of `key = value`
// lines ('#' comments); and type checks whose errors name the key and where it was set.
// Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::max
#include <cmath>      // std::isfinite
#include <cstdio>     // std::snprintf
#include <cstdint>    // std::int64_t
#include <fstream>    // std::ifstream
#include <map>        // std::map
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string, std::stoll, std::stod
#include <utility>    // std::pair
#include <vector>     // std::vector

#include <nanogpt/config.hpp>     // GPTConfig: the presets' models
#include <nanogpt/key_value.hpp>  // split_key_value, quote_value

namespace examples {

enum class KeyType { text, integer, real, boolean };

struct ConfigKey {
    const char* key;
    KeyType type;
    const char* default_value;  // nanoGPT's train.py default, unless the key is ours
    const char* help;
};

// clang-format off
inline const ConfigKey kTrainKeys[] = {
    // I/O
    {"out_dir", KeyType::text, "out", "where ckpt.bin, config.txt, log.csv and loss.svg go"},
    {"data_dir", KeyType::text, "data/openwebtext", "where prepare wrote train.bin, val.bin and meta.txt"},
    {"init_from", KeyType::text, "scratch", "scratch; resume from out_dir/ckpt.bin; or gpt2 (also gpt2-medium, -large, -xl): start from the GPT-2 weights in `weights`"},
    {"weights", KeyType::text, "", "with init_from = gpt2 (or -medium, -large, -xl): a safetensors file in Hugging Face's GPT-2 layout (empty: data/gpt2/INIT_FROM.safetensors)"},
    {"eval_interval", KeyType::integer, "2000", "evaluate (and maybe checkpoint) every this many steps"},
    {"log_interval", KeyType::integer, "1", "log the training loss every this many steps"},
    {"eval_iters", KeyType::integer, "200", "batches per split in each evaluation"},
    {"eval_only", KeyType::boolean, "false", "evaluate once, then exit"},
    {"always_save_checkpoint", KeyType::boolean, "true", "checkpoint at every evaluation, not only when val loss improves"},
    // data
    {"gradient_accumulation_steps", KeyType::integer, "40", "micro-batches per optimizer step"},
    {"batch_size", KeyType::integer, "12", "sequences per micro-batch"},
    {"block_size", KeyType::integer, "1024", "context length in tokens"},
    // model
    {"n_layer", KeyType::integer, "12", "transformer blocks"},
    {"n_head", KeyType::integer, "12", "attention heads per block"},
    {"n_embd", KeyType::integer, "768", "channels (embedding width)"},
    {"dropout", KeyType::real, "0.0", "dropout probability while training"},
    {"bias", KeyType::boolean, "false", "biases in Linear and LayerNorm layers"},
    {"fused_attention", KeyType::boolean, "true", "attention by the fused kernel; false: op by op, as nanoGPT (slower; same losses; not saved in ckpt.bin)"},
    // optimizer
    {"learning_rate", KeyType::real, "6e-4", "peak learning rate"},
    {"max_iters", KeyType::integer, "600000", "optimizer steps in total"},
    {"weight_decay", KeyType::real, "1e-1", "AdamW weight decay (matrices only)"},
    {"beta1", KeyType::real, "0.9", "AdamW beta1"},
    {"beta2", KeyType::real, "0.95", "AdamW beta2"},
    {"grad_clip", KeyType::real, "1.0", "clip the gradient norm to this (0: no clipping)"},
    // learning-rate schedule
    {"decay_lr", KeyType::boolean, "true", "warm up, then cosine-decay the learning rate"},
    {"warmup_iters", KeyType::integer, "2000", "steps of linear warmup"},
    {"lr_decay_iters", KeyType::integer, "600000", "step at which the learning rate reaches min_lr"},
    {"min_lr", KeyType::real, "6e-5", "final learning rate"},
    // system
    {"seed", KeyType::integer, "1337", "seed of the weights, dropout and batches"},
    {"threads", KeyType::integer, "0", "OpenMP threads (0: all cores)"},
    {"dtype", KeyType::text, "float32", "matrix products: float32, or bfloat16 (operands rounded to bfloat16, float32 sums)"},
    {"peak_gflops", KeyType::real, "0", "peak GFLOP/s that MFU is measured against (0: measured at start-up for the dtype in use)"},
};
// clang-format on

struct Preset {
    const char* name;
    const char* help;
    std::vector<std::pair<std::string, std::string>> values;  // key, value; later values win
};

/// The config keys of a model shape (the vocabulary comes from the dataset).
inline std::vector<std::pair<std::string, std::string>> model_keys(const nanogpt::GPTConfig& c) {
    char dropout[32];
    std::snprintf(dropout, sizeof dropout, "%.1f", c.dropout);  // the presets' 0.0 and 0.2
    return {{"block_size", std::to_string(c.block_size)},
            {"n_layer", std::to_string(c.n_layer)},
            {"n_head", std::to_string(c.n_head)},
            {"n_embd", std::to_string(c.n_embd)},
            {"dropout", dropout},
            {"bias", c.bias ? "true" : "false"}};
}

/// nanoGPT's config/train_shakespeare_char.py, and its README's CPU recipe on top of it; the
/// models are the library's GPTConfig::shakespeare_char() and GPTConfig::cpu_small().
inline const std::vector<Preset>& train_presets() {
    static const std::vector<Preset> presets = [] {
        Preset shakespeare{"shakespeare_char",
                           "nanoGPT's config/train_shakespeare_char.py: 6 layers x 6 heads x 384, "
                           "block 256 (a GPU run)",
                           {{"out_dir", "out-shakespeare-char"},
                            {"data_dir", "data/shakespeare_char"},
                            {"eval_interval", "250"},
                            {"eval_iters", "200"},
                            {"log_interval", "10"},
                            {"always_save_checkpoint", "false"},
                            {"gradient_accumulation_steps", "1"},
                            {"batch_size", "64"},
                            {"learning_rate", "1e-3"},
                            {"max_iters", "5000"},
                            {"lr_decay_iters", "5000"},
                            {"min_lr", "1e-4"},
                            {"beta2", "0.99"},
                            {"warmup_iters", "100"}}};
        for (auto& kv : model_keys(nanogpt::GPTConfig::shakespeare_char()))
            shakespeare.values.push_back(kv);
        Preset cpu{"cpu_small",
                   "shakespeare_char with nanoGPT's CPU recipe: 4 layers x 4 heads x 128, block 64 "
                   "(minutes on a laptop)",
                   shakespeare.values};
        for (auto kv : {std::pair<std::string, std::string>{"eval_iters", "20"},
                        {"log_interval", "1"},
                        {"batch_size", "12"},
                        {"max_iters", "2000"},
                        {"lr_decay_iters", "2000"}}) {
            cpu.values.push_back(kv);
        }
        for (auto& kv : model_keys(nanogpt::GPTConfig::cpu_small())) cpu.values.push_back(kv);
        return std::vector<Preset>{shakespeare, cpu};
    }();
    return presets;
}

inline const Preset* find_preset(const std::string& name) {
    for (const Preset& p : train_presets())
        if (name == p.name) return &p;
    return nullptr;
}

/// Key -> value text, type-checked on every set; starts from the table's defaults.
class TrainConfig {
public:
    TrainConfig() {
        for (const ConfigKey& k : kTrainKeys) values_[k.key] = k.default_value;
    }

    /// Sets key from text; `where` ("file.txt:3", "--batch_size") prefixes any error.
    void set(const std::string& key, std::string value, const std::string& where) {
        const ConfigKey* k = find(key);
        if (k == nullptr)
            throw std::invalid_argument(where + ": unknown config key '" + key + "' (see --help)");
        auto bad = [&](const char* what) {
            throw std::invalid_argument(where + ": key '" + key + "': '" + value + "' is not " +
                                        what);
        };
        // Text is taken as it is: quotes in a config file are removed by split_key_value (so
        // nanoGPT-style lines, out_dir = 'out', work), and a shell removes those of a flag.
        if (k->type == KeyType::integer) {
            std::size_t used = 0;
            try {
                (void)std::stoll(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (value.empty() || used != value.size()) bad("an integer");
        } else if (k->type == KeyType::real) {
            std::size_t used = 0;
            double x = 0;
            try {
                x = std::stod(value, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (value.empty() || used != value.size() || !std::isfinite(x)) bad("a finite number");
        } else if (k->type == KeyType::boolean) {
            if (value == "true" || value == "True" || value == "1") {
                value = "true";
            } else if (value == "false" || value == "False" || value == "0") {
                value = "false";
            } else {
                bad("true or false");
            }
        }
        values_[key] = value;
    }

    void apply_preset(const Preset& preset) {
        for (const auto& [key, value] : preset.values)
            set(key, value, std::string("preset ") + preset.name);
    }

    /// Applies every `key = value` line of a config file; errors name file:line.
    void load_file(const std::string& path) {
        std::ifstream in(path);
        if (!in) throw std::invalid_argument("cannot open config file '" + path + "'");
        std::string line, key, value, error;
        for (int number = 1; std::getline(in, line); ++number) {
            const std::string where = path + ":" + std::to_string(number);
            if (!nanogpt::split_key_value(line, key, value, error)) continue;
            if (!error.empty()) throw std::invalid_argument(where + ": " + error);
            set(key, value, where);
        }
    }

    const std::string& text(const std::string& key) const { return values_.at(key); }
    std::int64_t integer(const std::string& key) const { return std::stoll(values_.at(key)); }
    double real(const std::string& key) const { return std::stod(values_.at(key)); }
    bool boolean(const std::string& key) const { return values_.at(key) == "true"; }

    /// The effective configuration as a config file (table order), loadable by load_file.
    std::string to_text() const {
        std::string s;
        for (const ConfigKey& k : kTrainKeys) {
            std::string line = std::string(k.key) + " = " + nanogpt::quote_value(values_.at(k.key));
            line.resize(std::max<std::size_t>(line.size() + 2, 44), ' ');
            s += line + "# " + k.help + "\n";
        }
        return s;
    }

    /// The table of keys in docs/training.md (which embeds exactly this text; a test checks it).
    static std::string markdown_table() {
        std::string s = "| key | default | meaning |\n|---|---|---|\n";
        for (const ConfigKey& k : kTrainKeys) {
            const std::string value =
                *k.default_value != '\0' ? std::string("`") + k.default_value + "`" : "(empty)";
            s += std::string("| `") + k.key + "` | " + value + " | " + k.help + " |\n";
        }
        return s;
    }

private:
    static const ConfigKey* find(const std::string& key) {
        for (const ConfigKey& k : kTrainKeys)
            if (key == k.key) return &k;
        return nullptr;
    }

    std::map<std::string, std::string> values_;
};

}  // namespace examples
