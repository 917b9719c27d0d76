// Tests for layers.hpp, config.hpp and model.hpp: a double-precision gradient check of every
// layer and of a whole tiny GPT, GPTConfig validation and parameter counts, GPT-2's parameter
// names and initialisation, determinism from the seed, the reference-size forward, causality,
// the initial loss, overfitting one batch, generate(), and forward's errors and dropout modes.
#include <catch2/catch.hpp>

#include <algorithm>  // std::max_element, std::equal
#include <cmath>      // std::log, std::sqrt, std::fabs, std::isfinite
#include <cstdint>    // std::int32_t, std::int64_t, std::uint64_t
#include <cstring>    // std::memcmp
#include <limits>     // std::numeric_limits
#include <memory>     // std::make_shared
#include <optional>   // std::optional
#include <stdexcept>  // std::invalid_argument, std::out_of_range
#include <string>     // std::string, std::to_string
#include <vector>     // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/threading.hpp>
#include <nanogpt/layers.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>
#include <nanogpt/parameters.hpp>
#include <nanogpt/sampling.hpp>
#include <nanogpt/tape.hpp>

#include "gradcheck.hpp"

namespace {

using Catch::Matchers::Contains;
using nanogpt::GPT;
using nanogpt::GPTConfig;
using nanogpt::Parameters;
using nanogpt::Random;
using nanogpt::SamplingOptions;
using nanogpt::Shape;
using nanogpt::Tensor;
using nanogpt::test::gradcheck;
using nanogpt::test::GradLeaf;
using nanogpt::test::random_ids;
using nanogpt::test::random_tensor;
using nanogpt::test::weighted_sum;
using Ids = Tensor<std::int32_t>;


/// Adds N(0, std^2) noise to every parameter, so biases, layernorm weights and small weights
/// all get generic values for a gradient check.
template <class T>
void perturb(Parameters<T>& params, std::uint64_t seed, double std = 0.3) {
    const auto noise = nanogpt::test::random_values(params.size(), seed, std);
    for (std::int64_t i = 0; i < params.size(); ++i)
        params.data()[i] += static_cast<T>(noise[static_cast<std::size_t>(i)]);
}

/// The input leaf followed by every parameter.
std::vector<GradLeaf> input_and(const Tensor<double>& x, Parameters<double>& params) {
    std::vector<GradLeaf> leaves{nanogpt::test::grad_leaf(x, "input")};
    for (GradLeaf& l : nanogpt::test::grad_leaves(params)) leaves.push_back(l);
    return leaves;
}

/// The toy model of the whole-GPT gradient check: block 4, vocab 7, 2 layers, 2 heads, n_embd 4.
GPTConfig toy_config(bool bias, double dropout = 0.0) {
    return GPTConfig{4, 7, 2, 2, 4, dropout, bias};
}

template <class T>
std::vector<T> parameter_values(GPT<T>& model) {
    const auto& p = model.parameters();
    return std::vector<T>(p.data(), p.data() + p.size());
}

/// Index of the largest of n values.
template <class T>
std::int32_t argmax(const T* v, std::int64_t n) {
    return static_cast<std::int32_t>(std::max_element(v, v + n) - v);
}

}  // namespace

// ---- layers ----

TEST_CASE("model: layer gradients", "[model][double]") {
    using namespace nanogpt;
    const auto x = random_tensor<double>(Shape{2, 3, 4}, 1, true);
    auto control = std::make_shared<DropoutControl>(DropoutControl{true, Random(5)});

    for (const bool bias : {true, false}) {
        const LayerShape s{2, 2, 4, 0.0, bias};
        DYNAMIC_SECTION("Linear, bias " << bias) {
            Parameters<double> params(Linear<double>::num_parameters(4, 6, bias));
            const Linear<double> lin(params, "lin", 4, 6, bias);
            perturb(params, 2);
            gradcheck([&] { return weighted_sum(lin.forward(x)); }, input_and(x, params));
        }
        DYNAMIC_SECTION("LayerNorm, bias " << bias) {
            Parameters<double> params(LayerNorm<double>::num_parameters(4, bias));
            const LayerNorm<double> ln(params, "ln", 4, bias);
            perturb(params, 3);
            gradcheck([&] { return weighted_sum(ln.forward(x)); }, input_and(x, params));
        }
        DYNAMIC_SECTION("CausalSelfAttention, bias " << bias) {
            Parameters<double> params(CausalSelfAttention<double>::num_parameters(s));
            const CausalSelfAttention<double> attn(params, "attn", s, control);
            perturb(params, 4);
            gradcheck([&] { return weighted_sum(attn.forward(x)); }, input_and(x, params));
        }
        DYNAMIC_SECTION("MLP, bias " << bias) {
            Parameters<double> params(MLP<double>::num_parameters(s));
            const MLP<double> mlp(params, "mlp", s, control);
            perturb(params, 5);
            gradcheck([&] { return weighted_sum(mlp.forward(x)); }, input_and(x, params));
        }
        DYNAMIC_SECTION("Block, bias " << bias) {
            Parameters<double> params(Block<double>::num_parameters(s));
            const Block<double> block(params, "h.0", s, control);
            perturb(params, 6);
            gradcheck([&] { return weighted_sum(block.forward(x)); }, input_and(x, params));
        }
    }
    SECTION("Block with dropout (the generator reseeded: the same masks every evaluation)") {
        const LayerShape s{2, 2, 4, 0.2, true};
        Parameters<double> params(Block<double>::num_parameters(s));
        const Block<double> block(params, "h.0", s, control);
        perturb(params, 7);
        gradcheck(
            [&] {
                control->rng.reseed(11);
                return weighted_sum(block.forward(x));
            },
            input_and(x, params));
    }
    SECTION("Embedding") {
        Parameters<double> params(5 * 4);
        const Embedding<double> emb(params, "wte", 5, 4);
        const Ids tokens = Ids::from_vector(Shape{2, 3}, {4, 0, 4, 2, 2, 1});  // row 3 unused
        gradcheck([&] { return weighted_sum(emb.forward(tokens)); },
                  nanogpt::test::grad_leaves(params));
    }
}

