// checkpoint.hpp — one binary file holds everything needed to sample from a model or resume
// its training exactly. Layout of version 3 (all integers and floats little-endian, as on x86 and
// ARM; docs/formats.md describes every version and how to add a field):
//
//   magic "NGPTCKPT" (8 bytes) | u32 format version (3) | u32 bytes per element (4 or 8)
//   u64 total file size in bytes (so truncation is reported as such)
//   u32 element type (0 float32, 1 float64)                                 [version 2 and later]
//   config:    i64 block_size, vocab_size, n_layer, n_head, n_embd | f64 dropout | u8 bias
//              | u8 dtype (0 float32, 1 bfloat16)                               [version 3 and later]
//   tokenizer: u32 kind (0 none, 1 characters) | u64 n | n x (u32 length, UTF-8 bytes)
//   training:  i64 iter | f64 best_val_loss | 2 x generator state (model dropout, data sampler)
//   weights:   u64 n | n elements
//   optimizer: u8 present | [f64 beta1, beta2, eps, weight_decay | i64 steps | n elements m | n v]
//   u64 FNV-1a hash of every byte before it
//
// Files are written durably and atomically (file_io.hpp), so a crash mid-write never destroys the
// previous checkpoint. The reader accepts every version from 1 to kCheckpointVersion. It checks the
// size, magic, version and hash before parsing, then every field against the bytes that remain
// BEFORE allocating anything for it, and the configuration against the limits in config.hpp; a
// truncated, corrupt or mismatched file throws std::runtime_error naming the file. The hash detects
// accidents, not attacks: anyone can recompute it, so the checks never rely on it.
// PendingCheckpoint holds a checkpoint until the training step after it has proved the weights
// sound (the divergence rule, docs/formats.md).
// Builds on model.hpp and optim.hpp; read next: safetensors.hpp.
#pragma once

#include <algorithm>    // std::copy, std::min
#include <cerrno>       // errno
#include <cstdint>      // fixed-width integers
#include <cstdio>       // std::FILE, std::fopen, std::fread, std::fseek
#include <cstring>      // std::memcpy
#include <filesystem>   // std::filesystem::file_size, is_regular_file
#include <memory>       // std::unique_ptr
#include <limits>       // std::numeric_limits
#include <stdexcept>    // std::runtime_error
#include <string>       // std::string
#include <system_error>  // std::error_code
#include <type_traits>  // std::type_identity_t (so nullptr can be passed as the optimizer), is_same
#include <utility>      // std::move
#include <vector>       // std::vector

#include <nanogpt/config.hpp>
#include <nanogpt/detail/hash.hpp>
#include <nanogpt/file_io.hpp>
#include <nanogpt/random.hpp>
#include <nanogpt/model.hpp>
#include <nanogpt/optim.hpp>

namespace nanogpt {

inline constexpr char kCheckpointMagic[8] = {'N', 'G', 'P', 'T', 'C', 'K', 'P', 'T'};
/// The version save_checkpoint writes; load_checkpoint reads this one and every earlier one.
inline constexpr std::uint32_t kCheckpointVersion = 3;

/// The element type code of version 2 headers.
template <class T>
constexpr std::uint32_t checkpoint_element_type() {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                  "checkpoints hold float or double");
    return std::is_same_v<T, float> ? 0 : 1;
}

/// Where a training run stands, saved so that resuming continues it exactly.
struct TrainingState {
    std::int64_t iter = 0;  // the next iteration to run
    double best_val_loss = std::numeric_limits<double>::infinity();
    Random::State data_rng{};  // the batch sampler's generator
};

/// Everything a checkpoint file holds, in memory.
template <class T>
struct Checkpoint {
    GPTConfig config;
    std::vector<std::string> vocabulary;  // character tokenizer symbols (empty: none saved)
    TrainingState training;
    Random::State dropout_rng{};
    std::vector<T> weights;
    bool has_optimizer = false;
    AdamWConfig adamw;
    std::int64_t adamw_steps = 0;
    std::vector<T> adamw_m, adamw_v;

    /// A model with this checkpoint's configuration and weights.
    GPT<T> make_model() const {
        GPT<T> model(config);
        restore(model, nullptr);
        return model;
    }

