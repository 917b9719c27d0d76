// train_shakespeare_char — trains a character-level GPT on a text file (tiny Shakespeare by
// default) with nanoGPT's CPU recipe, evaluates, checkpoints, and prints a sample at the end.
//
//   ./build/train_shakespeare_char --data ../shared/data/tinyshakespeare.txt
//
// Every hyper-parameter is an option (--help lists them with their defaults).
#include <algorithm>   // std::min
#include <chrono>      // std::chrono::steady_clock
#include <cmath>       // std::isfinite
#include <cstdio>      // std::printf, std::fflush
#include <cstdlib>     // std::getenv
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::exists, create_directories
#include <iostream>    // std::cout, std::cerr
#include <string>      // std::string

#include <nanogpt.hpp>

#include "args.hpp"

namespace {

struct Options {
    std::string data, out_dir;
    nanogpt::GPTConfig model;
    std::int64_t batch_size, max_iters, eval_interval, eval_iters, log_interval, sample_tokens;
    nanogpt::LRSchedule schedule;
    nanogpt::AdamWConfig adamw;
    double grad_clip;
    std::uint64_t seed;
    int threads;
};

/// --help; the model's defaults are the library's cpu_small preset (nanoGPT's CPU recipe).
std::string help_text() {
    const nanogpt::GPTConfig m = nanogpt::GPTConfig::cpu_small();
    char model[160];
    std::snprintf(model, sizeof model,
                  "Model:  --n_layer %lld  --n_head %lld  --n_embd %lld  --block_size %lld  "
                  "--dropout %.1f  --bias %s\n",
                  static_cast<long long>(m.n_layer), static_cast<long long>(m.n_head),
                  static_cast<long long>(m.n_embd), static_cast<long long>(m.block_size), m.dropout,
                  m.bias ? "true" : "false");
    return std::string(R"(train_shakespeare_char: train a character-level GPT on a text file.

Data:   --data PATH (else $NANOGPT_DATA, else data/tinyshakespeare.txt)   --out_dir out-shakespeare-char
)") + model +
           R"(Train:  --batch_size 12  --max_iters 2000  --learning_rate 1e-3  --min_lr 1e-4  --warmup_iters 100
        --lr_decay_iters (max_iters)  --decay_lr true  --beta1 0.9  --beta2 0.99  --weight_decay 0.1
        --grad_clip 1.0  --seed 1337  --threads (all cores)
Report: --eval_interval 250  --eval_iters 20  --log_interval 10  --sample_tokens 500
The model's defaults are GPTConfig::cpu_small(), nanoGPT's CPU recipe for shakespeare_char.
)";
}

Options parse_options(examples::Args& args) {
    Options o;
    const char* env = std::getenv("NANOGPT_DATA");
    o.data = args.get("data", env != nullptr && *env != '\0' ? env : "data/tinyshakespeare.txt");
    o.out_dir = args.get("out_dir", "out-shakespeare-char");
    const nanogpt::GPTConfig recipe = nanogpt::GPTConfig::cpu_small();
    o.model.n_layer = args.get_int("n_layer", recipe.n_layer);
    o.model.n_head = args.get_int("n_head", recipe.n_head);
    o.model.n_embd = args.get_int("n_embd", recipe.n_embd);
    o.model.block_size = args.get_int("block_size", recipe.block_size);
    o.model.dropout = args.get_double("dropout", recipe.dropout);
    o.model.bias = args.get_bool("bias", recipe.bias);
    o.batch_size = args.get_int("batch_size", 12);
    o.max_iters = args.get_int("max_iters", 2000);
    o.schedule.learning_rate = args.get_double("learning_rate", 1e-3);
    o.schedule.min_lr = args.get_double("min_lr", 1e-4);
    o.schedule.warmup_iters = args.get_int("warmup_iters", 100);
    o.schedule.lr_decay_iters = args.get_int("lr_decay_iters", o.max_iters);
    o.schedule.decay_lr = args.get_bool("decay_lr", true);
    o.adamw.beta1 = args.get_double("beta1", 0.9);
    o.adamw.beta2 = args.get_double("beta2", 0.99);
    o.adamw.weight_decay = args.get_double("weight_decay", 0.1);
    o.grad_clip = args.get_double("grad_clip", 1.0);
    o.seed = static_cast<std::uint64_t>(args.get_int("seed", 1337));
    o.threads = static_cast<int>(args.get_int("threads", 0));
    o.eval_interval = args.get_int("eval_interval", 250);
    o.eval_iters = args.get_int("eval_iters", 20);
    o.log_interval = args.get_int("log_interval", 10);
    o.sample_tokens = args.get_int("sample_tokens", 500);
    args.reject_unknown();
    for (auto [name, value] : {std::pair{"batch_size", o.batch_size},
                               {"eval_interval", o.eval_interval},
                               {"eval_iters", o.eval_iters},
                               {"log_interval", o.log_interval}}) {
        if (value < 1)
            throw std::invalid_argument(std::string("option --") + name + " must be >= 1");
    }
    if (o.max_iters < 0) throw std::invalid_argument("option --max_iters must be >= 0");
    return o;
}