// ---- whole GPT gradient ----

TEST_CASE("model: whole GPT gradient against finite differences", "[model][double]") {
    for (const bool bias : {true, false}) {
        for (const double dropout : {0.0, 0.2}) {
            DYNAMIC_SECTION("bias " << bias << ", dropout " << dropout) {
                const GPTConfig config = toy_config(bias, dropout);
                GPT<double> model(config, 11);
                perturb(model.parameters(), 12);
                const Ids idx = random_ids(Shape{2, 4}, 7, 13);
                Ids targets = random_ids(Shape{2, 4}, 7, 14);
                targets.data()[3] = -1;  // an ignored position
                REQUIRE(model.parameters().size() == config.num_parameters());
                gradcheck(
                    [&] {
                        model.dropout_generator().reseed(15);
                        return model.forward(idx, targets).loss;
                    },
                    nanogpt::test::grad_leaves(model.parameters()));
            }
        }
    }
}

// ---- GPTConfig ----

TEST_CASE("model: GPTConfig validation names the field", "[model]") {
    auto with = [](auto change) {
        GPTConfig c = GPTConfig::tiny();
        change(c);
        return c;
    };
    CHECK_NOTHROW(GPTConfig::tiny().validate());
    SECTION("n_embd not divisible by n_head") {
        const auto c = with([](GPTConfig& c) {
            c.n_embd = 10;
            c.n_head = 3;
        });
        CHECK_THROWS_AS(c.validate(), std::invalid_argument);
        CHECK_THROWS_WITH(c.validate(), Contains("n_embd = 10") && Contains("n_head = 3"));
        CHECK_THROWS_WITH(GPT<float>(c), Contains("n_embd = 10"));  // the model validates too
    }
    SECTION("zero sizes") {
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.block_size = 0; }).validate(),
                          Contains("block_size"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.vocab_size = 0; }).validate(),
                          Contains("vocab_size"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.n_layer = 0; }).validate(),
                          Contains("n_layer"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.n_head = 0; }).validate(), Contains("n_head"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.n_embd = 0; }).validate(), Contains("n_embd"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.n_layer = -2; }).validate(), Contains("-2"));
        CHECK_THROWS_AS(with([](GPTConfig& c) { c.vocab_size = 0; }).validate(),
                        std::invalid_argument);
    }
    SECTION("dropout out of range") {
        CHECK_THROWS_AS(with([](GPTConfig& c) { c.dropout = 1.0; }).validate(),
                        std::invalid_argument);
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.dropout = 1.0; }).validate(),
                          Contains("dropout"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) { c.dropout = -0.1; }).validate(),
                          Contains("dropout"));
        CHECK_THROWS_WITH(with([](GPTConfig& c) {
                              c.dropout = std::numeric_limits<double>::quiet_NaN();
                          }).validate(),
                          Contains("dropout"));
    }
    SECTION("presets") {
        for (const char* name : {"gpt2", "reference", "shakespeare_char", "cpu_small", "tiny"}) {
            INFO(name);
            CHECK_NOTHROW(GPTConfig::preset(name).validate());
        }
        CHECK(GPTConfig::preset("tiny") == GPTConfig::tiny());
        CHECK(GPTConfig::preset("cpu_small") == GPTConfig::cpu_small());
        // nanoGPT's CPU recipe: 4 layers x 4 heads x 128, block 64, no dropout, no biases.
        CHECK(GPTConfig::cpu_small() == GPTConfig{64, 65, 4, 4, 128, 0.0, false});
        // config/train_shakespeare_char.py with train.py's default bias = False.
        CHECK(GPTConfig::shakespeare_char() == GPTConfig{256, 65, 6, 6, 384, 0.2, false});
        for (const GPTConfig& c : {GPTConfig::gpt2(), GPTConfig::reference()}) {
            CHECK(c.n_embd / c.n_head == 64);  // GPT-2's head size
            CHECK(c.bias);
        }
        CHECK(GPTConfig::reference().block_size == 512);
        CHECK(GPTConfig::reference().n_embd == 768);
        CHECK_THROWS_AS(GPTConfig::preset("gpt3"), std::invalid_argument);
        CHECK_THROWS_WITH(GPTConfig::preset("gpt3"), Contains("'gpt3'"));
    }
}

