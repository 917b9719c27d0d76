// train_model.hpp — the model a training run starts from: fresh weights (init_from = scratch),
// a checkpoint (resume) or OpenAI's GPT-2 weights (gpt2, gpt2-medium, ...). The checkpoint or the
// weights decide the model's shape, as in nanoGPT; the keys they decide are written back into the
// run's config, so config.txt records the model that runs. Not part of the library; used by
// examples/train.cpp.
#pragma once

#include <algorithm>  // std::copy
#include <cstdio>     // std::printf
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string, std::to_string

#include <nanogpt/checkpoint.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/safetensors.hpp>
#include <nanogpt/token_file.hpp>

#include "train_config.hpp"
#include "train_log.hpp"
#include "train_settings.hpp"

namespace examples {

class ModelStart {
public:
    /// `leader`: this process prints (rank 0).
    ModelStart(Settings& s, TrainConfig& config, const nanogpt::DatasetMeta& meta, bool leader)
        : s_(s), config_(config), meta_(meta), leader_(leader) {}

    /// The model for s.init_from; when resuming, `checkpoint` keeps what was read from
    /// `ckpt_path` (the optimizer state and the training state are restored from it later).
    nanogpt::GPT<float> make(nanogpt::Checkpoint<float>& checkpoint, const std::string& ckpt_path) {
        s_.model.vocab_size = meta_.vocab_size;
        if (s_.init_from.rfind("gpt2", 0) == 0) return load_gpt2();
        if (s_.init_from == "resume") {
            checkpoint = nanogpt::load_checkpoint<float>(ckpt_path);
            // Like nanoGPT, the checkpoint decides the model's shape; say so when the config
            // differs.
            const nanogpt::GPTConfig& c = checkpoint.config;
            adopt("checkpoint's", "n_layer", c.n_layer != s_.model.n_layer,
                  std::to_string(c.n_layer));
            adopt("checkpoint's", "n_head", c.n_head != s_.model.n_head, std::to_string(c.n_head));
            adopt("checkpoint's", "n_embd", c.n_embd != s_.model.n_embd, std::to_string(c.n_embd));
            adopt("checkpoint's", "block_size", c.block_size != s_.model.block_size,
                  std::to_string(c.block_size));
            adopt("checkpoint's", "bias", c.bias != s_.model.bias, c.bias ? "true" : "false");
            adopt("checkpoint's", "dropout", c.dropout != s_.model.dropout,
                  format_number(c.dropout, "%.17g"));
            if (checkpoint.vocabulary != meta_.vocabulary || c.vocab_size != meta_.vocab_size) {
                throw std::runtime_error("resume: the vocabulary in " + s_.data_dir +
                                         "/meta.txt (" + meta_.tokenizer + ", vocab_size " +
                                         std::to_string(meta_.vocab_size) +
                                         ") differs from the checkpoint's (vocab_size " +
                                         std::to_string(c.vocab_size) + "): not the same dataset");
            }
            adopt("checkpoint's", "dtype", c.dtype != s_.model.dtype, nanogpt::dtype_name(c.dtype));
            s_.model = c;
        }
        return nanogpt::GPT<float>(s_.model, s_.seed);
    }

private:
    /// Takes a value for `key` from `source` (the checkpoint, the GPT-2 weights) into the config;
    /// says so when it differs from the config's.
    void adopt(const char* source, const char* key, bool differs, const std::string& value) {
        if (!differs) return;
        if (leader_)
            std::printf("%s: using the %s %s = %s\n", s_.init_from.c_str(), source, key,
                        value.c_str());
        config_.set(key, value, source);
    }

    /// nanoGPT's from_pretrained: the weights decide the model's shape, the config keeps dropout,
    /// and a smaller block_size crops the position embedding (nanoGPT's crop_block_size).
    nanogpt::GPT<float> load_gpt2() {
        const std::string meta_path = s_.data_dir + "/meta.txt";
        if (meta_.tokenizer != "gpt2") {
            throw std::invalid_argument("init_from = " + s_.init_from +
                                        " needs data prepared with --tokenizer=gpt2, but " +
                                        meta_path + " says tokenizer = " + meta_.tokenizer +
                                        " (vocab_size " + std::to_string(meta_.vocab_size) + ")");
        }
        const nanogpt::GPTConfig file = nanogpt::gpt2_config_from_safetensors(s_.weights);
        if (file.vocab_size != meta_.vocab_size) {
            throw std::invalid_argument("weights '" + s_.weights + "' have vocab_size " +
                                        std::to_string(file.vocab_size) + " but " + meta_path +
                                        " says vocab_size " + std::to_string(meta_.vocab_size));
        }
        if (s_.model.block_size > file.block_size) {
            throw std::invalid_argument("key 'block_size': " + std::to_string(s_.model.block_size) +
                                        " is larger than the block_size " +
                                        std::to_string(file.block_size) + " of the weights '" +
                                        s_.weights + "' (it can only be cropped)");
        }
        adopt("weights'", "n_layer", file.n_layer != s_.model.n_layer,
              std::to_string(file.n_layer));
        adopt("weights'", "n_head", file.n_head != s_.model.n_head, std::to_string(file.n_head));
        adopt("weights'", "n_embd", file.n_embd != s_.model.n_embd, std::to_string(file.n_embd));
        adopt("weights'", "bias", file.bias != s_.model.bias, file.bias ? "true" : "false");
        nanogpt::GPTConfig config = file;
        config.block_size = s_.model.block_size;
        config.dropout = s_.model.dropout;
        config.dtype = s_.model.dtype;
        s_.model = config;
        nanogpt::GPT<float> model(s_.model, s_.seed);
        if (config.block_size == file.block_size) {
            nanogpt::load_gpt2_safetensors(model, s_.weights);
        } else {
            nanogpt::GPT<float> full(file, s_.seed);
            nanogpt::load_gpt2_safetensors(full, s_.weights);
            // Same parameters in the same order; wpe (block_size, C) keeps its first rows.
            const auto& to = model.parameters().infos();
            const auto& from = full.parameters().infos();
            for (std::size_t i = 0; i < to.size(); ++i) {
                const float* src = full.parameters().data() + from[i].offset;
                std::copy(src, src + to[i].shape.numel(), model.parameters().data() + to[i].offset);
            }
            if (leader_)
                std::printf("%s: cropped the position embedding from block_size %lld to %lld\n",
                            s_.init_from.c_str(), static_cast<long long>(file.block_size),
                            static_cast<long long>(config.block_size));
        }
        if (leader_) std::printf("%s: loaded %s\n", s_.init_from.c_str(), s_.weights.c_str());
        return model;
    }

    Settings& s_;
    TrainConfig& config_;
    const nanogpt::DatasetMeta& meta_;
    bool leader_;
};

}  // namespace examples
