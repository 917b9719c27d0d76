// train_progress.hpp — what train prints while it runs: a progress bar redrawn in place on a
// terminal, or one log line per logged step elsewhere (files, CI, mpirun); throughput and MFU.
// Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::max
#include <cstdint>    // std::int64_t
#include <cstdio>     // std::snprintf
#include <cstdlib>    // std::getenv
#include <string>     // std::string

#include <nanogpt/model.hpp>

#if __has_include(<unistd.h>)
#include <unistd.h>  // isatty, STDOUT_FILENO
#define NANOGPT_TRAIN_HAS_ISATTY 1
#endif

namespace examples {

inline bool stdout_is_terminal() {
    // NANOGPT_PROGRESS=plain forces log lines, e.g. under mpirun, whose ranks write to a pty.
    const char* progress = std::getenv("NANOGPT_PROGRESS");
    if (progress != nullptr && std::string(progress) == "plain") return false;
#ifdef NANOGPT_TRAIN_HAS_ISATTY
    return isatty(STDOUT_FILENO) != 0;
#else
    return false;
#endif
}

/// nanoGPT's estimate_mfu: 6N flops per token for the matmuls with weights (N without the
/// position embedding), 12 L H Q T for attention, against the machine's peak.
inline double flops_per_token(const nanogpt::GPT<float>& model) {
    const nanogpt::GPTConfig& c = model.config();
    return 6.0 * static_cast<double>(model.num_parameters(true)) +
           12.0 * static_cast<double>(c.n_layer * c.n_head * (c.n_embd / c.n_head) * c.block_size);
}

inline std::string duration_text(double seconds) {
    const auto s = static_cast<long long>(seconds + 0.5);
    char buffer[32];
    if (s >= 3600) {
        std::snprintf(buffer, sizeof buffer, "%lldh%02lldm", s / 3600, s / 60 % 60);
    } else {
        std::snprintf(buffer, sizeof buffer, "%lldm%02llds", s / 60, s % 60);
    }
    return buffer;
}

/// One step's numbers as printed: `ms` is this step's duration, `ema_ms` the running average
/// the progress bar shows and estimates the time left from.
struct StepReport {
    std::int64_t done, max_iters;
    double loss, lr, ms, ema_ms, tokens_per_s, mfu;
};

/// The progress bar, redrawn in place ("\r" ... clear to end of line).
inline std::string progress_bar(const StepReport& r) {
    const int width = 24;
    const auto filled = static_cast<int>(width * r.done / std::max<std::int64_t>(r.max_iters, 1));
    const std::string bar = std::string(static_cast<std::size_t>(filled), '#') +
                            std::string(static_cast<std::size_t>(width - filled), '.');
    char line[256];
    std::snprintf(
        line, sizeof line,
        "\r[%s] %lld/%lld loss %.4f lr %.2e %.1f ms/it %.1fk tok/s mfu %.1f%% eta %s\x1b[K",
        bar.c_str(), static_cast<long long>(r.done), static_cast<long long>(r.max_iters), r.loss,
        r.lr, r.ema_ms, r.tokens_per_s / 1000, 100 * r.mfu,
        duration_text(static_cast<double>(r.max_iters - r.done) * r.ema_ms / 1000).c_str());
    return line;
}

/// The log line of a step, where stdout is not a terminal.
inline std::string step_line(const StepReport& r) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "step %lld/%lld: loss %.4f, lr %.2e, %.1f ms/it, %.1fk tok/s, mfu %.2f%%",
                  static_cast<long long>(r.done), static_cast<long long>(r.max_iters), r.loss, r.lr,
                  r.ms, r.tokens_per_s / 1000, 100 * r.mfu);
    return line;
}

}  // namespace examples