    /// Copies weights (and optimizer state, when both exist) into an existing model whose
    /// configuration must match (except its dtype, which is not part of the architecture).
    void restore(GPT<T>& model, AdamW<T>* optimizer) const {
        GPTConfig architecture = model.config();
        architecture.dtype = config.dtype;
        if (!(architecture == config))
            throw std::runtime_error("checkpoint: model configuration does not match");
        std::copy(weights.begin(), weights.end(), model.parameters().data());
        model.dropout_generator().set_state(dropout_rng);
        if (optimizer != nullptr && has_optimizer) {
            std::copy(adamw_m.begin(), adamw_m.end(), optimizer->m().begin());
            std::copy(adamw_v.begin(), adamw_v.end(), optimizer->v().begin());
            optimizer->set_steps(adamw_steps);
        }
    }
};

namespace detail {

/// Appends raw little-endian values to a byte buffer.
class ByteWriter {
public:
    template <class V>
    void put(const V& value) {
        const auto* p = reinterpret_cast<const unsigned char*>(&value);
        bytes_.insert(bytes_.end(), p, p + sizeof(V));
    }
    template <class V>
    void put_array(const V* values, std::size_t n) {
        const auto* p = reinterpret_cast<const unsigned char*>(values);
        bytes_.insert(bytes_.end(), p, p + n * sizeof(V));
    }
    void put_state(const Random::State& s) {
        put_array(s.words, 4);
        put(s.spare_normal);
        put(static_cast<std::uint8_t>(s.has_spare_normal));
    }
    std::vector<unsigned char>& bytes() { return bytes_; }

private:
    std::vector<unsigned char> bytes_;
};

/// Where a checkpoint is read from: its bytes in memory (parse_checkpoint) or the file itself
/// (load_checkpoint), which is read piece by piece straight into the destination, so loading
/// never holds a second copy of the file.
class CheckpointInput {
public:
    explicit CheckpointInput(const std::vector<unsigned char>& bytes)
        : bytes_(bytes.data()), size_(bytes.size()) {}
    CheckpointInput(std::FILE* file, std::size_t size) : file_(file), size_(size) {}

    std::size_t size() const { return size_; }
    /// Copies the n bytes at `offset` to out; false when the file cannot deliver them.
    bool read(std::size_t offset, void* out, std::size_t n) {
        if (bytes_ != nullptr) {
            std::memcpy(out, bytes_ + offset, n);
            return true;
        }
        if (offset != position_ &&
            std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0) {
            return false;
        }
        position_ = offset + n;
        return std::fread(out, 1, n, file_) == n;
    }
    /// FNV-1a of the first n bytes (the file in pieces of 64 KiB).
    std::uint64_t hash(std::size_t n) {
        if (bytes_ != nullptr) return fnv1a(bytes_, n);
        std::vector<unsigned char> piece(std::min(std::size_t{1} << 16, n));
        std::uint64_t h = kFnv1aStart;
        for (std::size_t done = 0; done < n;) {
            const std::size_t k = std::min(piece.size(), n - done);
            if (!read(done, piece.data(), k)) return ~h;  // unreadable: cannot match
            h = fnv1a(piece.data(), k, h);
            done += k;
        }
        return h;
    }

private:
    const unsigned char* bytes_ = nullptr;
    std::FILE* file_ = nullptr;
    std::size_t size_;
    std::size_t position_ = 0;  // the file's read position
};

/// Reads values back with a bounds check on every field, naming it when the file ends early.
class ByteReader {
public:
    ByteReader(CheckpointInput& input, std::size_t end, std::string path)
        : input_(input), end_(end), path_(std::move(path)) {}

    template <class V>
    V get(const char* field) {
        V value;
        take(&value, sizeof(V), field);
        return value;
    }
    template <class V>
    void get_array(V* out, std::size_t n, const char* field) {
        if (n > (end_ - pos_) / sizeof(V)) fail(std::string("truncated in ") + field);
        take(out, n * sizeof(V), field);
    }
    /// Passes over n elements of V without reading them.
    template <class V>
    void skip_array(std::size_t n, const char* field) {
        if (n > (end_ - pos_) / sizeof(V)) fail(std::string("truncated in ") + field);
        pos_ += n * sizeof(V);
    }
    Random::State get_state(const char* field) {
        Random::State s{};
        get_array(s.words, 4, field);
        s.spare_normal = get<double>(field);
        s.has_spare_normal = get<std::uint8_t>(field) != 0;
        return s;
    }
    std::size_t remaining() const { return end_ - pos_; }
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("checkpoint '" + path_ + "': " + what);
    }

private:
    void take(void* out, std::size_t n, const char* field) {
        if (n > end_ - pos_) fail(std::string("truncated in ") + field);
        if (!input_.read(pos_, out, n)) fail(std::string("cannot read ") + field);
        pos_ += n;
    }