TEST_CASE("model: parameter counts", "[model]") {
    // Independent count: per block 12 C^2 + 13 C with biases (12 C^2 + 2 C without), plus the
    // token and position embeddings and ln_f; lm_head is tied to wte.
    auto count = [](const GPTConfig& c) {
        const std::int64_t C = c.n_embd;
        const std::int64_t block = c.bias ? 12 * C * C + 13 * C : 12 * C * C + 2 * C;
        return c.vocab_size * C + c.block_size * C + c.n_layer * block + (c.bias ? 2 * C : C);
    };
    CHECK(GPTConfig::gpt2().num_parameters() == 124439808);
    CHECK(count(GPTConfig::gpt2()) == 124439808);
    CHECK(GPTConfig::reference().num_parameters() == 124439808 - 512 * 768);  // half the positions

    GPTConfig no_bias = GPTConfig::tiny();
    no_bias.bias = false;
    for (const GPTConfig& c :
         {GPTConfig::tiny(), no_bias, GPTConfig::cpu_small(), GPTConfig::shakespeare_char(),
          toy_config(true), toy_config(false)}) {
        INFO("n_layer " << c.n_layer << " n_embd " << c.n_embd << " bias " << c.bias);
        CHECK(c.num_parameters() == count(c));
        GPT<float> model(c);
        CHECK(model.num_parameters() == c.num_parameters());
        CHECK(model.parameters().size() == c.num_parameters());
        CHECK(model.parameters().used() == c.num_parameters());
        CHECK(model.num_parameters(true) == c.num_parameters() - c.block_size * c.n_embd);
        std::int64_t total = 0;
        for (const auto& info : model.parameters().infos()) total += info.shape.numel();
        CHECK(total == c.num_parameters());
    }
}

TEST_CASE("model: parameter names, shapes and order follow GPT-2", "[model]") {
    GPT<float> model(GPTConfig::tiny());  // V 32, block 16, C 16, 2 layers
    std::vector<std::pair<std::string, Shape>> expected{{"wte.weight", Shape{32, 16}},
                                                        {"wpe.weight", Shape{16, 16}}};
    for (int i = 0; i < 2; ++i) {
        const std::string h = "h." + std::to_string(i) + ".";
        const std::vector<std::pair<std::string, Shape>> block{
            {h + "ln_1.weight", Shape{16}},
            {h + "ln_1.bias", Shape{16}},
            {h + "attn.c_attn.weight", Shape{48, 16}},
            {h + "attn.c_attn.bias", Shape{48}},
            {h + "attn.c_proj.weight", Shape{16, 16}},
            {h + "attn.c_proj.bias", Shape{16}},
            {h + "ln_2.weight", Shape{16}},
            {h + "ln_2.bias", Shape{16}},
            {h + "mlp.c_fc.weight", Shape{64, 16}},
            {h + "mlp.c_fc.bias", Shape{64}},
            {h + "mlp.c_proj.weight", Shape{16, 64}},
            {h + "mlp.c_proj.bias", Shape{16}}};
        expected.insert(expected.end(), block.begin(), block.end());
    }
    expected.push_back({"ln_f.weight", Shape{16}});
    expected.push_back({"ln_f.bias", Shape{16}});

    const auto& infos = model.parameters().infos();
    REQUIRE(infos.size() == expected.size());
    std::int64_t offset = 0;
    for (std::size_t i = 0; i < infos.size(); ++i) {
        INFO("parameter " << i << ": " << infos[i].name);
        CHECK(infos[i].name == expected[i].first);
        CHECK(infos[i].shape == expected[i].second);
        CHECK(infos[i].offset == offset);  // contiguous, in declaration order
        offset += infos[i].shape.numel();
    }
    CHECK(model.parameters().find("h.1.attn.c_attn.weight").data() ==
          model.parameters().data() + infos[2 + 12 + 2].offset);
    CHECK_THROWS_WITH(model.parameters().find("lm_head.weight"), Contains("'lm_head.weight'"));

    SECTION("without biases there are no .bias parameters") {
        GPTConfig c = GPTConfig::tiny();
        c.bias = false;
        GPT<float> m(c);
        for (const auto& info : m.parameters().infos()) CHECK_THAT(info.name, !Contains(".bias"));
        CHECK(m.parameters().infos().size() == 2 + 2 * 6 + 1);
    }
}

