// Tests for tape_print.hpp (and Tape::listing): the listing of a small hand-made graph entry by
// entry, the listing of a tiny GPT's forward (every op reads earlier ops or named leaves, in both
// attention modes), and the DOT text's structure (every edge joins declared nodes).
#include <catch2/catch.hpp>

#include <cmath>    // std::isfinite
#include <cstddef>  // std::size_t
#include <cstdint>  // std::int32_t, std::int64_t
#include <set>      // std::set
#include <sstream>  // std::ostringstream, std::istringstream
#include <string>   // std::string, std::getline
#include <vector>   // std::vector

#include <nanogpt/model.hpp>
#include <nanogpt/ops/elementwise.hpp>
#include <nanogpt/ops/matmul.hpp>
#include <nanogpt/tape.hpp>
#include <nanogpt/tape_print.hpp>

#include "gradcheck.hpp"

namespace {

using Catch::Matchers::Contains;
using nanogpt::Shape;
using nanogpt::Tape;
using nanogpt::Tensor;
using nanogpt::test::random_ids;
using nanogpt::test::random_tensor;

/// Checks a DOT text's structure: the header, one statement per line, every edge between nodes
/// declared earlier, and the closing brace. Returns the number of edges.
std::size_t check_dot_structure(const std::string& dot, std::size_t expected_ops) {
    std::istringstream lines(dot);
    std::string line;
    REQUIRE(std::getline(lines, line));
    CHECK(line == "digraph tape {");
    std::set<std::string> declared;
    std::size_t ops = 0, edges = 0;
    bool closed = false;
    while (std::getline(lines, line)) {
        INFO("line: " << line);
        REQUIRE_FALSE(closed);  // nothing after the closing brace
        if (line == "}") {
            closed = true;
            continue;
        }
        REQUIRE(line.size() > 3);
        CHECK(line.back() == ';');
        const auto arrow = line.find(" -> ");
        if (arrow != std::string::npos) {
            const std::string from = line.substr(2, arrow - 2);
            const std::string to = line.substr(arrow + 4, line.size() - arrow - 5);
            CHECK(declared.count(from) == 1);
            CHECK(declared.count(to) == 1);
            ++edges;
        } else if (line.find(" [") != std::string::npos && line[2] != ' ') {
            const std::string id = line.substr(2, line.find(" [") - 2);
            if (id == "node" || id == "rankdir=TB;") continue;
            CHECK(declared.insert(id).second);  // each node declared once
            if (id[0] == 'n') ++ops;
        }
    }
    CHECK(closed);
    CHECK(ops == expected_ops);
    return edges;
}

}  // namespace

TEST_CASE("tape_print: the listing of a small graph", "[tape]") {
    Tape::current().begin_graph();
    const auto a = random_tensor<float>(Shape{2, 3}, 1, true);
    const auto b = random_tensor<float>(Shape{3, 4}, 2, true);
    const auto m = nanogpt::matmul(a, b);       // #0 (2, 4)
    const auto g = nanogpt::gelu(m);            // #1 (2, 4)
    auto s = nanogpt::sum(nanogpt::add(g, m));  // #2 add, #3 sum
    const auto entries = Tape::current().listing();
    REQUIRE(entries.size() == 4);
    CHECK(std::string(entries[0].name) == "matmul");
    CHECK(std::string(entries[1].name) == "gelu");
    CHECK(std::string(entries[2].name) == "add");
    CHECK(std::string(entries[3].name) == "sum");
    SECTION("output shapes") {
        CHECK(entries[0].ndim == 2);
        CHECK(entries[0].dims[0] == 2);
        CHECK(entries[0].dims[1] == 4);
        CHECK(entries[3].ndim == 1);
        CHECK(entries[3].dims[0] == 1);
    }
    SECTION("inputs: leaves by address, earlier ops by id, in argument order") {
        REQUIRE(entries[0].inputs.size() == 2);
        CHECK(entries[0].inputs[0].node == -1);
        CHECK(entries[0].inputs[0].address == a.data());
        CHECK(entries[0].inputs[1].address == b.data());
        REQUIRE(entries[2].inputs.size() == 2);
        CHECK(entries[2].inputs[0].node == 1);
        CHECK(entries[2].inputs[1].node == 0);
        REQUIRE(entries[3].inputs.size() == 1);
        CHECK(entries[3].inputs[0].node == 2);
    }
    SECTION("activation bytes: at least each output, and nothing from before the graph") {
        for (std::size_t i = 0; i < 3; ++i) CHECK(entries[i].activation_bytes >= 8 * sizeof(float));
        CHECK(entries[3].activation_bytes >= sizeof(float));
        CHECK(entries[0].activation_bytes < 1024);  // 8 floats, rounded up to a cache line
    }
    SECTION("print_tape names the leaves it is given and counts the rest") {
        std::ostringstream text;
        nanogpt::print_tape(text, {{a.data(), "a [2, 3]"}});
        const std::string listing = text.str();
        CHECK_THAT(listing,
                   Contains("matmul") && Contains("[2, 4]") && Contains("a [2, 3], leaf1"));
        CHECK_THAT(listing, Contains("#1, #0"));
        CHECK_THAT(listing, Contains("4 ops, 2 leaves"));
    }
    SECTION("write_dot: 4 boxes, 2 leaves, 6 edges") {
        std::ostringstream dot;
        nanogpt::write_dot(dot);
        CHECK(check_dot_structure(dot.str(), 4) == 6);
        CHECK_THAT(dot.str(), Contains("leaf0 -> n0;") && Contains("n1 -> n2;"));
    }
    SECTION("backward consumes the nodes") {
        s.backward();
        CHECK(Tape::current().listing().empty());
    }
}

