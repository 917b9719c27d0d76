// train_log.hpp — the training program's records: out_dir/log.csv (one row per logged step and
// per evaluation) and out_dir/loss.svg, a self-contained line chart of the losses against the step
// that any browser opens. Not part of the library; used by examples/train.cpp.
#pragma once

#include <algorithm>  // std::min, std::max
#include <cmath>      // std::isfinite, std::floor, std::log10, std::pow, std::ceil
#include <cstdint>    // std::int64_t
#include <cstdio>     // std::snprintf
#include <fstream>    // std::ifstream
#include <limits>     // std::numeric_limits
#include <sstream>    // std::istringstream
#include <string>     // std::string
#include <vector>     // std::vector

namespace examples {

/// One line of log.csv. kind "train": a logged step (train_loss is its loss, ms its duration);
/// kind "eval": an evaluation (train_loss and val_loss over eval_iters batches, ms its duration).
struct LogRow {
    std::string kind;
    std::int64_t step = 0;
    double train_loss = 0, val_loss = std::numeric_limits<double>::quiet_NaN(), lr = 0, ms = 0,
           tokens_per_s = 0, mfu = 0;
};

inline constexpr const char* kLogHeader = "kind,step,train_loss,val_loss,lr,ms,tokens_per_s,mfu\n";

inline std::string format_number(double x, const char* format = "%.6g") {
    if (!std::isfinite(x)) return "";
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, format, x);
    return buffer;
}

inline std::string to_csv(const LogRow& r) {
    const bool eval = r.kind == "eval";
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return r.kind + "," + std::to_string(r.step) + "," + format_number(r.train_loss) + "," +
           format_number(eval ? r.val_loss : nan) + "," + format_number(r.lr) + "," +
           format_number(r.ms) + "," + format_number(eval ? nan : r.tokens_per_s) + "," +
           format_number(eval ? nan : r.mfu) + "\n";
}

/// Rows of an existing log.csv (a resumed run keeps the history before its checkpoint).
inline std::vector<LogRow> read_log(const std::string& path) {
    std::vector<LogRow> rows;
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::istringstream fields(line);
        for (std::string s; std::getline(fields, s, ',');) f.push_back(s);
        f.resize(8);
        auto number = [](const std::string& s) {
            try {
                return s.empty() ? std::numeric_limits<double>::quiet_NaN() : std::stod(s);
            } catch (const std::exception&) {
                return std::numeric_limits<double>::quiet_NaN();
            }
        };
        if ((f[0] != "train" && f[0] != "eval") || !std::isfinite(number(f[1])))
            continue;  // not ours
        rows.push_back({f[0], static_cast<std::int64_t>(number(f[1])), number(f[2]), number(f[3]),
                        number(f[4]), number(f[5]), number(f[6]), number(f[7])});
    }
    return rows;
}

// ---- loss.svg ----

/// Tick positions covering [lo, hi] at a "nice" spacing (1, 2 or 5 times a power of ten).
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
    const double raw = (hi - lo) / target;
    const double power = std::pow(10.0, std::floor(std::log10(raw)));
    double step = power;
    for (double m : {1.0, 2.0, 5.0, 10.0}) {
        step = m * power;
        if (step >= raw) break;
    }
    std::vector<double> ticks;
    for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
        ticks.push_back(t);
    return ticks;
}

