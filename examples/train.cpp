// train — nanoGPT's train.py as a program: trains a GPT on a dataset written by `prepare`,
// evaluates, checkpoints, logs, and resumes exactly where it stopped.
//
//   ./build/prepare --input=../shared/data/tinyshakespeare.txt --out_dir=data/shakespeare_char
//   ./build/train cpu_small                  # a preset; or a config file; then --key=value
//   overrides
//   ./build/train cpu_small --init_from=resume --max_iters=3000
//   ./build/train --init_from=gpt2 --data_dir=data/shakespeare --block_size=256   # fine-tune GPT-2
//
// Configuration: the table of keys in train_config.hpp (./build/train --help lists it).
// Outputs in out_dir: ckpt.bin, config.txt, log.csv, loss.svg (see train_log.hpp).
//
// Built as train_mpi (cmake -DNANOGPT_WITH_MPI=ON), it trains data-parallel:
//   mpirun -np 2 ./build/train_mpi cpu_small --threads=1
// Each rank takes its rows of the batch a single process would draw and the gradients are
// averaged, so N ranks follow the single-process run up to float rounding (class Communicator).
#include <algorithm>   // std::max, std::copy
#include <chrono>      // std::chrono::steady_clock
#include <cmath>       // std::isfinite
#include <csignal>     // std::signal, std::sig_atomic_t, SIGINT, SIGTERM
#include <cstdio>      // std::printf, std::fflush, std::fputs
#include <cstdlib>     // std::getenv
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::create_directories, exists
#include <fstream>     // std::ofstream
#include <iostream>    // std::cout, std::cerr
#include <memory>      // std::unique_ptr, std::make_unique
#include <string>      // std::string
#include <utility>     // std::move, std::pair
#include <vector>      // std::vector

#include <nanogpt.hpp>
#include <nanogpt/token_file.hpp>
#ifdef NANOGPT_USE_MPI
#include <nanogpt/distributed.hpp>
#endif

#include "train_config.hpp"
#include "train_log.hpp"

#if __has_include(<unistd.h>)
#include <unistd.h>  // isatty, STDOUT_FILENO
#define NANOGPT_TRAIN_HAS_ISATTY 1
#endif

namespace {

// ---- stopping: Ctrl-C (SIGINT) and SIGTERM set a flag the loop checks between steps ----

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
    g_stop_signal = sig;
    std::signal(sig, SIG_DFL);  // a second Ctrl-C ends the program at once
}

bool stdout_is_terminal() {
    // NANOGPT_PROGRESS=plain forces log lines, e.g. under mpirun, whose ranks write to a pty.
    const char* progress = std::getenv("NANOGPT_PROGRESS");
    if (progress != nullptr && std::string(progress) == "plain") return false;
#ifdef NANOGPT_TRAIN_HAS_ISATTY
    return isatty(STDOUT_FILENO) != 0;
#else
    return false;
#endif
}

// ---- the processes training together ----
// One process (train) or an MPI world (train_mpi). Every rank draws the same global batch from
// the shared seed and keeps rows [rank*B/N, (rank+1)*B/N); its loss is the mean over its rows,
// so the mean of the ranks' gradients is the gradient of the global batch's mean loss. Only rank
// 0 writes files and prints. Every call below is collective: all ranks make it, in the same order.

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const { return 0; }
    virtual int world_size() const { return 1; }
    virtual void average_gradients(nanogpt::Parameters<float>&) {}
    virtual double average(double value) { return value; }
    /// True on every rank when any rank passes true (failures, stop requests).
    virtual bool any(bool local) { return local; }
    /// Ends every rank after an error the others cannot learn of; one process just returns.
    virtual void abort_others() {}
};

#ifdef NANOGPT_USE_MPI
class MpiCommunicator final : public Communicator {
public:
    MpiCommunicator(int& argc, char**& argv) : session_(argc, argv) {}
    int rank() const override { return session_.rank(); }
    int world_size() const override { return session_.world_size(); }
    void average_gradients(nanogpt::Parameters<float>& params) override {
        nanogpt::allreduce_mean_gradients(params);
    }
    double average(double value) override { return nanogpt::allreduce_mean(value); }
    bool any(bool local) override { return nanogpt::any_rank_failed(local); }
    void abort_others() override {
        if (session_.world_size() > 1) session_.abort(1);
    }

private:
    nanogpt::MpiSession session_;
};
#endif

