// nanogpt.hpp — train and sample GPT models on a CPU, in standard C++20.
//
// This umbrella header is the table of contents; read the headers in this order:
//
//   Tensor<float> values flow through ops, each op records one node on a tape, and
//   loss.backward() replays the tape in reverse to fill every parameter's gradient:
//
//     nanogpt::GPT<float> model(nanogpt::GPTConfig::cpu_small(), /*seed=*/1337);
//     nanogpt::AdamW<float> optimizer(model.parameters());
//     auto [logits, loss] = model.forward(x, y);  // x, y: token ids [B, T]
//     model.zero_grad();
//     loss.backward();
//     nanogpt::clip_grad_norm(model.parameters(), 1.0);
//     optimizer.step(learning_rate);
#pragma once

#include <nanogpt/random.hpp>     // Random: the one seedable generator (xoshiro256**)
#include <nanogpt/threading.hpp>  // set_num_threads, num_threads: the threads every kernel uses
#include <nanogpt/tape.hpp>    // Tape: reverse-mode autograd nodes, graph memory, NoGradGuard
#include <nanogpt/tensor.hpp>  // Shape, Tensor<T>: contiguous storage, grad, ownership rules
#include <nanogpt/dtype.hpp>   // Dtype: float32 or bfloat16 matrix products (nanoGPT's dtype)
#include <nanogpt/ops/elementwise.hpp>  // add (broadcast), mul, scale, gelu, dropout, sum
#include <nanogpt/ops/matmul.hpp>       // matmul (batched, transposed forms), linear
#include <nanogpt/ops/shape.hpp>        // transpose, slice_last (split and merge heads)
#include <nanogpt/ops/norm.hpp>         // layernorm
#include <nanogpt/ops/attention.hpp>    // softmax; attention composed from ops, and fused
#include <nanogpt/ops/embedding.hpp>    // embedding lookup with scatter-add backward
#include <nanogpt/ops/loss.hpp>         // cross_entropy fused with softmax, ignore index -1
#include <nanogpt/parameters.hpp>       // Parameters: one buffer for weights, one for gradients
#include <nanogpt/kv_cache.hpp>   // KVCache: keys and values kept while generating
#include <nanogpt/layers.hpp>     // Linear, Embedding, LayerNorm, CausalSelfAttention, MLP, Block
#include <nanogpt/config.hpp>     // GPTConfig: validation and presets
#include <nanogpt/sampling.hpp>   // temperature, top-k, top-p sampling of one logits row
#include <nanogpt/model.hpp>      // GPT: forward, generate
#include <nanogpt/tape_print.hpp>  // print_tape, write_dot: what a forward recorded, as text or DOT
#include <nanogpt/optim.hpp>      // AdamW, clip_grad_norm, LRSchedule
#include <nanogpt/tokenizer.hpp>  // CharTokenizer: characters <-> ids
#include <nanogpt/bpe_tokenizer.hpp>  // GPT2Tokenizer: GPT-2's byte-level BPE (encoder.json + vocab.bpe)
#include <nanogpt/data.hpp>           // text files, train/val split, random batches
#include <nanogpt/file_io.hpp>        // durable atomic writes, whole-file reads
#include <nanogpt/key_value.hpp>      // `key = value` text files (meta.txt, config.txt), quoting
#include <nanogpt/token_file.hpp>   // train.bin/val.bin (uint16, memory-mapped) and meta.txt
#include <nanogpt/checkpoint.hpp>   // save/load model + optimizer + tokenizer, atomically
#include <nanogpt/safetensors.hpp>    // safetensors files: a JSON header and raw tensors
#include <nanogpt/gpt2_weights.hpp>   // GPT-2 weights in Hugging Face's layout, checked whole before loading
