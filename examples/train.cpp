// train — nanoGPT's train.py as a program: trains a GPT on a dataset written by `prepare`,
// evaluates, checkpoints, logs, and resumes exactly where it stopped.
//
//   ./build/prepare --input=../shared/data/tinyshakespeare.txt --out_dir=data/shakespeare_char
//   ./build/train cpu_small                  # a preset or a config file, then --key=value
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
#include <chrono>      // std::chrono::steady_clock
#include <cmath>       // std::isfinite, std::nan
#include <csignal>     // std::signal, std::sig_atomic_t, SIGINT, SIGTERM
#include <cstdio>      // std::printf, std::fprintf, std::fflush, std::fputs
#include <exception>   // std::exception
#include <filesystem>  // std::filesystem::create_directories
#include <fstream>     // std::ofstream
#include <iostream>    // std::cout, std::cerr
#include <memory>      // std::unique_ptr, std::make_unique
#include <stdexcept>   // std::invalid_argument, std::runtime_error
#include <string>      // std::string, std::to_string
#include <utility>     // std::move
#include <vector>      // std::vector

#include <nanogpt.hpp>
#include <nanogpt/token_file.hpp>

#include "../benchmarks/peak_flops.hpp"  // the measured peak MFU is computed against
#include "train_config.hpp"    // TrainConfig: the table of keys, presets, config files
#include "train_log.hpp"       // log.csv and loss.svg
#include "train_model.hpp"     // ModelStart: scratch, resume or GPT-2 weights
#include "train_progress.hpp"  // the progress bar and log lines, MFU
#include "train_ranks.hpp"     // Communicator: one process or an MPI world
#include "train_settings.hpp"  // command line -> TrainConfig -> Settings

namespace {

using namespace examples;

// ---- stopping: Ctrl-C (SIGINT) and SIGTERM set a flag the loop checks between steps ----

volatile std::sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
    g_stop_signal = sig;
    std::signal(sig, SIG_DFL);  // a second Ctrl-C ends the program at once
}

double milliseconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
    /// Data, model and optimizer; with init_from = resume, the state of the interrupted run.
    Trainer(TrainConfig config, const Settings& s, std::int64_t stop_after, Communicator& comm)
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
          model_(ModelStart(s_, config_, meta_, leader()).make(checkpoint_, ckpt_path_)),
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
        model_.set_fused_attention(s_.fused_attention);
        peak_measured_ = !(s_.peak_gflops > 0);
        // MFU against this machine's peak for the dtype in use, not a constant from another CPU.
        if (peak_measured_) s_.peak_gflops = bench::measured_peak_gflops(model_.config().dtype);
    }

    int run();

private:
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
    /// step boundary, where every rank learns of it and stops (step()); alone it throws now.
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
    /// global batch), so rank 0's checkpoint resumes with any number of ranks. The checkpoint is
    /// only staged: commit_checkpoint() writes it once the next step has shown the weights are
    /// sound (the divergence rule, docs/formats.md).
    void stage_checkpoint(std::int64_t iter) {
        state_.iter = iter;
        state_.data_rng = data_rng_.state();
        on_leader([&] { pending_.stage(ckpt_path_, model_, &optimizer_, vocabulary_, state_); });
    }
    void commit_checkpoint() {
        on_leader([&] {
            if (pending_.commit()) print_line("saved checkpoint to " + ckpt_path_);
        });
    }
    /// A run's end has no following step: one forward and backward pass on a training batch
    /// (no update, a copy of the sampler) stands in for it; true when its loss and gradient
    /// norm are finite.
    bool probe_step() {
        nanogpt::Random rng = data_rng_;
        const nanogpt::Batch batch =
            nanogpt::get_batch(train_.tokens(), s_.batch_size, s_.model.block_size, rng);
        model_.zero_grad();
        auto [logits, loss] = model_.forward(batch.x, batch.y);
        bool finite = std::isfinite(loss.item());
        if (finite) {
            loss.backward();
            finite = std::isfinite(nanogpt::grad_norm(model_.parameters()));
        }
        model_.zero_grad();
        return finite;
    }
    /// Writes a staged checkpoint at the end of a run if the probe step allows it.
    bool commit_final_checkpoint() {
        bool ok = true;
        on_leader([&] {
            if (!pending_.pending()) return;
            ok = probe_step();
            if (ok) return commit_checkpoint();
            pending_.discard();
            std::fprintf(stderr,
                         "error: the weights of the last checkpoint give a non-finite loss or "
                         "gradient norm; not saved, the last good checkpoint stays in %s\n",
                         ckpt_path_.c_str());
        });
        return ok;
    }

    void log(const LogRow& row) {
        rows_.push_back(row);
        on_leader([&] { log_file_ << to_csv(row) << std::flush; });
    }

    void start_outputs();
    void open_log(std::int64_t start_iter);
    void print_run(const std::string& config_text);
    void evaluate(std::int64_t iter);
    double step(double lr);
    void report_step(std::int64_t iter, double loss, double lr, double ms);
    bool stop_requested();
    int stop_diverged(std::int64_t iter, double loss);
    int stop_interrupted(std::int64_t iter);
    int finish(std::int64_t steps, double seconds);

    Communicator& comm_;
    std::string leader_error_;  // rank 0's error, reported at the next step boundary
    double allreduce_ms_ = 0;
    TrainConfig config_;
    Settings s_;
    std::int64_t stop_after_;
    nanogpt::DatasetMeta meta_;
    std::vector<std::string> vocabulary_;  // char: the symbols saved in checkpoints; gpt2: none
    nanogpt::PendingCheckpoint pending_;   // staged at an evaluation, written after the next step
    nanogpt::TokenFile train_, val_;
    std::string ckpt_path_;
    nanogpt::Checkpoint<float> checkpoint_;  // only while resuming
    nanogpt::GPT<float> model_;
    nanogpt::AdamW<float> optimizer_;
    bool terminal_;
    nanogpt::Random data_rng_;
    nanogpt::TrainingState state_;
    std::vector<LogRow> rows_;
    std::ofstream log_file_;
    double ema_ms_ = 0;
    bool peak_measured_ = false;
    std::chrono::steady_clock::time_point last_draw_{};
};