/// This rank's rows of a global batch: [rank*B/N, (rank+1)*B/N).
nanogpt::Batch rank_rows(const nanogpt::Batch& global, const Communicator& comm) {
    if (comm.world_size() == 1) return global;
    const std::int64_t B = global.x.shape()[0], T = global.x.shape()[1];
    const std::int64_t rows = B / comm.world_size(), first = comm.rank() * rows;
    nanogpt::Batch mine{nanogpt::Tensor<std::int32_t>(nanogpt::Shape{rows, T}),   // (B/N, T)
                        nanogpt::Tensor<std::int32_t>(nanogpt::Shape{rows, T})};  // (B/N, T)
    std::copy(global.x.data() + first * T, global.x.data() + (first + rows) * T, mine.x.data());
    std::copy(global.y.data() + first * T, global.y.data() + (first + rows) * T, mine.y.data());
    return mine;
}

// ---- command line ----

const char* kUsage = R"(train: train a GPT on a dataset written by prepare (nanoGPT's train.py).

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

CommandLine parse_command_line(int argc, char** argv) {
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
                if (key == "preset" && examples::find_preset(value) == nullptr) {
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

examples::TrainConfig build_config(const CommandLine& cl) {
    examples::TrainConfig config;
    for (const std::string& source : cl.sources) {
        if (const examples::Preset* preset = examples::find_preset(source)) {
            config.apply_preset(*preset);
        } else if (std::filesystem::exists(source)) {
            config.load_file(source);
        } else {
            std::string names;
            for (const examples::Preset& p : examples::train_presets())
                names += std::string(names.empty() ? "" : ", ") + p.name;
            throw std::invalid_argument("'" + source + "' is neither a config file nor a preset (" +
                                        names + ")");
        }
    }
    for (const auto& [key, value] : cl.overrides) config.set(key, value, "--" + key);
    return config;
}

void print_help() {
    std::cout << kUsage << "\nPresets:\n";
    for (const examples::Preset& p : examples::train_presets())
        std::printf("  %-18s %s\n", p.name, p.help);
    std::cout << "\nKeys (nanoGPT's names and defaults):\n";
    for (const examples::ConfigKey& k : examples::kTrainKeys) {
        std::printf("  --%-28s %-18s %s\n", k.key, k.default_value, k.help);
    }
}

// ---- the run's settings, typed and checked ----

struct Settings {
    std::string out_dir, data_dir, init_from, weights;
    std::int64_t eval_interval, log_interval, eval_iters, grad_accum, batch_size, max_iters;
    bool eval_only, always_save;
    nanogpt::GPTConfig model;
    nanogpt::AdamWConfig adamw;
    nanogpt::LRSchedule schedule;
    double grad_clip, peak_gflops;
    std::uint64_t seed;
    int threads;
};

Settings read_settings(const examples::TrainConfig& c) {
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
    s.adamw.beta1 = c.real("beta1");
    s.adamw.beta2 = c.real("beta2");
    s.adamw.weight_decay = c.real("weight_decay");
    s.adamw.validate();
    s.schedule = {c.real("learning_rate"), c.real("min_lr"), c.integer("warmup_iters"),
                  c.integer("lr_decay_iters"), c.boolean("decay_lr")};
    s.grad_clip = c.real("grad_clip");
    s.peak_gflops = c.real("peak_gflops");
    if (!(s.peak_gflops > 0)) throw std::invalid_argument("key 'peak_gflops' must be > 0");
    s.seed = static_cast<std::uint64_t>(c.integer("seed"));
    return s;
}

// ---- measuring ----

/// nanoGPT's estimate_mfu: 6N flops per token for the matmuls with weights (N without the
/// position embedding), 12 L H Q T for attention, against the machine's peak.
double flops_per_token(const nanogpt::GPT<float>& model) {
    const nanogpt::GPTConfig& c = model.config();
    return 6.0 * static_cast<double>(model.num_parameters(true)) +
           12.0 * static_cast<double>(c.n_layer * c.n_head * (c.n_embd / c.n_head) * c.block_size);
}

std::string duration_text(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    char buffer[32];
    if (s >= 3600) {
        std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", s / 3600, s / 60 % 60);
    } else {
        std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
    }
    return buffer;
}

/// Mean loss over eval_iters batches of one split, in eval mode; `rng` is derived from the seed
/// and the step, so evaluating never moves the training sampler. With several ranks each
/// evaluates its rows of the same batches and the means are averaged: the single-process value.
double estimate_loss(nanogpt::GPT<float>& model, const nanogpt::TokenFile& data, const Settings& s,
                     nanogpt::Random& rng, Communicator& comm) {
    nanogpt::NoGradGuard no_grad;
    model.eval();
    double total = 0.0;
    for (std::int64_t k = 0; k < s.eval_iters; ++k) {
        const nanogpt::Batch batch = rank_rows(
            nanogpt::get_batch(data.tokens(), s.batch_size, s.model.block_size, rng), comm);
        total += model.forward(batch.x, batch.y).loss.item();
    }
    model.train();
    return comm.average(total / static_cast<double>(s.eval_iters));
}

// ---- the run ----

class Trainer {
public:
    Trainer(examples::TrainConfig config, const Settings& s, std::int64_t stop_after,
            Communicator& comm)
        : comm_(comm),
          config_(std::move(config)),
          s_(s),
          stop_after_(stop_after),
          meta_(nanogpt::read_dataset_meta(s.data_dir + "/meta.txt")),
          vocabulary_(meta_.tokenizer == "char" ? meta_.char_tokenizer().symbols()
                                                : std::vector<std::string>{}),
          train_(s.data_dir + "/train.bin"),
          val_(s.data_dir + "/val.bin"),
          ckpt_path_(s.out_dir + "/ckpt.bin"),
          model_(make_model()),
          optimizer_(model_.parameters(), s_.adamw),
          terminal_(stdout_is_terminal()) {
        (void)model_.config().step_elements(s_.batch_size);  // a clear error before any batch
        for (const nanogpt::TokenFile* f : {&train_, &val_}) {
            f->check_vocabulary(meta_.vocab_size);
            f->check_length(s_.model.block_size);
        }
        data_rng_.reseed(s_.seed ^
                         0x5eedda7aULL);  // batches: a stream apart from the weights' seed
        if (s_.init_from == "resume") resume();
    }

    int run();

private:
    /// Takes a value for `key` from `source` (the checkpoint, the GPT-2 weights) into the config,
    /// so config.txt records the model that runs; says so when it differs from the config's.
    void adopt(const char* source, const char* key, bool differs, const std::string& value) {
        if (!differs) return;
        if (leader())
            std::printf("%s: using the %s %s = %s\n", s_.init_from.c_str(), source, key,
                        value.c_str());
        config_.set(key, value, source);
    }

    nanogpt::GPT<float> make_model() {
        s_.model.vocab_size = meta_.vocab_size;
        if (s_.init_from.rfind("gpt2", 0) == 0) return load_gpt2();
        if (s_.init_from == "resume") {
            checkpoint_ = nanogpt::load_checkpoint<float>(ckpt_path_);
            // Like nanoGPT, the checkpoint decides the model's shape; say so when the config
            // differs.
            const nanogpt::GPTConfig& c = checkpoint_.config;
            adopt("checkpoint's", "n_layer", c.n_layer != s_.model.n_layer,
                  std::to_string(c.n_layer));
            adopt("checkpoint's", "n_head", c.n_head != s_.model.n_head, std::to_string(c.n_head));
            adopt("checkpoint's", "n_embd", c.n_embd != s_.model.n_embd, std::to_string(c.n_embd));
            adopt("checkpoint's", "block_size", c.block_size != s_.model.block_size,
                  std::to_string(c.block_size));
            adopt("checkpoint's", "bias", c.bias != s_.model.bias, c.bias ? "true" : "false");
            adopt("checkpoint's", "dropout", c.dropout != s_.model.dropout,
                  examples::format_number(c.dropout, "%.17g"));
            if (checkpoint_.vocabulary != meta_.vocabulary || c.vocab_size != meta_.vocab_size) {
                throw std::runtime_error("resume: the vocabulary in " + s_.data_dir +
                                         "/meta.txt (" + meta_.tokenizer + ", vocab_size " +
                                         std::to_string(meta_.vocab_size) +
                                         ") differs from the checkpoint's (vocab_size " +
                                         std::to_string(c.vocab_size) + "): not the same dataset");
            }
            s_.model = c;
        }
        return nanogpt::GPT<float>(s_.model, s_.seed);
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
            if (leader())
                std::printf("%s: cropped the position embedding from block_size %lld to %lld\n",
                            s_.init_from.c_str(), static_cast<long long>(file.block_size),
                            static_cast<long long>(config.block_size));
        }
        if (leader()) std::printf("%s: loaded %s\n", s_.init_from.c_str(), s_.weights.c_str());
        return model;
    }

    void resume() {
        checkpoint_.restore(model_, &optimizer_);
        if (!checkpoint_.has_optimizer)
            throw std::runtime_error("resume: " + ckpt_path_ + " has no optimizer state");
        state_ = checkpoint_.training;
        data_rng_.set_state(state_.data_rng);
        checkpoint_ = {};  // free the copy of the weights
    }

    bool leader() const { return comm_.rank() == 0; }

    /// Rank 0's own work (files, printing). With several ranks an error in it is kept for the next
    /// step boundary, where every rank learns of it and stops (train_step); alone it throws now.
    template <class Work>
    void on_leader(Work&& work) {
        if (!leader()) return;
        if (comm_.world_size() == 1) return work();
        if (!leader_error_.empty()) return;
        try {
            work();
        } catch (const std::exception& e) {
            leader_error_ = e.what();
        }
    }

    int report_leader_error() const {
        std::fprintf(stderr, "error: %s (every rank stops)\n", leader_error_.c_str());
        return 1;
    }

    void print_line(const std::string& line) {
        if (!leader()) return;
        if (terminal_) std::fputs("\r\x1b[K", stdout);  // clear the progress bar first
        std::fputs((line + "\n").c_str(), stdout);
        std::fflush(stdout);
    }

    /// Every rank holds the same weights, optimizer state and sampler (each draws the whole
    /// global batch), so rank 0's checkpoint resumes with any number of ranks.
    void save(std::int64_t iter) {
        state_.iter = iter;
        state_.data_rng = data_rng_.state();
        on_leader([&] {
            nanogpt::save_checkpoint(ckpt_path_, model_, &optimizer_, vocabulary_, state_);
        });
    }

    void log(const examples::LogRow& row) {
        rows_.push_back(row);
        on_leader([&] { log_file_ << examples::to_csv(row) << std::flush; });
    }

    void open_log(std::int64_t start_iter);
    void evaluate(std::int64_t iter);
    double step(double lr);
    void report_step(std::int64_t iter, double loss, double lr, double ms);
    void print_run(const std::string& config_text);

    Communicator& comm_;
    std::string leader_error_;  // rank 0's error, reported at the next step boundary
    double allreduce_ms_ = 0;
    examples::TrainConfig config_;
    Settings s_;
    std::int64_t stop_after_;
    nanogpt::DatasetMeta meta_;
    std::vector<std::string> vocabulary_;  // char: the symbols saved in checkpoints; gpt2: none
    nanogpt::TokenFile train_, val_;
    std::string ckpt_path_;
    nanogpt::Checkpoint<float> checkpoint_;  // only while resuming
    nanogpt::GPT<float> model_;
    nanogpt::AdamW<float> optimizer_;
    bool terminal_;
    nanogpt::Random data_rng_;
    nanogpt::TrainingState state_;
    std::vector<examples::LogRow> rows_;
    std::ofstream log_file_;
    double ema_ms_ = 0;
    std::chrono::steady_clock::time_point last_draw_{};
};

void Trainer::open_log(std::int64_t start_iter) {
    if (!leader()) return;
    const std::string path = s_.out_dir + "/log.csv";
    std::string text = examples::kLogHeader;
    if (s_.init_from == "resume") {
        for (const examples::LogRow& r : examples::read_log(path)) {
            // Rows after the checkpoint are redone: train rows count steps done (step k ends
            // before the checkpoint at k), eval rows happen before the step they name.
            if (r.step > start_iter || (r.kind == "eval" && r.step == start_iter)) continue;
            rows_.push_back(r);
            text += examples::to_csv(r);
        }
    }
    nanogpt::write_file_atomically(path, text, "train");
    log_file_.open(path, std::ios::app);
    if (!log_file_) throw std::runtime_error("cannot open '" + path + "' for appending");
}

void Trainer::evaluate(std::int64_t iter) {
    const auto t0 = std::chrono::steady_clock::now();
    nanogpt::Random eval_rng(
        nanogpt::splitmix64(s_.seed ^ nanogpt::splitmix64(static_cast<std::uint64_t>(iter))));
    const double train_loss = estimate_loss(model_, train_, s_, eval_rng, comm_);
    const double val_loss = estimate_loss(model_, val_, s_, eval_rng, comm_);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char line[160];
    std::snprintf(line, sizeof line, "step %lld: train loss %.4f, val loss %.4f (eval %.1f s)",
                  static_cast<long long>(iter), train_loss, val_loss, ms / 1000);
    print_line(line);
    log({"eval", iter, train_loss, val_loss, s_.schedule.at(iter), ms, 0, 0});
    on_leader([&] {
        const std::string svg = examples::loss_svg(rows_, s_.max_iters);
        nanogpt::write_file_atomically(s_.out_dir + "/loss.svg", svg, "train");
    });
    const bool improved = val_loss < state_.best_val_loss;
    if (improved) state_.best_val_loss = val_loss;
    if ((improved || s_.always_save) && iter > 0 && !s_.eval_only) {
        save(iter);
        print_line("saved checkpoint to " + ckpt_path_);
    }
}

/// One optimizer step over gradient_accumulation_steps micro-batches; returns their mean loss,
/// or a non-finite value (and leaves the weights untouched) when the loss or gradient blew up.
/// With several ranks: a step boundary where all agree to stop when any rank failed, then one
/// gradient allreduce; every rank then clips the same (global) gradient and steps alike.
double Trainer::step(double lr) {
    model_.zero_grad();
    double total = 0.0;
    for (std::int64_t micro = 0; micro < s_.grad_accum; ++micro) {
        const nanogpt::Batch batch = rank_rows(
            nanogpt::get_batch(train_.tokens(), s_.batch_size, s_.model.block_size, data_rng_),
            comm_);
        auto [logits, loss] = model_.forward(batch.x, batch.y);
        const double value = loss.item();
        total += value;
        if (!std::isfinite(value)) break;
        // The gradient of the mean over all micro-batches: each contributes 1/steps of its own.
        if (s_.grad_accum > 1)
            loss = nanogpt::scale(loss, 1.0f / static_cast<float>(s_.grad_accum));
        loss.backward();
    }
    if (comm_.world_size() > 1) {
        if (comm_.any(!std::isfinite(total) || !leader_error_.empty()))
            return std::isfinite(total) ? std::nan("") : total;  // this rank or another failed
        const auto t0 = std::chrono::steady_clock::now();
        comm_.average_gradients(model_.parameters());
        allreduce_ms_ =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
    } else if (!std::isfinite(total)) {
        return total;
    }
    const double norm = nanogpt::grad_norm(model_.parameters());
    if (!std::isfinite(norm)) return norm;
    optimizer_.step(lr, nanogpt::clip_scale(norm, s_.grad_clip));  // clipping inside the update
    return comm_.average(total / static_cast<double>(s_.grad_accum));
}

void Trainer::report_step(std::int64_t iter, double loss, double lr, double ms) {
    const double tokens = static_cast<double>(s_.batch_size * s_.model.block_size * s_.grad_accum);
    ema_ms_ = ema_ms_ == 0 ? ms : 0.9 * ema_ms_ + 0.1 * ms;
    const double tokens_per_s = tokens / (ms / 1000);
    const double mfu = flops_per_token(model_) * tokens / (ms / 1000) / (s_.peak_gflops * 1e9);
    const std::int64_t done = iter + 1;
    if (done % s_.log_interval == 0)
        log({"train", done, loss, std::nan(""), lr, ms, tokens_per_s, mfu});
    if (!leader()) return;
    char line[256];
    if (terminal_) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_draw_ < std::chrono::milliseconds(100) && done < s_.max_iters) return;
        last_draw_ = now;
        const int width = 24;
        const auto filled =
            static_cast<int>(width * done / std::max<std::int64_t>(s_.max_iters, 1));
        const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                                std::string(static_cast<std::size_t>(width - filled), '.');
        std::snprintf(
            line, sizeof line,
            "\r[%s] %lld/%lld loss %.4f lr %.2e %.1f ms/it %.1fk tok/s mfu %.1f%% eta %s\x1b[K",
            bar.c_str(), static_cast<long long>(done), static_cast<long long>(s_.max_iters), loss,
            lr, ema_ms_, tokens_per_s / 1000, 100 * mfu,
            duration_text(static_cast<double>(s_.max_iters - done) * ema_ms_ / 1000).c_str());
        std::fputs(line, stdout);
        std::fflush(stdout);
    } else if (done % s_.log_interval == 0) {
        std::snprintf(line, sizeof line,
                      "step %lld/%lld: loss %.4f, lr %.2e, %.1f ms/it, %.1fk tok/s, mfu %.2f%%",
                      static_cast<long long>(done), static_cast<long long>(s_.max_iters), loss, lr,
                      ms, tokens_per_s / 1000, 100 * mfu);
        std::string text = line;
        if (comm_.world_size() > 1) {
            std::snprintf(line, sizeof line, ", allreduce %.1f ms", allreduce_ms_);
            text += line;
        }
        print_line(text);
    }
}