/// A line chart of train and val loss against step: the per-step training loss (thin), and the
/// train and val losses of each evaluation (with markers); axes with ticks, labels and a legend.
inline std::string loss_svg(const std::vector<LogRow>& rows, std::int64_t max_iters) {
    const double W = 760, H = 440, left = 64, right = 20, top = 40, bottom = 56;
    double x_max = static_cast<double>(std::max<std::int64_t>(max_iters, 1));
    double y_lo = std::numeric_limits<double>::infinity(), y_hi = -y_lo;
    for (const LogRow& r : rows) {
        x_max = std::max(x_max, static_cast<double>(r.step));
        for (double y : {r.train_loss, r.kind == "eval" ? r.val_loss : r.train_loss}) {
            if (std::isfinite(y)) y_lo = std::min(y_lo, y), y_hi = std::max(y_hi, y);
        }
    }
    if (!std::isfinite(y_lo)) y_lo = 0, y_hi = 1;
    if (y_hi - y_lo < 1e-6) y_lo -= 0.5, y_hi += 0.5;
    const double pad = 0.05 * (y_hi - y_lo);
    y_lo -= pad, y_hi += pad;
    auto px = [&](double step) { return left + (W - left - right) * step / x_max; };
    auto py = [&](double loss) { return top + (H - top - bottom) * (y_hi - loss) / (y_hi - y_lo); };
    auto num = [](double x) { return format_number(x, "%.1f"); };

    std::string s =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
        "width=\"" +
        num(W) + "\" height=\"" + num(H) + "\" viewBox=\"0 0 " + num(W) + " " + num(H) +
        "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s += "<text x=\"" + num(W / 2) +
         "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">training loss</text>\n";
    for (double t : nice_ticks(0, x_max)) {
        s += "<line x1=\"" + num(px(t)) + "\" y1=\"" + num(top) + "\" x2=\"" + num(px(t)) +
             "\" y2=\"" + num(H - bottom + 5) + "\" stroke=\"#e5e5e5\"/>\n";
        s += "<text x=\"" + num(px(t)) + "\" y=\"" + num(H - bottom + 19) +
             "\" text-anchor=\"middle\">" + format_number(t) + "</text>\n";
    }
    for (double t : nice_ticks(y_lo, y_hi)) {
        s += "<line x1=\"" + num(left - 5) + "\" y1=\"" + num(py(t)) + "\" x2=\"" + num(W - right) +
             "\" y2=\"" + num(py(t)) + "\" stroke=\"#e5e5e5\"/>\n";
        s += "<text x=\"" + num(left - 8) + "\" y=\"" + num(py(t) + 4) + "\" text-anchor=\"end\">" +
             format_number(t) + "</text>\n";
    }
    s += "<polyline fill=\"none\" stroke=\"black\" points=\"" + num(left) + "," + num(top) + " " +
         num(left) + "," + num(H - bottom) + " " + num(W - right) + "," + num(H - bottom) +
         "\"/>\n";
    s += "<text x=\"" + num((left + W - right) / 2) + "\" y=\"" + num(H - 14) +
         "\" text-anchor=\"middle\">step</text>\n";
    s += "<text transform=\"translate(18," + num((top + H - bottom) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">loss</text>\n";

    struct Series {
        const char* name;
        const char* color;
        bool eval, val, markers;
        double width;
    };
    const Series series[] = {{"train (each logged step)", "#9ecae1", false, false, false, 1.0},
                             {"train (evaluation)", "#1f77b4", true, false, true, 2.0},
                             {"val (evaluation)", "#d62728", true, true, true, 2.0}};
    double legend_y = top + 14;
    for (const Series& c : series) {
        std::string points, markers;
        for (const LogRow& r : rows) {
            const double y = c.val ? r.val_loss : r.train_loss;
            if ((r.kind == "eval") != c.eval || !std::isfinite(y)) continue;
            const std::string x_text = num(px(static_cast<double>(r.step))), y_text = num(py(y));
            points += x_text + "," + y_text + " ";
            if (c.markers) {
                markers += "<circle cx=\"" + x_text + "\" cy=\"" + y_text + "\" r=\"3\" fill=\"" +
                           c.color + "\"/>\n";
            }
        }
        s += "<polyline fill=\"none\" stroke=\"" + std::string(c.color) + "\" stroke-width=\"" +
             num(c.width) + "\" points=\"" + points + "\"/>\n" + markers;
        s += "<line x1=\"" + num(W - right - 190) + "\" y1=\"" + num(legend_y) + "\" x2=\"" +
             num(W - right - 166) + "\" y2=\"" + num(legend_y) + "\" stroke=\"" + c.color +
             "\" stroke-width=\"3\"/>\n";
        s += "<text x=\"" + num(W - right - 160) + "\" y=\"" + num(legend_y + 4) + "\">" + c.name +
             "</text>\n";
        legend_y += 18;
    }
    return s + "</svg>\n";
}

}  // namespace examples