/// The loop: evaluate every eval_interval steps (saving a checkpoint when val loss improves), then
/// one optimizer step, until max_iters, a step that diverged, or Ctrl-C / SIGTERM.
int Trainer::run() {
    start_outputs();
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t first = state_.iter;
    std::int64_t iter = first;
    for (;;) {
        if (iter % s_.eval_interval == 0 || iter >= s_.max_iters) evaluate(iter);
        if (iter >= s_.max_iters || s_.eval_only) break;
        const auto t0 = std::chrono::steady_clock::now();
        const double lr = s_.schedule.at(iter);
        const double loss = step(lr);
        if (!std::isfinite(loss)) return stop_diverged(iter, loss);
        commit_checkpoint();  // the step after it was sound
        report_step(iter, loss, lr, milliseconds_since(t0));
        ++iter;
        if (iter - first == stop_after_) g_stop_signal = SIGINT;
        if (stop_requested()) return stop_interrupted(iter);
    }
    return finish(iter - first, milliseconds_since(start) / 1000);
}

/// out_dir/config.txt, the run's summary and log.csv (a resumed run keeps its earlier rows).
void Trainer::start_outputs() {
    const std::string config_text = config_.to_text();
    on_leader([&] {
        std::filesystem::create_directories(s_.out_dir);
        nanogpt::write_file_atomically(s_.out_dir + "/config.txt", config_text, "train");
    });
    if (leader()) print_run(config_text);
    on_leader([&] { open_log(state_.iter); });
}

void Trainer::open_log(std::int64_t start_iter) {
    if (!leader()) return;
    const std::string path = s_.out_dir + "/log.csv";
    std::string text = kLogHeader;
    if (s_.init_from == "resume") {
        for (const LogRow& r : read_log(path)) {
            // Rows after the checkpoint are redone: train rows count steps done (step k ends
            // before the checkpoint at k), eval rows happen before the step they name.
            if (r.step > start_iter || (r.kind == "eval" && r.step == start_iter)) continue;
            rows_.push_back(r);
            text += to_csv(r);
        }
    }
    nanogpt::write_file_atomically(path, text, "train");
    log_file_.open(path, std::ios::app);
    if (!log_file_) throw std::runtime_error("cannot open '" + path + "' for appending");
}

void Trainer::print_run(const std::string& config_text) {
    std::printf("configuration (saved to %s/config.txt):\n%s", s_.out_dir.c_str(),
                config_text.c_str());
    std::printf("data: %s: train %lld tokens, val %lld tokens, vocab_size %lld (%s)\n",
                s_.data_dir.c_str(), static_cast<long long>(train_.size()),
                static_cast<long long>(val_.size()), static_cast<long long>(meta_.vocab_size),
                train_.memory_mapped() ? "memory-mapped" : "in memory");
    std::printf("model: %.2fM parameters, %d threads, %.0f tokens per step\n",
                static_cast<double>(model_.num_parameters()) / 1e6, nanogpt::num_threads(),
                static_cast<double>(s_.batch_size * s_.model.block_size * s_.grad_accum));
    const bool bf16 = model_.config().dtype == nanogpt::Dtype::bfloat16;
    std::printf("matrix products: %s (kernel %s), MFU against %.0f GFLOP/s (%s)\n",
                nanogpt::dtype_name(model_.config().dtype),
                bf16 ? nanogpt::kernels::gemm_bf16_kernel_name()
                     : nanogpt::kernels::sgemm_kernel_name(),
                s_.peak_gflops,
                peak_measured_ ? "measured at start-up" : "peak_gflops");
    if (comm_.world_size() > 1)
        std::printf(
            "data-parallel: %d MPI ranks, %lld rows of each batch per rank, %d threads each\n",
            comm_.world_size(), static_cast<long long>(s_.batch_size / comm_.world_size()),
            nanogpt::num_threads());
    if (s_.init_from == "resume")
        std::printf("resuming from %s at step %lld\n", ckpt_path_.c_str(),
                    static_cast<long long>(state_.iter));
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
        const std::string svg = loss_svg(rows_, s_.max_iters);
        nanogpt::write_file_atomically(s_.out_dir + "/loss.svg", svg, "train");
    });
    const bool improved = val_loss < state_.best_val_loss;
    if (improved) state_.best_val_loss = val_loss;
    if ((improved || s_.always_save) && iter > 0 && !s_.eval_only) stage_checkpoint(iter);
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
        allreduce_ms_ = milliseconds_since(t0);
    } else if (!std::isfinite(total)) {
        return total;
    }
    const double norm = nanogpt::grad_norm(model_.parameters());
    if (!std::isfinite(norm)) return norm;
    // Clipping inside the update; a weight or moment that became infinite or NaN stops at once.
    if (!optimizer_.step(lr, nanogpt::clip_scale(norm, s_.grad_clip))) return std::nan("");
    return comm_.average(total / static_cast<double>(s_.grad_accum));
}