int Trainer::run() {
    const std::string config_text = config_.to_text();
    on_leader([&] {
        std::filesystem::create_directories(s_.out_dir);
        nanogpt::write_file_atomically(s_.out_dir + "/config.txt", config_text, "train");
    });
    if (leader()) print_run(config_text);
    std::int64_t iter = state_.iter;
    on_leader([&] { open_log(iter); });
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t first = iter;
    for (;;) {
        if (iter % s_.eval_interval == 0 || iter >= s_.max_iters) evaluate(iter);
        if (iter >= s_.max_iters || s_.eval_only) break;
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = s_.schedule.at(iter);
        const double loss = step(lr);
        if (!std::isfinite(loss)) {
            if (terminal_ && leader()) std::fputs("\n", stdout);
            std::fflush(stdout);
            if (!leader_error_.empty()) return report_leader_error();
            if (comm_.world_size() == 1) {
                std::fprintf(
                    stderr,
                    "error: training diverged at step %lld (the loss or the gradient norm is %f); "
                    "stopping, the last good checkpoint stays in %s\n",
                    static_cast<long long>(iter), loss, ckpt_path_.c_str());
            } else {
                std::fprintf(stderr,
                             "error: rank %d stops at step %lld: the loss or the gradient norm is "
                             "%f here, or another rank failed (see its error); the last good "
                             "checkpoint stays in %s\n",
                             comm_.rank(), static_cast<long long>(iter), loss, ckpt_path_.c_str());
            }
            return 2;
        }
        report_step(iter, loss, lr,
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count());
        ++iter;
        if (iter - first == stop_after_) g_stop_signal = SIGINT;
        // mpirun forwards Ctrl-C to every rank, but not at the same step: agree before stopping.
        const bool stop =
            comm_.world_size() > 1 ? comm_.any(g_stop_signal != 0) : g_stop_signal != 0;
        if (stop) {
            const int signal = g_stop_signal != 0 ? static_cast<int>(g_stop_signal) : SIGINT;
            save(iter);
            print_line(std::string(signal == SIGTERM ? "SIGTERM" : "interrupted") + " after step " +
                       std::to_string(iter) + ": saved checkpoint to " + ckpt_path_ +
                       "; continue with --init_from=resume");
            if (!leader_error_.empty()) return report_leader_error();
            return 0;
        }
    }
    if (!leader_error_.empty()) return report_leader_error();
    if (!leader()) return 0;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("done: %lld steps in %s (%.1f s), best val loss %.4f\n",
                static_cast<long long>(iter - first), duration_text(seconds).c_str(), seconds,
                state_.best_val_loss);
    return 0;
}