TEST_CASE("model: initialisation statistics follow GPT-2", "[model]") {
    const GPTConfig c = GPTConfig::cpu_small();  // 4 layers: c_proj std = 0.02 / sqrt(8)
    GPT<float> model(c, 1337);
    auto ends_with = [](const std::string& s, const std::string& suffix) {
        return s.size() >= suffix.size() &&
               s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    for (const auto& info : model.parameters().infos()) {
        INFO(info.name);
        const float* p = model.parameters().data() + info.offset;
        const std::int64_t n = info.shape.numel();
        const bool layernorm = info.name.find("ln_") != std::string::npos;
        if (ends_with(info.name, ".bias")) {
            CHECK(std::all_of(p, p + n, [](float v) { return v == 0.0f; }));
        } else if (layernorm) {
            CHECK(std::all_of(p, p + n, [](float v) { return v == 1.0f; }));
        } else {
            double mean = 0.0, var = 0.0;
            for (std::int64_t i = 0; i < n; ++i) mean += p[i];
            mean /= static_cast<double>(n);
            for (std::int64_t i = 0; i < n; ++i) var += (p[i] - mean) * (p[i] - mean);
            const double std = std::sqrt(var / static_cast<double>(n));
            const double expected =
                ends_with(info.name, "c_proj.weight") ? 0.02 / std::sqrt(2.0 * c.n_layer) : 0.02;
            CHECK(std == Approx(expected).epsilon(0.05));
            CHECK(std::fabs(mean) < 5.0 * expected / std::sqrt(static_cast<double>(n)));
        }
    }
}

TEST_CASE("model: the seed determines the parameters", "[model]") {
    GPT<float> a(GPTConfig::tiny(), 7), b(GPTConfig::tiny(), 7), c(GPTConfig::tiny(), 8);
    const auto pa = parameter_values(a), pb = parameter_values(b), pc = parameter_values(c);
    CHECK(pa == pb);
    std::int64_t same = 0;
    for (std::size_t i = 0; i < pa.size(); ++i)
        same += pa[i] == pc[i] && pa[i] != 0.0f && pa[i] != 1.0f;
    CHECK(same == 0);
    CHECK(pa != pc);
}

TEST_CASE("model: Parameters hands out named views of one buffer", "[model]") {
    Parameters<float> params(10, 3);
    auto w = params.add("w", Shape{2, 3}, nanogpt::Init::normal(1.0));
    auto b = params.add("b", Shape{3}, nanogpt::Init::ones());
    CHECK(params.used() == 9);
    CHECK(w.data() == params.data());
    CHECK(b.data() == params.data() + 6);
    CHECK(b.grad() == params.grad() + 6);
    CHECK(b.to_vector() == std::vector<float>(3, 1.0f));
    CHECK(params.find("b").data() == b.data());
    b.grad()[1] = 4.0f;
    params.zero_grad();
    CHECK(b.grad()[1] == 0.0f);
    SECTION("capacity exceeded") {
        CHECK_THROWS_AS(params.add("c", Shape{2}, nanogpt::Init::zeros()), std::logic_error);
        CHECK_THROWS_WITH(params.add("c", Shape{2}, nanogpt::Init::zeros()),
                          Contains("'c'") && Contains("10"));
    }
    SECTION("duplicate name") {
        CHECK_THROWS_AS(params.add("w", Shape{1}, nanogpt::Init::zeros()), std::invalid_argument);
        CHECK_THROWS_WITH(params.add("w", Shape{1}, nanogpt::Init::zeros()), Contains("'w'"));
    }
    SECTION("unknown name") {
        CHECK_THROWS_AS(params.find("x"), std::invalid_argument);
        CHECK_THROWS_WITH(params.find("x"), Contains("'x'"));
    }
}

// ---- forward ----

TEST_CASE("model: forward shapes and loss", "[model]") {
    GPT<float> model(GPTConfig::tiny());
    const Ids idx = random_ids(Shape{3, 10}, 32, 1), targets = random_ids(Shape{3, 10}, 32, 2);
    const auto out = model.forward(idx, targets);
    CHECK(out.logits.shape() == Shape{3, 10, 32});
    CHECK(out.loss.shape() == Shape{1});
    CHECK(std::isfinite(out.loss.item()));
    const auto no_targets = model.forward(idx);
    CHECK(no_targets.logits.shape() == Shape{3, 10, 32});
    CHECK_FALSE(no_targets.loss.defined());
}

TEST_CASE("model: the reference configuration runs a forward pass", "[model][slow]") {
    // GPT-2 small's 12 x 12 x 768 over 512 positions: a 124M-parameter forward, B = 1.
    GPT<float> model(GPTConfig::reference());
    CHECK(model.num_parameters() == GPTConfig::reference().num_parameters());
    const Ids idx = random_ids(Shape{1, 512}, 50257, 3);
    nanogpt::NoGradGuard no_grad;
    const auto out = model.forward(idx);
    REQUIRE(out.logits.shape() == Shape{1, 512, 50257});
    const float* logits = out.logits.data();
    CHECK(
        std::all_of(logits, logits + out.logits.numel(), [](float v) { return std::isfinite(v); }));
    CHECK(nanogpt::Tape::current().num_nodes() == 0);
}

TEST_CASE("model: causality", "[model]") {
    GPT<float> model(GPTConfig::tiny(), 3);
    perturb(model.parameters(), 4, 0.2);  // larger weights: every token visibly matters
    const std::int64_t T = 12, V = 32, t = 5;
    const Ids idx = random_ids(Shape{2, T}, V, 5);
    const std::vector<float> before = model.forward(idx).logits.to_vector();
    Ids changed = Ids::from_vector(idx.shape(), idx.to_vector());
    changed.data()[t] = (changed.data()[t] + 1) % V;  // batch row 0, position t
    const std::vector<float> after = model.forward(changed).logits.to_vector();

    auto max_change = [&](std::int64_t b, std::int64_t pos) {
        float worst = 0.0f;
        for (std::int64_t v = 0; v < V; ++v) {
            const std::size_t i = static_cast<std::size_t>((b * T + pos) * V + v);
            worst = std::max(worst, std::fabs(after[i] - before[i]));
        }
        return worst;
    };
    for (std::int64_t pos = 0; pos < t; ++pos) {
        INFO("position " << pos);
        CHECK(max_change(0, pos) <= 1e-6f);
    }
    CHECK(max_change(0, t) > 1e-3f);
    CHECK(max_change(0, T - 1) > 1e-3f);
    for (std::int64_t pos = 0; pos < T; ++pos) {
        INFO("other batch row, position " << pos);
        CHECK(max_change(1, pos) <= 1e-6f);
    }
}

TEST_CASE("model: initial loss is close to ln(vocab_size)", "[model]") {
    for (const GPTConfig& c : {GPTConfig::tiny(), GPTConfig::cpu_small()}) {
        INFO("vocab " << c.vocab_size);
        GPT<float> model(c, 21);
        const Ids idx = random_ids(Shape{4, c.block_size}, c.vocab_size, 22);
        const Ids targets = random_ids(Shape{4, c.block_size}, c.vocab_size, 23);
        const float loss = model.forward(idx, targets).loss.item();
        CHECK(loss == Approx(std::log(static_cast<double>(c.vocab_size))).margin(0.2));
    }
}

TEST_CASE("model: a tiny model overfits one batch", "[model]") {
    GPT<float> model(GPTConfig::tiny(), 31);
    nanogpt::AdamW<float> opt(model.parameters(), nanogpt::AdamWConfig{0.9, 0.95, 1e-8, 0.0});
    const Ids x = random_ids(Shape{2, 16}, 32, 32), y = random_ids(Shape{2, 16}, 32, 33);
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 100; ++step) {
        auto out = model.forward(x, y);
        last = out.loss.item();
        if (step == 0) first = last;
        model.zero_grad();
        out.loss.backward();
        nanogpt::clip_grad_norm(model.parameters(), 1.0);
        opt.step(1e-2);
    }
    INFO("loss " << first << " -> " << last);
    CHECK(first > 3.0f);
    CHECK(last < 0.1f);
}