TEST_CASE("tape_print: a GPT's tape, fused and composed attention", "[tape][model]") {
    const nanogpt::GPTConfig config = nanogpt::GPTConfig::tiny();  // 2 layers, 2 heads
    nanogpt::GPT<float> model(config, 5);
    const auto x = random_ids(Shape{2, 8}, config.vocab_size, 6);
    const auto y = random_ids(Shape{2, 8}, config.vocab_size, 7);
    const nanogpt::LeafNames names = nanogpt::parameter_names(model.parameters());
    std::size_t fused_ops = 0;
    for (const bool fused : {true, false}) {
        DYNAMIC_SECTION((fused ? "fused" : "composed") << " attention") {
            model.set_fused_attention(fused);
            const auto out = model.forward(x, y);
            const auto entries = Tape::current().listing();
            REQUIRE_FALSE(entries.empty());
            CHECK(std::string(entries.back().name) == "cross_entropy");
            std::size_t softmaxes = 0, attentions = 0;
            for (std::size_t i = 0; i < entries.size(); ++i) {
                INFO("op #" << i << " " << entries[i].name);
                CHECK_FALSE(entries[i].inputs.empty());  // every op says what it read
                for (const auto& in : entries[i].inputs) {
                    CHECK(in.node < static_cast<std::int32_t>(i));
                    if (in.node < 0) CHECK(in.address != nullptr);
                }
                CHECK(entries[i].activation_bytes > 0);
                const std::string name = entries[i].name;
                softmaxes += name == "softmax";
                attentions += name == "causal_self_attention";
            }
            CHECK(softmaxes == (fused ? 0u : static_cast<std::size_t>(config.n_layer)));
            CHECK(attentions == (fused ? static_cast<std::size_t>(config.n_layer) : 0u));
            if (fused) fused_ops = entries.size();
            // Each composed layer replaces 1 op by 11 (3 slices, 3 transposes, matmul, scale,
            // softmax, matmul, transpose).
            if (!fused && fused_ops > 0)
                CHECK(entries.size() == fused_ops + 10 * static_cast<std::size_t>(config.n_layer));

            std::ostringstream text;
            nanogpt::print_tape(text, names);
            for (const auto& info : model.parameters().infos())
                CHECK_THAT(text.str(), Contains(info.name));
            std::ostringstream dot;
            nanogpt::write_dot(dot, names);
            std::size_t inputs = 0;
            for (const auto& e : entries) inputs += e.inputs.size();
            CHECK(check_dot_structure(dot.str(), entries.size()) == inputs);
            CHECK(std::isfinite(out.loss.item()));
        }
    }
    model.set_fused_attention(true);
}