void Trainer::print_run(const std::string& config_text) {
    std::printf("configuration (saved to %s/config.txt):\n%s", s_.out_dir.c_str(),
                config_text.c_str());
    std::printf("data: %s: train %lld tokens, val %lld tokens, vocab_size %lld (%s)\n",
                s_.data_dir.c_str(), static_cast<long long>(train_.size()),
                static_cast<long long>(val_.size()), static_cast<long long>(meta_.vocab_size),
                train_.memory_mapped() ? "memory-mapped" : "in memory");
    std::printf("model: %.2fM parameters, %d threads, %.0f tokens per step\n",
                static_cast<double>(model_.num_parameters()) / 1e6, nanogpt::detail::max_threads(),
                static_cast<double>(s_.batch_size * s_.model.block_size * s_.grad_accum));
    if (comm_.world_size() > 1)
        std::printf(
            "data-parallel: %d MPI ranks, %lld rows of each batch per rank, %d threads each\n",
            comm_.world_size(), static_cast<long long>(s_.batch_size / comm_.world_size()),
            nanogpt::detail::max_threads());
    if (s_.init_from == "resume")
        std::printf("resuming from %s at step %lld\n", ckpt_path_.c_str(),
                    static_cast<long long>(state_.iter));
}

/// The whole program on one communicator: errors every rank shares (the configuration, a missing
/// dataset) end all ranks alike; an error on one rank alone ends the others at the next step
/// boundary, or, outside the training loop, by aborting them.
int train_main(int argc, char** argv, Communicator& comm) {
    const CommandLine cl = parse_command_line(argc, argv);
    if (cl.help) {
        if (comm.rank() == 0) print_help();
        return 0;
    }
    if (cl.print_table) {
        if (comm.rank() == 0) std::cout << examples::TrainConfig::markdown_table();
        return 0;
    }
    examples::TrainConfig config = build_config(cl);
    const Settings settings = read_settings(config);
    if (settings.batch_size % comm.world_size() != 0) {
        throw std::invalid_argument("key 'batch_size': " + std::to_string(settings.batch_size) +
                                    " is not a multiple of the " +
                                    std::to_string(comm.world_size()) +
                                    " MPI ranks (each rank takes batch_size / ranks rows)");
    }
    if (settings.threads > 0) nanogpt::detail::set_threads(settings.threads);
    std::unique_ptr<Trainer> trainer;
    std::string error;
    try {
        trainer = std::make_unique<Trainer>(std::move(config), settings, cl.stop_after, comm);
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (comm.any(!error.empty())) {
        throw std::runtime_error(error.empty() ? "stopping: another MPI rank failed to start"
                                               : error);
    }
    try {
        return trainer->run();
    } catch (const std::exception& e) {
        // Unexpected here on one rank alone: the others may already wait in a collective.
        std::cerr << "error: " << e.what() << "\n";
        std::cerr.flush();
        comm.abort_others();
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef NANOGPT_USE_MPI
    std::unique_ptr<Communicator> comm;
    try {
        comm = std::make_unique<MpiCommunicator>(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
#else
    auto comm = std::make_unique<Communicator>();
#endif
    try {
        return train_main(argc, argv, *comm);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        std::cerr.flush();
        return 1;
    }
}