TEST_CASE("model: training is reproducible from the seed", "[model]") {
    GPTConfig c = GPTConfig::tiny();
    c.dropout = 0.1;  // the dropout generator must be reproducible too
    auto run = [&](std::vector<float>& losses) {
        GPT<float> model(c, 41);
        nanogpt::AdamW<float> opt(model.parameters());
        const Ids x = random_ids(Shape{2, 16}, 32, 42), y = random_ids(Shape{2, 16}, 32, 43);
        for (int step = 0; step < 5; ++step) {
            auto out = model.forward(x, y);
            losses.push_back(out.loss.item());
            model.zero_grad();
            out.loss.backward();
            nanogpt::clip_grad_norm(model.parameters(), 1.0);
            opt.step(1e-3);
        }
        return parameter_values(model);
    };
    std::vector<float> losses_a, losses_b;
    const auto params_a = run(losses_a);
    const auto params_b = run(losses_b);
    REQUIRE(losses_a.size() == 5);
    CHECK(std::memcmp(losses_a.data(), losses_b.data(), 5 * sizeof(float)) == 0);
    REQUIRE(params_a.size() == params_b.size());
    CHECK(std::memcmp(params_a.data(), params_b.data(), params_a.size() * sizeof(float)) == 0);
    CHECK(losses_a.back() < losses_a.front());
}

TEST_CASE("model: training with composed attention gives the fused losses", "[model][attention]") {
    // The switch picks how attention is computed, not what: 10 AdamW steps with dropout on the
    // attention weights (the same masks for the same seed) follow the same losses either way.
    GPTConfig c = GPTConfig::tiny();
    c.dropout = 0.1;
    auto run = [&](bool fused) {
        GPT<float> model(c, 45);
        model.set_fused_attention(fused);
        CHECK(model.fused_attention() == fused);
        nanogpt::AdamW<float> opt(model.parameters());
        const Ids x = random_ids(Shape{2, 16}, 32, 46), y = random_ids(Shape{2, 16}, 32, 47);
        std::vector<float> losses;
        for (int step = 0; step < 10; ++step) {
            auto out = model.forward(x, y);
            losses.push_back(out.loss.item());
            model.zero_grad();
            out.loss.backward();
            nanogpt::clip_grad_norm(model.parameters(), 1.0);
            opt.step(1e-2);
        }
        return losses;
    };
    const std::vector<float> fused = run(true), composed = run(false);
    REQUIRE(fused.size() == composed.size());
    for (std::size_t i = 0; i < fused.size(); ++i) {
        INFO("step " << i);
        CHECK(composed[i] == Approx(fused[i]).epsilon(1e-4));
    }
    CHECK(fused.back() < fused.front() - 0.5f);  // it trained, so the comparison means something
}

TEST_CASE("model: loss and gradients do not depend on the thread count", "[model]") {
    const int threads = nanogpt::num_threads();
    auto run = [](int n, float& loss) {
        nanogpt::set_num_threads(n);
        GPT<float> model(GPTConfig::cpu_small(), 71);
        const Ids x = random_ids(Shape{2, 64}, 65, 72), y = random_ids(Shape{2, 64}, 65, 73);
        auto out = model.forward(x, y);
        loss = out.loss.item();
        model.zero_grad();
        out.loss.backward();
        const auto& p = model.parameters();
        return std::vector<float>(p.grad(), p.grad() + p.size());
    };
    float loss1 = 0.0f, loss2 = 0.0f;
    const auto grad1 = run(1, loss1);
    const auto grad2 = run(2, loss2);
    nanogpt::set_num_threads(threads);
    CHECK(std::memcmp(&loss1, &loss2, sizeof(float)) == 0);
    REQUIRE(grad1.size() == grad2.size());
    CHECK(std::memcmp(grad1.data(), grad2.data(), grad1.size() * sizeof(float)) == 0);
}

