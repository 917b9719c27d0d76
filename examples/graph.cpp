// graph — look at the tape: builds a small GPT, runs forward and loss on one random batch, and
// prints every op the tape recorded (op, output shape, inputs, activation bytes kept); with
// --dot FILE it also writes the graph for Graphviz (`dot -Tsvg FILE -o graph.svg`).
//
//   ./build/graph                                  # 2 layers, fused attention
//   ./build/graph --fused_attention=false          # every head's ops on the tape
//   ./build/graph --n_layer 1 --dot graph.dot && dot -Tsvg graph.dot -o graph.svg
#include <cstdint>    // std::int32_t, std::int64_t
#include <fstream>    // std::ofstream
#include <iostream>   // std::cout
#include <stdexcept>  // std::runtime_error
#include <string>     // std::string
#include <vector>     // std::vector

#include <nanogpt.hpp>

#include "args.hpp"

namespace {

const char* kHelp = R"(graph: print the tape of one forward pass and loss of a small GPT.

  --n_layer 2               transformer blocks
  --n_head 4                attention heads per block
  --n_embd 64               channels (a multiple of n_head)
  --block_size 16           positions per sequence
  --batch_size 2            sequences in the batch
  --vocab_size 65           token ids are drawn from [0, vocab_size)
  --fused_attention true    false: attention op by op, as nanoGPT writes it
  --dot FILE                also write the graph in Graphviz's DOT language to FILE
  --seed 1337               seed of the weights and the batch
)";

int run(examples::Args& args) {
    nanogpt::GPTConfig config;
    config.n_layer = args.get_int("n_layer", 2);
    config.n_head = args.get_int("n_head", 4);
    config.n_embd = args.get_int("n_embd", 64);
    config.block_size = args.get_int("block_size", 16);
    config.vocab_size = args.get_int("vocab_size", 65);
    config.dropout = 0.0;
    config.bias = true;
    const std::int64_t batch_size = args.get_int("batch_size", 2);
    const bool fused = args.get_bool("fused_attention", true);
    const std::string dot_path = args.get("dot", "");
    const auto seed = static_cast<std::uint64_t>(args.get_int("seed", 1337));
    args.reject_unknown();
    if (batch_size < 1)
        throw std::invalid_argument("option --batch_size must be >= 1, got " +
                                    std::to_string(batch_size));

    nanogpt::GPT<float> model(config, seed);  // the constructor validates the configuration
    model.set_fused_attention(fused);
    nanogpt::Random rng(seed + 1);
    const nanogpt::Shape shape{batch_size, config.block_size};
    nanogpt::Tensor<std::int32_t> x(shape), y(shape);  // (B, T) token ids and their targets
    for (std::int64_t i = 0; i < shape.numel(); ++i) {
        const auto v = static_cast<std::uint64_t>(config.vocab_size);
        x.data()[i] = static_cast<std::int32_t>(rng.uniform_int(v));
        y.data()[i] = static_cast<std::int32_t>(rng.uniform_int(v));
    }
    const auto [logits, loss] = model.forward(x, y);  // (B, T, vocab_size), (1)

    nanogpt::LeafNames names = nanogpt::parameter_names(model.parameters());
    names[x.data()] = "idx " + shape.to_string();
    names[y.data()] = "targets " + shape.to_string();
    std::cout << "GPT: " << config.n_layer << " layers x " << config.n_head << " heads x "
              << config.n_embd / config.n_head << " dims = " << config.n_embd << " channels, "
              << "block_size " << config.block_size << ", vocab " << config.vocab_size << ", "
              << model.num_parameters() << " parameters; batch " << batch_size << "; "
              << (fused ? "fused" : "composed") << " attention\n\n";
    nanogpt::print_tape(std::cout, names);
    std::cout << "loss = " << loss.item() << "\n";
    if (!dot_path.empty()) {
        std::ofstream out(dot_path);
        if (out) nanogpt::write_dot(out, names);
        if (!out) throw std::runtime_error("graph: cannot write '" + dot_path + "'");
        std::cout << "wrote " << dot_path << " (render: dot -Tsvg " << dot_path
                  << " -o graph.svg)\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return examples::run_main(argc, argv, kHelp, run); }