    CheckpointInput& input_;
    std::size_t end_;
    std::size_t pos_ = 0;
    std::string path_;
};

}  // namespace detail

/// The bytes of a checkpoint of the model (and optimizer state when given, and the tokenizer's
/// symbols): what save_checkpoint writes.
template <class T>
std::vector<unsigned char> checkpoint_bytes(GPT<T>& model,
                                            const std::type_identity_t<AdamW<T>>* optimizer,
                                            const std::vector<std::string>& vocabulary,
                                            const TrainingState& training = {}) {
    detail::ByteWriter w;
    w.put_array(kCheckpointMagic, 8);
    w.put(kCheckpointVersion);
    w.put(static_cast<std::uint32_t>(sizeof(T)));
    const std::size_t size_field = w.bytes().size();
    w.put(std::uint64_t{0});  // patched below, once the size is known
    w.put(checkpoint_element_type<T>());
    const GPTConfig& c = model.config();
    for (std::int64_t v : {c.block_size, c.vocab_size, c.n_layer, c.n_head, c.n_embd}) w.put(v);
    w.put(c.dropout);
    w.put(static_cast<std::uint8_t>(c.bias));
    w.put(static_cast<std::uint8_t>(c.dtype));
    w.put(static_cast<std::uint32_t>(vocabulary.empty() ? 0 : 1));
    w.put(static_cast<std::uint64_t>(vocabulary.size()));
    for (const std::string& s : vocabulary) {
        w.put(static_cast<std::uint32_t>(s.size()));
        w.put_array(s.data(), s.size());
    }
    w.put(training.iter);
    w.put(training.best_val_loss);
    w.put_state(model.dropout_generator().state());
    w.put_state(training.data_rng);
    const auto n = static_cast<std::size_t>(model.parameters().size());
    w.put(static_cast<std::uint64_t>(n));
    w.put_array(model.parameters().data(), n);
    w.put(static_cast<std::uint8_t>(optimizer != nullptr));
    if (optimizer != nullptr) {
        const AdamWConfig& a = optimizer->config();
        for (double v : {a.beta1, a.beta2, a.eps, a.weight_decay}) w.put(v);
        w.put(optimizer->steps());
        w.put_array(optimizer->m().data(), n);
        w.put_array(optimizer->v().data(), n);
    }
    const std::uint64_t total = w.bytes().size() + sizeof(std::uint64_t);
    std::memcpy(w.bytes().data() + size_field, &total, sizeof(total));
    w.put(detail::fnv1a(w.bytes().data(), w.bytes().size()));
    return std::move(w.bytes());
}

/// Saves the model (and optimizer state when given, and the tokenizer's symbols) to path,
/// durably and atomically.
template <class T>
void save_checkpoint(const std::string& path, GPT<T>& model,
                     const std::type_identity_t<AdamW<T>>* optimizer,
                     const std::vector<std::string>& vocabulary,
                     const TrainingState& training = {}) {
    const std::vector<unsigned char> bytes =
        checkpoint_bytes(model, optimizer, vocabulary, training);
    write_file_atomically(path, {{bytes.data(), bytes.size()}}, "checkpoint");
}