TEST_CASE("model: forward rejects bad inputs", "[model]") {
    GPT<float> model(GPTConfig::tiny());  // block 16, vocab 32
    SECTION("sequence longer than block_size") {
        const Ids idx = random_ids(Shape{1, 17}, 32, 1);
        CHECK_THROWS_AS(model.forward(idx), std::invalid_argument);
        CHECK_THROWS_WITH(model.forward(idx), Contains("17") && Contains("block_size = 16"));
    }
    SECTION("idx not [B, T]") {
        const Ids idx = random_ids(Shape{8}, 32, 1);
        CHECK_THROWS_WITH(model.forward(idx), Contains("idx") && Contains("[8]"));
    }
    SECTION("targets shape does not match idx") {
        const Ids idx = random_ids(Shape{2, 4}, 32, 1), targets = random_ids(Shape{4, 2}, 32, 2);
        CHECK_THROWS_AS(model.forward(idx, targets), std::invalid_argument);
        CHECK_THROWS_WITH(model.forward(idx, targets),
                          Contains("targets [4, 2]") && Contains("[2, 4]"));
    }
    SECTION("token id out of range") {
        Ids idx = random_ids(Shape{1, 4}, 32, 1);
        idx.data()[2] = 32;
        CHECK_THROWS_AS(model.forward(idx), std::out_of_range);
        CHECK_THROWS_WITH(model.forward(idx), Contains("token id 32"));
    }
    SECTION("target out of range") {
        const Ids idx = random_ids(Shape{1, 4}, 32, 1);
        Ids targets = random_ids(Shape{1, 4}, 32, 2);
        targets.data()[1] = 40;
        CHECK_THROWS_AS(model.forward(idx, targets), std::out_of_range);
        CHECK_THROWS_WITH(model.forward(idx, targets), Contains("target 40"));
    }
}

TEST_CASE("model: dropout is active in train mode only", "[model]") {
    GPTConfig c = GPTConfig::tiny();
    c.dropout = 0.2;
    GPT<float> model(c, 51);
    GPTConfig c0 = c;
    c0.dropout = 0.0;
    GPT<float> plain(c0, 51);  // the same parameters, no dropout
    const Ids idx = random_ids(Shape{2, 8}, 32, 52);

    REQUIRE(model.training());
    const auto train1 = model.forward(idx).logits.to_vector();
    const auto train2 = model.forward(idx).logits.to_vector();
    CHECK(train1 != train2);  // fresh masks each call

    model.eval();
    CHECK_FALSE(model.training());
    const auto eval1 = model.forward(idx).logits.to_vector();
    const auto eval2 = model.forward(idx).logits.to_vector();
    CHECK(eval1 == eval2);
    CHECK(eval1 == plain.forward(idx).logits.to_vector());  // eval is dropout-free
    CHECK(eval1 != train1);

    model.train();
    CHECK(model.training());
}

// ---- generate ----

