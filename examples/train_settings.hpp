// train_settings.hpp — from train's command line to the run's checked settings: presets,
// config files and --key=value overrides applied in order to a TrainConfig (train_config.hpp),
// then read into typed Settings whose errors name the key. Not part of the library; used by
// examples/train.cpp.
#pragma once

#include <cstdint>     // std::int64_t, std::uint64_t
#include <cstdio>      // std::printf
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::exists
#include <iostream>    // std::cout
#include <stdexcept>   // std::invalid_argument
#include <string>      // std::string, std::stoll
#include <utility>     // std::pair
#include <vector>      // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/optim.hpp>

#include "train_config.hpp"

namespace examples {

// ---- command line ----

inline constexpr const char* kUsage =
    R"(train: train a GPT on a dataset written by prepare (nanoGPT's train.py).

usage: train [PRESET | CONFIG_FILE]... [--config=FILE] [--preset=NAME] [--key=value]...

Settings apply in this order: the defaults below, then presets and config files in the order
given, then every --key=value. A config file holds `key = value` lines; '#' starts a comment.
Other options: --help, --print_config_table (the keys as a Markdown table),
--stop_after=N (testing: behave as if Ctrl-C arrived after N steps).
)";

struct CommandLine {
    std::vector<std::string> sources;  // preset names and config files, in order
    std::vector<std::pair<std::string, std::string>> overrides;
    bool help = false, print_table = false;
    std::int64_t stop_after = -1;
};

inline CommandLine parse_command_line(int argc, char** argv) {
    CommandLine cl;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            cl.help = true;
        } else if (a == "--print_config_table") {
            cl.print_table = true;
        } else if (a.rfind("--", 0) != 0) {
            cl.sources.push_back(a);
        } else {
            const auto eq = a.find('=');
            if (eq == std::string::npos)
                throw std::invalid_argument("option " + a + " needs a value: " + a + "=VALUE");
            const std::string key = a.substr(2, eq - 2), value = a.substr(eq + 1);
            if (key == "config" || key == "preset") {
                if (key == "preset" && find_preset(value) == nullptr) {
                    throw std::invalid_argument("unknown preset '" + value + "' (see --help)");
                }
                cl.sources.push_back(value);
            } else if (key == "stop_after") {
                std::size_t used = 0;
                try {
                    cl.stop_after = std::stoll(value, &used);
                } catch (const std::exception&) {
                    used = 0;
                }
                if (used == 0 || used != value.size())
                    throw std::invalid_argument("--stop_after: '" + value + "' is not an integer");
            } else {
                cl.overrides.emplace_back(key, value);
            }
        }
    }
    return cl;
}

inline TrainConfig build_config(const CommandLine& cl) {
    TrainConfig config;
    for (const std::string& source : cl.sources) {
        if (const Preset* preset = find_preset(source)) {
            config.apply_preset(*preset);
        } else if (std::filesystem::exists(source)) {
            config.load_file(source);
        } else {
            std::string names;
            for (const Preset& p : train_presets())
                names += std::string(names.empty() ? "" : ", ") + p.name;
            throw std::invalid_argument("'" + source + "' is neither a config file nor a preset (" +
                                        names + ")");
        }
    }
    for (const auto& [key, value] : cl.overrides) config.set(key, value, "--" + key);
    return config;
}

inline void print_help() {
    std::cout << kUsage << "\nPresets:\n";
    for (const Preset& p : train_presets())
        std::printf("  %-18s %s\n", p.name, p.help);
    std::cout << "\nKeys (nanoGPT's names and defaults):\n";
    for (const ConfigKey& k : kTrainKeys) {
        std::printf("  --%-28s %-18s %s\n", k.key, k.default_value, k.help);
    }
}

// ---- the run's settings, typed and checked ----

struct Settings {
    std::string out_dir, data_dir, init_from, weights;
    std::int64_t eval_interval, log_interval, eval_iters, grad_accum, batch_size, max_iters;
    bool eval_only, always_save;
    bool fused_attention;  // a run-time choice, not part of the model or its checkpoint
    nanogpt::GPTConfig model;
    nanogpt::AdamWConfig adamw;
    nanogpt::LRSchedule schedule;
    double grad_clip, peak_gflops;
    std::uint64_t seed;
    int threads;
};

inline Settings read_settings(const TrainConfig& c) {
    Settings s;
    s.out_dir = c.text("out_dir");
    s.data_dir = c.text("data_dir");
    s.init_from = c.text("init_from");
    s.weights = c.text("weights");
    if (s.init_from.rfind("gpt2", 0) == 0) {
        if (s.init_from != "gpt2" && s.init_from != "gpt2-medium" && s.init_from != "gpt2-large" &&
            s.init_from != "gpt2-xl") {
            throw std::invalid_argument("key 'init_from': '" + s.init_from +
                                        "' is not gpt2, gpt2-medium, gpt2-large or gpt2-xl");
        }
        if (s.weights.empty()) s.weights = "data/gpt2/" + s.init_from + ".safetensors";
    } else if (s.init_from != "scratch" && s.init_from != "resume") {
        throw std::invalid_argument("key 'init_from': '" + s.init_from +
                                    "' is not scratch, resume or gpt2");
    }  // scratch and resume ignore `weights`: a resumed fine-tuning run's config.txt still names
       // them
    auto at_least = [&](const char* key, std::int64_t min) {
        const std::int64_t v = c.integer(key);
        if (v < min) {
            throw std::invalid_argument(std::string("key '") + key + "' must be >= " +
                                        std::to_string(min) + ", got " + std::to_string(v));
        }
        return v;
    };
    s.eval_interval = at_least("eval_interval", 1);
    s.log_interval = at_least("log_interval", 1);
    s.eval_iters = at_least("eval_iters", 1);
    s.grad_accum = at_least("gradient_accumulation_steps", 1);
    s.batch_size = at_least("batch_size", 1);
    s.max_iters = at_least("max_iters", 0);
    s.threads = static_cast<int>(at_least("threads", 0));
    s.eval_only = c.boolean("eval_only");
    s.always_save = c.boolean("always_save_checkpoint");
    s.model.block_size = c.integer("block_size");
    s.model.n_layer = c.integer("n_layer");
    s.model.n_head = c.integer("n_head");
    s.model.n_embd = c.integer("n_embd");
    s.model.dropout = c.real("dropout");
    s.model.bias = c.boolean("bias");
    s.model.dtype = nanogpt::parse_dtype(c.text("dtype"), "key 'dtype'");
    s.fused_attention = c.boolean("fused_attention");
    s.adamw.beta1 = c.real("beta1");
    s.adamw.beta2 = c.real("beta2");
    s.adamw.weight_decay = c.real("weight_decay");
    s.adamw.validate();
    s.schedule = {c.real("learning_rate"), c.real("min_lr"), c.integer("warmup_iters"),
                  c.integer("lr_decay_iters"), c.boolean("decay_lr")};
    s.grad_clip = c.real("grad_clip");
    s.peak_gflops = c.real("peak_gflops");
    if (!(s.peak_gflops >= 0)) throw std::invalid_argument("key 'peak_gflops' must be >= 0");
    s.seed = static_cast<std::uint64_t>(c.integer("seed"));
    return s;
}

}  // namespace examples