/// A checkpoint held in memory until the training step after it has shown that its weights are
/// sound, then written over the previous one. One update can make the weights enormous yet
/// finite: the evaluation right after it may still look fine and save them, and only the next
/// step's loss or gradient norm is NaN. Training stages each checkpoint here, commits it once
/// the following step produced a finite loss and gradient norm, and discards it when that step
/// diverges, so the file on disk is always the last checkpoint that was followed by a good step.
class PendingCheckpoint {
public:
    /// Holds the checkpoint of this moment (replacing one staged before) for `path`.
    template <class T>
    void stage(const std::string& path, GPT<T>& model,
               const std::type_identity_t<AdamW<T>>* optimizer,
               const std::vector<std::string>& vocabulary, const TrainingState& training) {
        path_ = path;
        bytes_ = checkpoint_bytes(model, optimizer, vocabulary, training);
    }
    bool pending() const { return !bytes_.empty(); }
    /// Writes the staged checkpoint (durably, atomically) and forgets it; false if none was staged.
    bool commit() {
        if (bytes_.empty()) return false;
        write_file_atomically(path_, {{bytes_.data(), bytes_.size()}}, "checkpoint");
        bytes_.clear();
        return true;
    }
    /// Forgets the staged checkpoint: the file on disk stays the previous one.
    void discard() { bytes_.clear(); }

private:
    std::string path_;
    std::vector<unsigned char> bytes_;
};

/// Whether reading a checkpoint loads AdamW's moments (to resume training) or passes over them
/// (sampling: they are twice the size of the weights).
enum class OptimizerState { load, skip };

namespace detail {

/// Validates and decodes a checkpoint from `input`; `path` names it in errors.
template <class T>
Checkpoint<T> read_checkpoint(CheckpointInput& input, const std::string& path,
                              OptimizerState optimizer) {
    const std::size_t size = input.size();
    ByteReader header(input, size, path);
    unsigned char head[24] = {};  // magic, version, element size, total size
    if (size < 32 || !input.read(0, head, sizeof head) ||
        std::memcmp(head, kCheckpointMagic, 8) != 0) {
        header.fail("not a nanogpt checkpoint (bad magic or too short)");
    }
    std::uint32_t version = 0, element_bytes = 0;
    std::uint64_t total_size = 0;
    std::memcpy(&version, head + 8, 4);
    std::memcpy(&element_bytes, head + 12, 4);
    std::memcpy(&total_size, head + 16, 8);
    if (version < 1 || version > kCheckpointVersion) {
        header.fail("format version " + std::to_string(version) + ", this build reads versions 1 to " +
                    std::to_string(kCheckpointVersion));
    }
    if (total_size != size) {
        header.fail("file has " + std::to_string(size) + " bytes but its header says " +
                    std::to_string(total_size) + (total_size > size ? " (truncated)" : ""));
    }
    const std::size_t body = size - sizeof(std::uint64_t);
    std::uint64_t stored_hash = 0;
    if (!input.read(body, &stored_hash, sizeof(stored_hash)) || stored_hash != input.hash(body))
        header.fail("checksum mismatch (file is corrupt)");
    if (element_bytes != sizeof(T)) {
        header.fail("stores " + std::to_string(element_bytes) + "-byte elements, expected " +
                    std::to_string(sizeof(T)));
    }

    ByteReader r(input, body, path);
    (void)r.get<std::uint64_t>("magic");
    (void)r.get<std::uint64_t>("version");
    (void)r.get<std::uint64_t>("size");
    if (version >= 2) {
        const auto type = r.get<std::uint32_t>("element type");
        if (type != checkpoint_element_type<T>()) {
            r.fail("element type " + std::to_string(type) + ", expected " +
                   std::to_string(checkpoint_element_type<T>()) + " (0 float32, 1 float64)");
        }
    }
    Checkpoint<T> ck;
    ck.config.block_size = r.get<std::int64_t>("config");
    ck.config.vocab_size = r.get<std::int64_t>("config");
    ck.config.n_layer = r.get<std::int64_t>("config");
    ck.config.n_head = r.get<std::int64_t>("config");
    ck.config.n_embd = r.get<std::int64_t>("config");
    ck.config.dropout = r.get<double>("config");
    ck.config.bias = r.get<std::uint8_t>("config") != 0;
    if (version >= 3) {  // older files were written by float32-only builds
        const auto dtype = r.get<std::uint8_t>("config");
        if (dtype > 1) r.fail("dtype " + std::to_string(dtype) + " (0 float32, 1 bfloat16)");
        ck.config.dtype = static_cast<Dtype>(dtype);
    }
    validate_loaded_config(ck.config, "checkpoint '" + path + "'");
    const auto kind = r.get<std::uint32_t>("tokenizer");
    const auto symbols = r.get<std::uint64_t>("tokenizer");
    // Each symbol takes at least 5 bytes (length and one byte), so this bounds the loop.
    if (kind > 1 || symbols > r.remaining() / 5) r.fail("corrupt tokenizer section");
    ck.vocabulary.reserve(static_cast<std::size_t>(symbols));
    for (std::uint64_t i = 0; i < symbols; ++i) {
        const auto len = r.get<std::uint32_t>("tokenizer");
        if (len == 0 || len > 4) r.fail("corrupt tokenizer symbol");
        std::string s(len, '\0');
        r.get_array(s.data(), len, "tokenizer");
        ck.vocabulary.push_back(std::move(s));
    }
    if (!ck.vocabulary.empty() &&
        static_cast<std::int64_t>(ck.vocabulary.size()) != ck.config.vocab_size) {
        r.fail("tokenizer has " + std::to_string(ck.vocabulary.size()) +
               " symbols but vocab_size is " + std::to_string(ck.config.vocab_size));
    }
    ck.training.iter = r.get<std::int64_t>("training state");
    ck.training.best_val_loss = r.get<double>("training state");
    ck.dropout_rng = r.get_state("training state");
    ck.training.data_rng = r.get_state("training state");
    const auto n = r.get<std::uint64_t>("weights");
    const auto expected = static_cast<std::uint64_t>(ck.config.num_parameters());
    if (n != expected) {
        r.fail("holds " + std::to_string(n) + " weights, the configuration needs " +
               std::to_string(expected));
    }
    // Allocate only what the file holds: the weights and, when present, the two moments.
    if (n > r.remaining() / sizeof(T)) {
        r.fail("truncated in weights: " + std::to_string(n) + " weights need " +
               std::to_string(n * sizeof(T)) + " bytes, " + std::to_string(r.remaining()) +
               " remain");
    }
    ck.weights.resize(static_cast<std::size_t>(n));
    r.get_array(ck.weights.data(), n, "weights");
    ck.has_optimizer = r.get<std::uint8_t>("optimizer") != 0;
    if (ck.has_optimizer) {
        ck.adamw.beta1 = r.get<double>("optimizer");
        ck.adamw.beta2 = r.get<double>("optimizer");
        ck.adamw.eps = r.get<double>("optimizer");
        ck.adamw.weight_decay = r.get<double>("optimizer");
        ck.adamw_steps = r.get<std::int64_t>("optimizer");
        if (n > r.remaining() / sizeof(T) / 2) r.fail("truncated in optimizer");
        if (optimizer == OptimizerState::load) {
            ck.adamw_m.resize(static_cast<std::size_t>(n));
            ck.adamw_v.resize(static_cast<std::size_t>(n));
            r.get_array(ck.adamw_m.data(), n, "optimizer");
            r.get_array(ck.adamw_v.data(), n, "optimizer");
        } else {
            r.skip_array<T>(2 * n, "optimizer");
            ck.has_optimizer = false;  // not loaded, so restore() leaves the optimizer alone
        }
    }
    if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected trailing bytes");
    return ck;
}

}  // namespace detail