TEST_CASE("model: generate", "[model]") {
    GPT<float> model(GPTConfig::tiny(), 61);  // block 16, vocab 32
    perturb(model.parameters(), 62, 0.2);     // spread the logits: no near-ties for argmax
    const std::vector<std::int32_t> prompt{1, 2, 3};

    SECTION("returns the prompt plus n tokens, all in range") {
        Random rng(1);
        std::vector<std::int32_t> seen;
        const auto out = model.generate(prompt, 10, SamplingOptions{}, rng,
                                        [&](std::int32_t t) { seen.push_back(t); });
        REQUIRE(out.size() == 13);
        CHECK(std::equal(prompt.begin(), prompt.end(), out.begin()));
        for (const std::int32_t t : out) CHECK((t >= 0 && t < 32));
        CHECK(seen == std::vector<std::int32_t>(out.begin() + 3, out.end()));
        CHECK(model.generate(prompt, 0, SamplingOptions{}, rng) == prompt);
    }
    SECTION("deterministic given the generator's seed") {
        Random a(7), b(7), c(8);
        const auto out_a = model.generate(prompt, 12, SamplingOptions{}, a);
        CHECK(model.generate(prompt, 12, SamplingOptions{}, b) == out_a);
        CHECK(model.generate(prompt, 12, SamplingOptions{}, c) != out_a);
    }
    SECTION("top_k = 1 is the argmax of forward's last position") {
        Random rng(9);
        SamplingOptions greedy;
        greedy.top_k = 1;
        const auto out = model.generate(prompt, 20, greedy, rng);  // runs past block_size
        std::vector<std::int32_t> seq = prompt;
        while (seq.size() < out.size()) {
            const auto len = std::min<std::int64_t>(static_cast<std::int64_t>(seq.size()), 16);
            const Ids idx = Ids::from_vector(Shape{1, len},
                                             std::vector<std::int32_t>(seq.end() - len, seq.end()));
            const auto logits = model.forward(idx).logits;
            seq.push_back(argmax(logits.data() + (len - 1) * 32, 32));
        }
        CHECK(out == seq);
    }
    SECTION("a prompt longer than block_size is cropped to its last block_size tokens") {
        std::vector<std::int32_t> long_prompt(21);
        for (std::size_t i = 0; i < long_prompt.size(); ++i)
            long_prompt[i] = static_cast<std::int32_t>(i % 32);
        Random a(3), b(3);
        const auto out = model.generate(long_prompt, 4, SamplingOptions{}, a);
        REQUIRE(out.size() == 25);
        const std::vector<std::int32_t> cropped(long_prompt.end() - 16, long_prompt.end());
        const auto out_cropped = model.generate(cropped, 4, SamplingOptions{}, b);
        CHECK(std::equal(out.begin() + 21, out.end(), out_cropped.begin() + 16));
    }
    SECTION("keeps the training mode") {
        Random rng(1);
        model.train();
        model.generate(prompt, 2, SamplingOptions{}, rng);
        CHECK(model.training());
        model.eval();
        model.generate(prompt, 2, SamplingOptions{}, rng);
        CHECK_FALSE(model.training());
    }
    SECTION("a non-finite logit is an error") {
        Random rng(1);
        model.parameters().find("wte.weight").data()[0] = std::numeric_limits<float>::quiet_NaN();
        CHECK_THROWS_AS(model.generate(prompt, 3, SamplingOptions{}, rng), std::runtime_error);
        CHECK_THROWS_WITH(model.generate(prompt, 3, SamplingOptions{}, rng),
                          Contains("non-finite"));
    }
    SECTION("invalid arguments") {
        Random rng(1);
        auto with = [](auto change) {
            SamplingOptions o;
            change(o);
            return o;
        };
        const auto zero_temperature = with([](SamplingOptions& o) { o.temperature = 0.0; });
        CHECK_THROWS_AS(model.generate(prompt, 1, zero_temperature, rng), std::invalid_argument);
        CHECK_THROWS_WITH(model.generate(prompt, 1, zero_temperature, rng),
                          Contains("temperature"));
        CHECK_THROWS_WITH(
            model.generate(prompt, 1, with([](SamplingOptions& o) { o.top_k = -1; }), rng),
            Contains("top_k"));
        CHECK_THROWS_WITH(
            model.generate(prompt, 1, with([](SamplingOptions& o) { o.top_p = 0.0; }), rng),
            Contains("top_p"));
        CHECK_THROWS_WITH(
            model.generate(prompt, 1, with([](SamplingOptions& o) { o.top_p = 1.5; }), rng),
            Contains("top_p"));
        CHECK_THROWS_WITH(model.generate({}, 1, SamplingOptions{}, rng), Contains("prompt"));
        CHECK_THROWS_WITH(model.generate(prompt, -1, SamplingOptions{}, rng),
                          Contains("max_new_tokens"));
        CHECK_THROWS_AS(model.generate({1, 32}, 1, SamplingOptions{}, rng), std::out_of_range);
        CHECK_THROWS_WITH(model.generate({1, 32}, 1, SamplingOptions{}, rng),
                          Contains("token id 32"));
    }
}

TEST_CASE("model: generate restores the training mode when it throws", "[model]") {
    GPT<float> model(GPTConfig::tiny(), 61);
    model.parameters().find("wte.weight").data()[0] = std::numeric_limits<float>::quiet_NaN();
    Random rng(1);
    model.train();
    CHECK_THROWS_AS(model.generate({1, 2, 3}, 3, SamplingOptions{}, rng), std::runtime_error);
    CHECK(model.training());
}

TEST_CASE("model: on_gradients_ready reports final gradients from the top down", "[model]") {
    // Data-parallel training starts reducing [begin, end of buffer) when the backward reports it:
    // at each report, those gradients must already have their final values.
    GPTConfig c = GPTConfig::tiny();
    GPT<float> model(c, 5);
    const Ids x = random_ids(Shape{2, 16}, 32, 6), y = random_ids(Shape{2, 16}, 32, 7);
    const std::int64_t n = model.parameters().size();
    std::vector<std::int64_t> reported;
    std::vector<std::vector<float>> seen;  // the gradients [begin, n) at each report
    model.on_gradients_ready([&](std::int64_t begin) {
        reported.push_back(begin);
        const float* g = model.parameters().grad();
        seen.emplace_back(g + begin, g + n);
    });
    model.zero_grad();
    auto out = model.forward(x, y);
    out.loss.backward();
    const std::vector<std::int64_t> expected = model.gradient_ready_offsets();
    REQUIRE(expected.size() == static_cast<std::size_t>(c.n_layer + 1));
    CHECK(reported == expected);
    CHECK(std::is_sorted(expected.rbegin(), expected.rend()));
    CHECK(expected.front() == model.parameters().find("ln_f.weight").data() -
                                  model.parameters().data());
    CHECK(expected.back() == model.parameters().find("h.0.ln_1.weight").data() -
                                 model.parameters().data());
    for (std::size_t k = 0; k < reported.size(); ++k) {
        const float* final_grad = model.parameters().grad() + reported[k];
        CHECK(std::equal(seen[k].begin(), seen[k].end(), final_grad));
    }
    SECTION("no reports without grad, nor after the hook is removed") {
        reported.clear();
        {
            nanogpt::NoGradGuard no_grad;
            (void)model.forward(x, y);
        }
        CHECK(reported.empty());
        model.on_gradients_ready({});
        model.zero_grad();
        model.forward(x, y).loss.backward();
        CHECK(reported.empty());
    }
}

