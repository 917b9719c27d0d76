// gpt2_weights.hpp — GPT-2 weights in the layout Hugging Face publishes (openai-community/gpt2's
// model.safetensors), so a GPT<T> can start from OpenAI's weights, and be saved for PyTorch.
//
// Names are GPT-2's ("wte.weight", "h.0.attn.c_attn.weight", ..., optionally prefixed
// "transformer."). GPT-2 stores the block matrices as Conv1D weights [in, out] (y = x W + b) while
// our Linear keeps PyTorch's [out, in] (y = x W^T + b): c_attn, c_proj and c_fc weights are
// transposed on load and on save. A file is checked whole, every expected tensor's name, shape and
// dtype and nothing unexpected, before the model is built (gpt2_config_from_safetensors), so a
// small file cannot make the program allocate a large model. Builds on safetensors.hpp and
// model.hpp; read next: tests/test_parity_torch.cpp (parity with PyTorch).
#pragma once

#include <cstdint>        // std::int64_t
#include <map>            // std::map
#include <stdexcept>      // std::runtime_error, std::invalid_argument
#include <string>         // std::string, std::to_string
#include <unordered_map>  // std::unordered_map
#include <utility>        // std::pair
#include <vector>         // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/safetensors.hpp>

namespace nanogpt {

namespace detail {

[[noreturn]] inline void gpt2_fail(const std::string& path, const std::string& what) {
    throw std::runtime_error("safetensors '" + path + "': " + what);
}

/// Block matrices (c_attn, c_proj, c_fc) are Conv1D in GPT-2 files: stored [in, out].
inline bool gpt2_is_conv1d(const ParameterInfo& info) {
    return info.name.rfind("h.", 0) == 0 && info.shape.ndim() == 2;
}

/// The shape a parameter has in a GPT-2 file.
inline std::vector<std::int64_t> gpt2_file_shape(const ParameterInfo& info) {
    if (gpt2_is_conv1d(info)) return {info.shape[1], info.shape[0]};
    std::vector<std::int64_t> s;
    for (int i = 0; i < info.shape.ndim(); ++i) s.push_back(info.shape[i]);
    return s;
}

/// The layer index i of a name "h.{i}.rest", or -1 (with `rest` set to what follows "h.{i}.").
inline std::int64_t gpt2_layer_of(const std::string& name, std::string* rest = nullptr) {
    if (name.rfind("h.", 0) != 0) return -1;
    std::size_t p = 2;
    std::int64_t i = 0;
    while (p < name.size() && name[p] >= '0' && name[p] <= '9' && p < 10)
        i = i * 10 + (name[p++] - '0');
    if (p == 2 || p >= name.size() || name[p] != '.' || (name[2] == '0' && p > 3)) return -1;
    if (rest != nullptr) *rest = name.substr(p + 1);
    return i;
}

/// Hugging Face files may carry the attention's causal-mask constants; they are not parameters.
inline bool gpt2_is_mask_buffer(const std::string& name) {
    std::string rest;
    return gpt2_layer_of(name, &rest) >= 0 && (rest == "attn.bias" || rest == "attn.masked_bias");
}

/// __metadata__ "n_head" as a number, or 0 when absent (our files store it; Hugging Face's do not).
inline std::int64_t gpt2_metadata_n_head(const SafetensorsFile& file, const std::string& path) {
    const std::string* text = file.metadata("n_head");
    if (text == nullptr) return 0;
    const bool digits = !text->empty() && text->size() <= 9 &&
                        text->find_first_not_of("0123456789") == std::string::npos &&
                        (*text)[0] != '0';
    if (!digits) gpt2_fail(path, "__metadata__ n_head '" + *text + "' is not a positive count");
    return std::stoll(*text);
}

/// The file's tensors by name, without the "transformer." prefix that some exports add.
inline std::map<std::string, const SafetensorsTensor*> gpt2_index(const SafetensorsFile& file,
                                                                  const std::string& path) {
    std::map<std::string, const SafetensorsTensor*> index;
    for (const auto& t : file.tensors()) {
        const std::string name = t.name.rfind("transformer.", 0) == 0 ? t.name.substr(12) : t.name;
        if (!index.emplace(name, &t).second) {
            throw std::runtime_error("safetensors '" + path + "': tensor '" + name +
                                     "' appears both with and without the 'transformer.' prefix");
        }
    }
    return index;
}

/// Calls visit(name, shape in the file) for every tensor GPT-2 of configuration c holds, in the
/// model's declaration order (layers.hpp); a test checks it against a built model's parameters.
template <class Visit>
void gpt2_for_each_tensor(const GPTConfig& c, Visit visit) {
    const std::int64_t C = c.n_embd;
    visit("wte.weight", std::vector<std::int64_t>{c.vocab_size, C});
    visit("wpe.weight", std::vector<std::int64_t>{c.block_size, C});
    auto norm = [&](const std::string& name) {
        visit(name + ".weight", std::vector<std::int64_t>{C});
        if (c.bias) visit(name + ".bias", std::vector<std::int64_t>{C});
    };
    auto conv1d = [&](const std::string& name, std::int64_t in, std::int64_t out) {
        visit(name + ".weight", std::vector<std::int64_t>{in, out});
        if (c.bias) visit(name + ".bias", std::vector<std::int64_t>{out});
    };
    for (std::int64_t i = 0; i < c.n_layer; ++i) {
        const std::string h = "h." + std::to_string(i) + ".";
        norm(h + "ln_1");
        conv1d(h + "attn.c_attn", C, 3 * C);
        conv1d(h + "attn.c_proj", C, C);
        norm(h + "ln_2");
        conv1d(h + "mlp.c_fc", C, 4 * C);
        conv1d(h + "mlp.c_proj", 4 * C, C);
    }
    norm("ln_f");
}

/// Every tensor GPT-2 of configuration c needs is in `index` with its shape and a float dtype,
/// and nothing else is, but the mask buffers and a tied lm_head.weight of wte's shape.
inline void gpt2_check_tensors(const std::map<std::string, const SafetensorsTensor*>& index,
                               const GPTConfig& c, const std::string& path) {
    std::size_t expected = 0;
    gpt2_for_each_tensor(c, [&](const std::string& name, const std::vector<std::int64_t>& shape) {
        const auto it = index.find(name);
        if (it == index.end()) {
            gpt2_fail(path, "missing tensor '" + name + "' (expected shape " + shape_string(shape) +
                                ")");
        }
        if (it->second->shape != shape) {
            gpt2_fail(path, "tensor '" + name + "' has shape " + shape_string(it->second->shape) +
                                ", expected " + shape_string(shape));
        }
        const std::string& dtype = it->second->dtype;
        if (dtype != "F32" && dtype != "F16" && dtype != "BF16") {
            gpt2_fail(path, "tensor '" + name + "' has dtype " + dtype +
                                ", expected F32 (or F16, BF16)");
        }
        ++expected;
    });
    if (index.size() == expected) return;
    std::map<std::string, bool> wanted;  // only reached when the file has extra tensors
    gpt2_for_each_tensor(c, [&](const std::string& name, const auto&) { wanted[name] = true; });
    for (const auto& [name, t] : index) {
        if (wanted.count(name) != 0 || gpt2_is_mask_buffer(name)) continue;
        if (name != "lm_head.weight")
            gpt2_fail(path, "unexpected tensor '" + name + "' (not a parameter of this model)");
        if (t->shape != index.at("wte.weight")->shape) {
            gpt2_fail(path,
                      "lm_head.weight differs from wte.weight, but this model ties its head to wte");
        }
    }
}

}  // namespace detail

/// The configuration of the GPT-2 stored in a safetensors file. n_layer counts the h.{i} blocks,
/// vocab_size and n_embd come from wte's shape, block_size from wpe's, bias from ln_f.bias. Every
/// other tensor is then checked against that configuration (names, shapes, dtypes), so a file that
/// could not load is rejected here, before a model is allocated.
/// n_head is not in the weights: it is read from __metadata__ "n_head" when present (our files
/// store it), otherwise GPT-2's rule of 64-dimensional heads applies, n_head = n_embd / 64
/// (gpt2 12, -medium 16, -large 20, -xl 25 heads). dropout is 0.
inline GPTConfig gpt2_config_from_safetensors(const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read_header(path);
    const auto index = detail::gpt2_index(file, path);
    auto matrix = [&](const std::string& name) {
        const auto it = index.find(name);
        if (it == index.end()) detail::gpt2_fail(path, "missing tensor '" + name + "'");
        if (it->second->shape.size() != 2) {
            detail::gpt2_fail(path, "tensor '" + name + "' has shape " +
                                        shape_string(it->second->shape) +
                                        ", expected 2 dimensions");
        }
        return it->second->shape;
    };
    const auto wte = matrix("wte.weight"), wpe = matrix("wpe.weight");
    if (wte[1] != wpe[1]) {
        detail::gpt2_fail(path, "wte.weight " + shape_string(wte) + " and wpe.weight " +
                                    shape_string(wpe) + " disagree on n_embd");
    }
    std::vector<bool> layers;  // layers[i]: some tensor is named h.{i}.*
    for (const auto& [name, t] : index) {
        const std::int64_t i = detail::gpt2_layer_of(name);
        if (i < 0) continue;
        if (i >= 100000) detail::gpt2_fail(path, "implausible layer index in '" + name + "'");
        if (static_cast<std::size_t>(i) >= layers.size())
            layers.resize(static_cast<std::size_t>(i) + 1);
        layers[static_cast<std::size_t>(i)] = true;
    }
    for (std::size_t i = 0; i < layers.size(); ++i) {
        if (!layers[i]) {
            detail::gpt2_fail(path, "no tensors for layer h." + std::to_string(i) +
                                        " (layers must be numbered 0..n-1)");
        }
    }
    GPTConfig c{wpe[0],
                wte[0],
                static_cast<std::int64_t>(layers.size()),
                0,
                wte[1],
                0.0,
                index.count("ln_f.bias") > 0};
    c.n_head = detail::gpt2_metadata_n_head(file, path);
    if (c.n_head == 0 && c.n_embd % 64 != 0) {
        detail::gpt2_fail(
            path, "cannot infer n_head: n_embd = " + std::to_string(c.n_embd) +
                      " is not a multiple of GPT-2's head size 64, and __metadata__ has no n_head");
    }
    if (c.n_head == 0) c.n_head = c.n_embd / 64;
    try {
        c.validate();
    } catch (const std::invalid_argument& e) {
        detail::gpt2_fail(path, std::string("inferred an invalid configuration: ") + e.what());
    }
    validate_loaded_config(c, "safetensors '" + path + "'");
    detail::gpt2_check_tensors(index, c, path);  // the whole header, before any model exists
    return c;
}

/// Loads GPT-2 weights (Hugging Face names and layout) into `model`, whose configuration must
/// match the file. Every parameter must be present with its shape; lm_head.weight (equal to wte,
/// since the head is tied) and the attention mask buffers are ignored; any other extra tensor is an
/// error. Nothing is copied unless the whole file checks out.
template <class T>
void load_gpt2_safetensors(GPT<T>& model, const std::string& path) {
    const SafetensorsFile file = SafetensorsFile::read(path);
    const auto index = detail::gpt2_index(file, path);
    Parameters<T>& params = model.parameters();
    const std::int64_t n_head = detail::gpt2_metadata_n_head(file, path);
    if (n_head != 0 && n_head != model.config().n_head) {
        detail::gpt2_fail(
            path, "__metadata__ n_head = " + std::to_string(n_head) +
                      " but the model has n_head = " + std::to_string(model.config().n_head));
    }
    detail::gpt2_check_tensors(index, model.config(), path);
    std::map<std::string, const SafetensorsTensor*> found;
    for (const ParameterInfo& info : params.infos()) {
        const auto it = index.find(info.name);
        if (it == index.end() || it->second->shape != detail::gpt2_file_shape(info))
            throw std::logic_error("load_gpt2_safetensors: the model's layout is not GPT-2's");
        found[info.name] = it->second;
    }
    if (const auto head = index.find("lm_head.weight"); head != index.end()) {
        if (file.to_float(*head->second) != file.to_float(*found["wte.weight"])) {
            detail::gpt2_fail(
                path,
                "lm_head.weight differs from wte.weight, but this model ties its head to wte");
        }
    }
    params.mark_changed();  // before the writes: one that throws midway has changed some already
    for (const ParameterInfo& info : params.infos()) {
        const std::vector<float> v = file.to_float(*found[info.name]);
        T* dst = params.data() + info.offset;
        if (detail::gpt2_is_conv1d(info)) {  // file [in, out] -> ours [out, in]
            const std::int64_t out = info.shape[0], in = info.shape[1];
            for (std::int64_t o = 0; o < out; ++o)
                for (std::int64_t i = 0; i < in; ++i)
                    dst[o * in + i] = static_cast<T>(v[i * out + o]);
        } else {
            for (std::size_t k = 0; k < v.size(); ++k) dst[k] = static_cast<T>(v[k]);
        }
    }
}

/// Saves `model` as openai-community/gpt2's model.safetensors does: Hugging Face names without a
/// prefix, Conv1D weights [in, out], F32, no lm_head (tied); __metadata__ {"format": "pt",
/// "n_head": "..."}. Written atomically.
template <class T>
void save_gpt2_safetensors(const GPT<T>& model, const std::string& path) {
    SafetensorsFile file;
    file.set_metadata("format", "pt");
    file.set_metadata("n_head", std::to_string(model.config().n_head));
    const Parameters<T>& params = model.parameters();
    std::vector<float> v;
    for (const ParameterInfo& info : params.infos()) {
        const T* src = params.data() + info.offset;
        v.resize(static_cast<std::size_t>(info.shape.numel()));
        if (detail::gpt2_is_conv1d(info)) {  // ours [out, in] -> file [in, out]
            const std::int64_t out = info.shape[0], in = info.shape[1];
            for (std::int64_t o = 0; o < out; ++o)
                for (std::int64_t i = 0; i < in; ++i)
                    v[i * out + o] = static_cast<float>(src[o * in + i]);
        } else {
            for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<float>(src[k]);
        }
        file.add(info.name, detail::gpt2_file_shape(info), v.data());
    }
    file.write(path);
}

}  // namespace nanogpt