void Trainer::report_step(std::int64_t iter, double loss, double lr, double ms) {
    const double tokens = static_cast<double>(s_.batch_size * s_.model.block_size * s_.grad_accum);
    ema_ms_ = ema_ms_ == 0 ? ms : 0.9 * ema_ms_ + 0.1 * ms;
    const double tokens_per_s = tokens / (ms / 1000);
    const double mfu = flops_per_token(model_) * tokens / (ms / 1000) / (s_.peak_gflops * 1e9);
    const StepReport r{iter + 1, s_.max_iters, loss, lr, ms, ema_ms_, tokens_per_s, mfu};
    if (r.done % s_.log_interval == 0)
        log({"train", r.done, loss, std::nan(""), lr, ms, tokens_per_s, mfu});
    if (!leader()) return;
    if (terminal_) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_draw_ < std::chrono::milliseconds(100) && r.done < s_.max_iters) return;
        last_draw_ = now;
        std::fputs(progress_bar(r).c_str(), stdout);
        std::fflush(stdout);
    } else if (r.done % s_.log_interval == 0) {
        std::string text = step_line(r);
        if (comm_.world_size() > 1) {
            char line[64];
            std::snprintf(line, sizeof line, ", allreduce %.1f ms", allreduce_ms_);
            text += line;
        }
        print_line(text);
    }
}

/// mpirun forwards Ctrl-C to every rank, but not at the same step: the ranks agree before stopping.
bool Trainer::stop_requested() {
    return comm_.world_size() > 1 ? comm_.any(g_stop_signal != 0) : g_stop_signal != 0;
}

int Trainer::stop_diverged(std::int64_t iter, double loss) {
    if (terminal_ && leader()) std::fputs("\n", stdout);
    std::fflush(stdout);
    if (!leader_error_.empty()) return report_leader_error();
    if (comm_.world_size() == 1) {
        std::fprintf(stderr,
                     "error: training diverged at step %lld (the loss, the gradient norm or an "
                     "updated weight is %f); stopping, the last good checkpoint stays in %s\n",
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

int Trainer::stop_interrupted(std::int64_t iter) {
    const int signal = g_stop_signal != 0 ? static_cast<int>(g_stop_signal) : SIGINT;
    stage_checkpoint(iter);
    if (!commit_final_checkpoint()) return 2;
    print_line(std::string(signal == SIGTERM ? "SIGTERM" : "interrupted") + " after step " +
               std::to_string(iter) + ": saved checkpoint to " + ckpt_path_ +
               "; continue with --init_from=resume");
    if (!leader_error_.empty()) return report_leader_error();
    return 0;
}

int Trainer::finish(std::int64_t steps, double seconds) {
    if (!commit_final_checkpoint()) return 2;
    if (!leader_error_.empty()) return report_leader_error();
    if (!leader()) return 0;
    std::printf("done: %lld steps in %s (%.1f s), best val loss %.4f\n",
                static_cast<long long>(steps), duration_text(seconds).c_str(), seconds,
                state_.best_val_loss);
    return 0;
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
        if (comm.rank() == 0) std::cout << TrainConfig::markdown_table();
        return 0;
    }
    TrainConfig config = build_config(cl);  // defaults, presets, config files, --key=value
    const Settings settings = read_settings(config);
    if (settings.batch_size % comm.world_size() != 0) {
        throw std::invalid_argument("key 'batch_size': " + std::to_string(settings.batch_size) +
                                    " is not a multiple of the " +
                                    std::to_string(comm.world_size()) +
                                    " MPI ranks (each rank takes batch_size / ranks rows)");
    }
    if (settings.threads > 0) nanogpt::set_num_threads(settings.threads);
    std::unique_ptr<Trainer> trainer;
    std::string error;
    try {  // data, model, optimizer
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