/// Mean loss over eval_iters random batches of one split, in eval mode and without a graph.
double estimate_loss(nanogpt::GPT<float>& model, const std::vector<std::int32_t>& split,
                     const Options& o, nanogpt::Random& rng) {
    nanogpt::NoGradGuard no_grad;
    model.eval();
    double total = 0.0;
    for (std::int64_t k = 0; k < o.eval_iters; ++k) {
        const nanogpt::Batch batch =
            nanogpt::get_batch(split, o.batch_size, o.model.block_size, rng);
        total += model.forward(batch.x, batch.y).loss.item();
    }
    model.train();
    return total / static_cast<double>(o.eval_iters);
}

int run(const Options& o) {
    if (!std::filesystem::exists(o.data)) {
        std::cerr << "error: no training text at '" << o.data << "'.\n"
                  << "Pass --data PATH or set NANOGPT_DATA, or download tiny Shakespeare with\n"
                  << "  scripts/download_shakespeare.sh   (writes data/tinyshakespeare.txt)\n";
        return 1;
    }
    if (o.threads > 0) nanogpt::set_num_threads(o.threads);
    const std::string text = nanogpt::read_text_file(o.data);
    const auto tokenizer = nanogpt::CharTokenizer::from_text(text);
    const auto split = nanogpt::split_train_val(tokenizer.encode(text), 0.9);
    std::printf("data: %s, %zu characters, vocabulary %d, train %zu / val %zu tokens\n",
                o.data.c_str(), text.size(), tokenizer.vocab_size(), split.train.size(),
                split.val.size());

    nanogpt::GPTConfig config = o.model;
    config.vocab_size = tokenizer.vocab_size();
    nanogpt::GPT<float> model(config, o.seed);
    nanogpt::AdamW<float> optimizer(model.parameters(), o.adamw);
    std::printf(
        "model: %lld layers, %lld heads, n_embd %lld, block %lld, %.2fM parameters, %d threads\n",
        static_cast<long long>(config.n_layer), static_cast<long long>(config.n_head),
        static_cast<long long>(config.n_embd), static_cast<long long>(config.block_size),
        static_cast<double>(model.num_parameters()) / 1e6, nanogpt::num_threads());
    std::filesystem::create_directories(o.out_dir);
    const std::string ckpt_path = o.out_dir + "/ckpt.bin";

    nanogpt::Random data_rng(o.seed);
    nanogpt::TrainingState state;
    bool saved = false;
    const double tokens_per_iter = static_cast<double>(o.batch_size * config.block_size);
    const auto start = std::chrono::steady_clock::now();
    nanogpt::PendingCheckpoint pending;
    for (std::int64_t iter = 0; iter <= o.max_iters; ++iter) {
        if (iter % o.eval_interval == 0 || iter == o.max_iters) {
            nanogpt::Random eval_rng(
                nanogpt::splitmix64(o.seed ^ static_cast<std::uint64_t>(iter)));
            const double train_loss = estimate_loss(model, split.train, o, eval_rng);
            const double val_loss = estimate_loss(model, split.val, o, eval_rng);
            std::printf("step %lld: train loss %.4f, val loss %.4f\n", static_cast<long long>(iter),
                        train_loss, val_loss);
            // Keep the best model by val loss, as nanoGPT does; the final step always leaves a
            // checkpoint.
            if ((val_loss < state.best_val_loss && iter > 0) || (iter == o.max_iters && !saved)) {
                state.best_val_loss = std::min(state.best_val_loss, val_loss);
                state.iter = iter;
                state.data_rng = data_rng.state();
                // Written only once the next step has shown the weights are sound (the
                // divergence rule, docs/formats.md).
                pending.stage(ckpt_path, model, &optimizer, tokenizer.symbols(), state);
                saved = true;
            }
        }
        if (iter == o.max_iters) break;
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = o.schedule.at(iter);
        const nanogpt::Batch batch =
            nanogpt::get_batch(split.train, o.batch_size, config.block_size, data_rng);
        auto [logits, loss] = model.forward(batch.x, batch.y);
        const double loss_value = loss.item();
        if (!std::isfinite(loss_value)) {
            std::fprintf(
                stderr,
                "error: loss is %f at step %lld; stopping (last good checkpoint kept at %s)\n",
                loss_value, static_cast<long long>(iter), ckpt_path.c_str());
            return 1;
        }
        model.zero_grad();
        loss.backward();
        // Clipping folded into the update: same numbers as clip_grad_norm, one pass fewer.
        const double norm = nanogpt::grad_norm(model.parameters());
        if (!std::isfinite(norm) || !optimizer.step(lr, nanogpt::clip_scale(norm, o.grad_clip))) {
            std::fprintf(stderr,
                         "error: the gradient norm or an updated weight is not finite at step "
                         "%lld; stopping (last good checkpoint kept at %s)\n",
                         static_cast<long long>(iter), ckpt_path.c_str());
            return 1;
        }
        if (pending.commit()) std::printf("saved checkpoint to %s\n", ckpt_path.c_str());
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        if (iter % o.log_interval == 0) {
            std::printf("iter %lld: loss %.4f, lr %.2e, %.1f ms/iter, %.0f tokens/s\n",
                        static_cast<long long>(iter), loss_value, lr, ms,
                        tokens_per_iter / (ms / 1000.0));
            std::fflush(stdout);
        }
    }
    if (pending.pending()) {  // the last evaluation's: one forward and backward pass stands in
        nanogpt::Random probe_rng = data_rng;  // for the step that would follow it
        const nanogpt::Batch batch =
            nanogpt::get_batch(split.train, o.batch_size, config.block_size, probe_rng);
        model.zero_grad();
        auto [logits, loss] = model.forward(batch.x, batch.y);
        bool finite = std::isfinite(loss.item());
        if (finite) {
            loss.backward();
            finite = std::isfinite(nanogpt::grad_norm(model.parameters()));
        }
        if (!finite) {
            std::fprintf(stderr,
                         "error: the final weights give a non-finite loss or gradient; not saved "
                         "(last good checkpoint kept at %s)\n",
                         ckpt_path.c_str());
            return 1;
        }
        pending.commit();
        std::printf("saved checkpoint to %s\n", ckpt_path.c_str());
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("done: %lld iterations in %.1f s, best val loss %.4f\n",
                static_cast<long long>(o.max_iters), seconds, state.best_val_loss);
    if (o.sample_tokens > 0) {
        nanogpt::Random sample_rng(o.seed);
        nanogpt::SamplingOptions sampling;
        sampling.temperature = 0.8;
        sampling.top_k = 200;
        std::printf("---- sample ----\n");
        model.generate(
            tokenizer.encode("\n"), o.sample_tokens, sampling, sample_rng,
            [&](std::int32_t id) { std::cout << tokenizer.decode_one(id) << std::flush; });
        std::printf("\n----------------\n");
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string help = help_text();
    return examples::run_main(argc, argv, help.c_str(),
                              [](examples::Args& args) { return run(parse_options(args)); });
}
