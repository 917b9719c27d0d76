// Parity with PyTorch: a small random GPT is saved as a GPT-2 safetensors file, loaded back into a
// fresh model, and its logits, loss and every parameter gradient are compared with
// tests/parity/gpt2_reference.py, an independent PyTorch implementation run in float64 on the same
// file. Skips (with a warning) when Debian's /usr/bin/python3 or its torch is missing.
#include <catch2/catch.hpp>

#include <algorithm>   // std::max
#include <chrono>      // std::chrono::steady_clock (a unique scratch directory)
#include <cmath>       // std::fabs
#include <cstdint>     // std::int32_t, std::int64_t
#include <cstdlib>     // std::system
#include <filesystem>  // std::filesystem::path, temp_directory_path, create_directories
#include <string>      // std::string
#include <vector>      // std::vector

#include <nanogpt/random.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/gpt2_weights.hpp>
#include <nanogpt/safetensors.hpp>

using namespace nanogpt;
namespace fs = std::filesystem;

namespace {

const char* const kPython = "/usr/bin/python3";  // Debian's, which has python3-torch

/// A scratch directory removed at the end of the test.
struct ScratchDir {
    fs::path path;
    explicit ScratchDir(const std::string& tag) {
        const auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
        path = fs::temp_directory_path() / ("nanogpt_parity_" + tag + "_" + std::to_string(ticks));
        fs::create_directories(path);
    }
    ~ScratchDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
};

/// max |a - b| / max |b|: the worst error relative to the reference's scale.
double relative_error(const float* a, const std::vector<float>& b) {
    double diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < b.size(); ++i) {
        diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
    }
    return scale > 0.0 ? diff / scale : diff;
}

bool torch_available() {
    if (!fs::exists(kPython)) {
        WARN("skipped: " << kPython << " not found (Debian: apt-get install python3-torch)");
        return false;
    }
    if (std::system((std::string(kPython) + " -c \"import torch\" > /dev/null 2>&1").c_str()) !=
        0) {
        WARN("skipped: " << kPython
                         << " cannot import torch (Debian: apt-get install python3-torch)");
        return false;
    }
    return true;
}

void check_parity(const GPTConfig& config, const std::string& tag) {
    if (!torch_available()) return;
    const fs::path script = fs::path(__FILE__).parent_path() / "parity" / "gpt2_reference.py";
    REQUIRE(fs::exists(script));
    ScratchDir dir(tag);
    const std::string weights = (dir.path / "model.safetensors").string();
    const std::string inputs = (dir.path / "inputs.safetensors").string();
    const std::string output = (dir.path / "reference.safetensors").string();

    // Random weights everywhere (layernorm gains and biases too), so no gradient is trivially 1 or
    // 0.
    GPT<float> source(config, 11);
    Random rng(5);
    Parameters<float>& p = source.parameters();
    for (std::int64_t k = 0; k < p.size(); ++k)
        p.data()[k] += static_cast<float>(0.05 * rng.normal());
    save_gpt2_safetensors(source, weights);

    const std::int64_t B = 3, T = config.block_size - 5;  // shorter than the block: wpe rows unused
    Tensor<std::int32_t> idx(Shape{B, T}), targets(Shape{B, T});
    std::vector<float> idx_f, targets_f;
    for (std::int64_t i = 0; i < B * T; ++i) {
        idx.data()[i] = static_cast<std::int32_t>(rng.uniform_int(config.vocab_size));
        targets.data()[i] = static_cast<std::int32_t>(rng.uniform_int(config.vocab_size));
        idx_f.push_back(static_cast<float>(idx.data()[i]));
        targets_f.push_back(static_cast<float>(targets.data()[i]));
    }
    SafetensorsFile in;
    in.add("idx", {B, T}, idx_f.data());
    in.add("targets", {B, T}, targets_f.data());
    in.write(inputs);

    const std::string command = "OMP_NUM_THREADS=1 " + std::string(kPython) + " \"" +
                                script.string() + "\" \"" + weights + "\" \"" + inputs + "\" \"" +
                                output + "\"";
    INFO(command);
    REQUIRE(std::system(command.c_str()) == 0);
    const SafetensorsFile ref = SafetensorsFile::read(output);

    // The C++ side runs on a fresh model that loads the file, so save and load are checked too.
    GPT<float> model(config, 99);
    load_gpt2_safetensors(model, weights);
    model.zero_grad();
    auto out = model.forward(idx, targets);
    const std::vector<float> logits = out.logits.to_vector();
    const float loss = out.loss.item();
    out.loss.backward();

    const double tol = 1e-4;
    const double logits_err = relative_error(logits.data(), ref.to_float(*ref.find("logits")));
    const std::vector<float> ref_loss = ref.to_float(*ref.find("loss"));
    REQUIRE(ref_loss.size() == 1);
    const double loss_err =
        std::fabs(static_cast<double>(loss) - ref_loss[0]) / std::fabs(ref_loss[0]);
    double grad_err = 0.0;
    std::string worst;
    for (const ParameterInfo& info : model.parameters().infos()) {
        const SafetensorsTensor* g = ref.find("grad." + info.name);
        INFO("gradient of " << info.name);
        REQUIRE(g != nullptr);
        REQUIRE(shape_string(g->shape) == info.shape.to_string());  // our [out, in] layout
        const double err =
            relative_error(model.parameters().grad() + info.offset, ref.to_float(*g));
        CHECK(err <= tol);
        if (err >= grad_err) {
            grad_err = err;
            worst = info.name;
        }
    }
    INFO("worst relative errors: logits " << logits_err << ", loss " << loss_err << ", gradients "
                                          << grad_err << " (" << worst << ")");
    CHECK(logits_err <= tol);
    CHECK(loss_err <= tol);
    CHECK(grad_err <= tol);
}

}  // namespace

TEST_CASE("parity with PyTorch: logits, loss and gradients of a GPT with biases", "[parity]") {
    check_parity(GPTConfig{32, 101, 2, 2, 64, 0.0, true}, "bias");
}

TEST_CASE("parity with PyTorch: logits, loss and gradients of a GPT without biases", "[parity]") {
    check_parity(GPTConfig{32, 101, 2, 2, 64, 0.0, false}, "nobias");
}