// ---- dtype ----

TEST_CASE("model: dtype bfloat16 rounds the products of forward and backward", "[model][dtype]") {
    using namespace nanogpt;
    GPTConfig config{16, 65, 2, 2, 64, 0.0, true};
    const Ids idx = random_ids(Shape{2, 16}, 65, 3), targets = random_ids(Shape{2, 16}, 65, 4);
    // Loss and gradients of one forward/backward; during_backward: the process-wide dtype while
    // backward runs (the tape should not care: each op replays its forward's dtype).
    const auto run = [&](Dtype dtype, Dtype during_backward) {
        config.dtype = dtype;
        GPT<float> model(config, 11);
        auto out = model.forward(idx, targets);
        CHECK(matmul_dtype() == Dtype::float32);  // forward's scope ended
        model.zero_grad();
        {
            MatmulDtypeScope scope(during_backward);
            out.loss.backward();
        }
        const auto& p = model.parameters();
        std::vector<float> result(p.grad(), p.grad() + p.size());
        result.push_back(out.loss.data()[0]);  // the loss last
        return result;
    };
    const auto fp32 = run(Dtype::float32, Dtype::float32);
    const auto bf16 = run(Dtype::bfloat16, Dtype::float32);
    CHECK(bf16 == run(Dtype::bfloat16, Dtype::bfloat16));  // the backward kept bfloat16
    CHECK(fp32 == run(Dtype::float32, Dtype::bfloat16));   // and float32
    CHECK(bf16 == run(Dtype::bfloat16, Dtype::float32));   // deterministic
    // Close to float32 (bfloat16 keeps ~3 digits), but not equal: the products were rounded.
    CHECK(std::fabs(bf16.back() - fp32.back()) < 0.01);
    CHECK(bf16.back() != fp32.back());
    double diff = 0, norm = 0;
    for (std::size_t i = 0; i + 1 < fp32.size(); ++i)
        diff += double(bf16[i] - fp32[i]) * (bf16[i] - fp32[i]), norm += double(fp32[i]) * fp32[i];
    INFO("relative gradient difference " << std::sqrt(diff / norm));
    CHECK(std::sqrt(diff / norm) < 0.02);
    CHECK(diff > 0);
}

TEST_CASE("model: set_dtype and its validation", "[model][dtype]") {
    using namespace nanogpt;
    GPT<float> model(GPTConfig::tiny(), 1);
    CHECK(model.config().dtype == Dtype::float32);
    model.set_dtype(Dtype::bfloat16);
    CHECK(model.config().dtype == Dtype::bfloat16);
    GPTConfig bad = GPTConfig::tiny();
    bad.dtype = static_cast<Dtype>(7);
    CHECK_THROWS_WITH(bad.validate(), "GPTConfig: dtype = 7 is not float32 (0) or bfloat16 (1)");
}

TEST_CASE("model: destroying a model orphans the graph its forward left on the tape", "[model]") {
    GPTConfig config = GPTConfig::tiny();
    Tensor<std::int32_t> idx(Shape{1, 4}), targets(Shape{1, 4});
    for (std::int32_t i = 0; i < 4; ++i) idx.data()[i] = i, targets.data()[i] = i + 1;
    Tensor<float> loss;
    {
        GPT<float> model(config, 1);
        loss = model.forward(idx, targets).loss;  // nodes that write into model's gradients
    }  // destroyed without a backward
    CHECK(std::isfinite(loss.item()));  // the graph's tensors stay readable
    // Raw ops after it, still on that graph: their backward must not run the model's nodes into
    // its freed gradients; it names the problem instead.
    const auto x = Tensor<float>::from_vector(Shape{3}, {1.0f, 2.0f, 3.0f}, true);
    Tensor<float> y = nanogpt::sum(nanogpt::gelu(x));
    REQUIRE_THROWS_AS(y.backward(), std::logic_error);
    REQUIRE_THROWS_WITH(y.backward(), Catch::Contains("was destroyed"));
    {  // with a graph of their own they work
        nanogpt::GraphScope scope;
        nanogpt::sum(nanogpt::gelu(x)).backward();
        CHECK(x.grad()[2] > 0.9f);
    }
    SECTION("a moved model hands its graph over: its backward still works") {
        std::optional<GPT<float>> first;
        first.emplace(config, 2);
        Tensor<float> moved_loss = first->forward(idx, targets).loss;
        GPT<float> second(std::move(*first));
        first.reset();  // the moved-from shell goes; the graph belongs to `second` now
        second.zero_grad();
        moved_loss.backward();
        const float* g = second.parameters().grad();
        double norm = 0;
        for (std::int64_t i = 0; i < second.parameters().size(); ++i) norm += double(g[i]) * g[i];
        CHECK(norm > 0);
    }
}