/// Validates and decodes the bytes of a checkpoint file; `path` names it in errors.
template <class T>
Checkpoint<T> parse_checkpoint(const std::vector<unsigned char>& bytes, const std::string& path,
                               OptimizerState optimizer = OptimizerState::load) {
    detail::CheckpointInput input(bytes);
    return detail::read_checkpoint<T>(input, path, optimizer);
}

/// Reads and validates a checkpoint written by save_checkpoint (any version up to
/// kCheckpointVersion) with the same element type. The file is read in pieces straight into the
/// returned weights (and moments), so the peak memory is what the Checkpoint holds.
template <class T>
Checkpoint<T> load_checkpoint(const std::string& path,
                              OptimizerState optimizer = OptimizerState::load) {
    struct Close {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    const std::string who = "checkpoint '" + path + "'";
    errno = 0;
    std::unique_ptr<std::FILE, Close> file(std::fopen(path.c_str(), "rb"));
    if (!file) detail::io_fail(who, "cannot open file", errno);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) detail::io_fail(who, "not a regular file", 0);
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) detail::io_fail(who, "cannot read its size", ec.value());
    detail::CheckpointInput input(file.get(), static_cast<std::size_t>(size));
    return detail::read_checkpoint<T>(input, path, optimizer);
}

}  // namespace nanogpt
